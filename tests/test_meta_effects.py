"""Effect sizes, exclusions, rigour scores and analyses on the seed database."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crev_cli import app
from evidence import ResultFilter, list_claims, list_studies, query_results
from metaanalysis import (
    AnalysisSpec, EffectSettings, compute_effects, contradiction_report, dose_response, reevaluation_gaps,
    rigour_scores, rigour_sensitivity, run_analysis, subgroups, vote_count,
)
from metaanalysis import MetaInputError
from metaanalysis.effects import paired_variance

runner = CliRunner()


def _row(**kw):
    base = dict(uid="u", study_id="s", cluster="c", dataset="CIFAR-10", robust_acc_dense=40.0, robust_acc_compressed=30.0,
                clean_acc_dense=90.0, clean_acc_compressed=85.0, n_test=1000, attack="pgd", steps=10, epsilon=8 / 255,
                provenance="verbatim", threat_model="white_box", compression_family="unstructured_pruning", gradient_masking=None)
    base.update(kw)
    return base


def test_delta_robust_value_and_binomial_variance():
    t = compute_effects(pd.DataFrame([_row()]))
    e = t.effects.iloc[0]
    assert e["yi"] == pytest.approx(-10.0)
    assert e["vi"] == pytest.approx(1e4 * (0.4 * 0.6 / 1000 + 0.3 * 0.7 / 1000))
    t2 = compute_effects(pd.DataFrame([_row()]), EffectSettings(correlation=0.5))
    v1, v2 = 0.4 * 0.6 / 1000, 0.3 * 0.7 / 1000
    assert t2.effects["vi"].iloc[0] == pytest.approx(1e4 * (v1 + v2 - 2 * 0.5 * math.sqrt(v1 * v2)))
    assert "correlation of dense and compressed accuracies assumed 0 (conservative default)" in t.notes


def test_log_odds_ratio_adds_half_only_with_a_zero_cell():
    t = compute_effects(pd.DataFrame([_row(), _row(uid="z", robust_acc_compressed=0.0)]), EffectSettings(measure="log_odds_ratio"))
    a, b, c, d = 300, 700, 400, 600
    assert t.effects["yi"].iloc[0] == pytest.approx(math.log(a * d / (b * c)))
    assert t.effects["vi"].iloc[0] == pytest.approx(1 / a + 1 / b + 1 / c + 1 / d)
    a, b, c, d = 0.5, 1000.5, 400.5, 600.5
    assert t.effects["yi"].iloc[1] == pytest.approx(math.log(a * d / (b * c)))
    assert list(t.effects["variance_corrected"]) == [False, True]


def test_delta_retention_delta_method_variance():
    t = compute_effects(pd.DataFrame([_row()]), EffectSettings(measure="delta_retention"))
    Rd, Rc = 40 / 90, 30 / 85
    assert t.effects["yi"].iloc[0] == pytest.approx(100 * (Rc - Rd))
    assert t.effects["vi"].iloc[0] == pytest.approx(1e4 * (Rd * (1 - Rd) / (1000 * 0.9) + Rc * (1 - Rc) / (1000 * 0.85)))


def test_rows_that_cannot_give_an_effect_are_listed_with_reasons():
    rows = [_row(), _row(uid="a", robust_acc_dense=None), _row(uid="b", n_test=None), _row(uid="c", clean_acc_dense=None)]
    t = compute_effects(pd.DataFrame(rows), EffectSettings(measure="delta_retention"))
    assert len(t.effects) == 1
    reasons = dict(zip(t.excluded["uid"], t.excluded["reason"]))
    assert reasons["a"] == "dense (uncompressed) robust accuracy not reported"
    assert reasons["b"].startswith("n_test not reported")
    assert reasons["c"] == "clean accuracy not reported (retention needs it)"


def test_assumed_n_is_flagged_on_every_effect_that_uses_it():
    t = compute_effects(pd.DataFrame([_row(), _row(uid="b", n_test=None)]), EffectSettings(assume_n="dataset"))
    assert list(t.effects["n_assumed"]) == [False, True]
    assert t.effects["n_test"].iloc[1] == 10000
    assert any("ASSUMED" in n for n in t.notes)


def test_rigour_components_are_each_visible():
    df = pd.DataFrame([_row(), _row(attack="fgsm", steps=None, epsilon=None, n_test=None, provenance="derived", threat_model="transfer",
                                    robust_acc_compressed=95.0)])
    r = rigour_scores(df)
    assert list(r.loc[0, ["attack_strength", "epsilon_stated", "n_test_known", "verbatim", "not_transfer_only", "robust_below_clean"]]) == [1, 1, 1, 1, 1, 1]
    assert list(r.loc[1, ["attack_strength", "epsilon_stated", "n_test_known", "verbatim", "not_transfer_only", "robust_below_clean"]]) == [0, 0, 0, 0, 0, 0]
    assert list(r["rigour_score"]) == [6, 0]
    assert list(r["high_risk"]) == [False, True]


def test_seed_default_analysis_has_an_effect_level_and_study_based_inference(seeded):
    t = compute_effects(query_results(seeded), EffectSettings(assume_n="dataset"))
    an = run_analysis(t)
    assert an.fit.model == "rma.mv" and list(an.fit.sigma2) == ["study", "study/cluster", "study/cluster/es"]
    assert an.fit.n_levels["study"] == t.effects["study"].nunique() and an.fit.n_levels["study/cluster/es"] == len(t.effects)
    assert an.fit.coefficients[0].se > 1.0  # the dependence widens the interval: not thousands of independent rows
    # CR2 by study: the df come from the studies, not from thousands of effects
    assert an.fit.test == "CR2" and an.fit.n_clusters == an.n_studies
    assert an.fit.coefficients[0].df < an.n_studies
    # every component is tested against the model without it; the effect level is far from zero
    es = {c.name: c for c in an.fit.component_tests}["study/cluster/es"]
    assert es.lrt > 1000 and es.pval < 1e-10


def test_merkle_only_estimate_gives_spread_within_a_run_its_own_variance(seeded):
    """One Merkle run spreads far beyond its sampling error: with an effect level the floor rows no
    longer carry the weight, and the pooled loss is about −17.6 pp (without it, −10.1)."""
    t = compute_effects(query_results(seeded, ResultFilter(study_ids=["merkle_2022_pruningfaceadversaries"])), EffectSettings(assume_n="dataset"))
    an = run_analysis(t)
    assert list(an.fit.sigma2) == ["cluster", "cluster/es"]
    assert an.fit.estimate == pytest.approx(-17.61, abs=0.05)
    assert an.fit.coefficients[0].se == pytest.approx(0.90, abs=0.02)
    assert an.fit.test == "t" and an.fit.coefficients[0].df == an.fit.n_levels["cluster"] - 1


def test_seed_without_assumed_n_drops_rows_and_says_why(seeded):
    res = query_results(seeded)
    t = compute_effects(res)
    no_n = res["n_test"].isna() & res["robust_acc_dense"].notna() & res["robust_acc_compressed"].notna()
    no_dense = res["robust_acc_dense"].isna() & res["robust_acc_compressed"].notna()
    reasons = t.excluded.groupby("reason").size().to_dict()
    assert reasons["n_test not reported (set an assumed n_test to include it)"] == int(no_n.sum())
    assert reasons["dense (uncompressed) robust accuracy not reported"] == int(no_dense.sum())
    assert len(t.effects) + len(t.excluded) == len(res)
    one = compute_effects(query_results(seeded, ResultFilter(study_ids=["merkle_2022_pruningfaceadversaries"])))
    an = run_analysis(one)
    assert "random level 'study' has a single group" in " ".join(an.notes)


def test_moderator_missing_rows_are_reported(seeded):
    t = compute_effects(query_results(seeded), EffectSettings(assume_n="dataset"))
    an = run_analysis(t, AnalysisSpec(mods="epsilon"))
    assert any("moderator missing (epsilon)" in n for n in an.notes)
    assert (an.excluded["reason"] == "moderator missing (epsilon)").sum() == int(t.effects["epsilon"].isna().sum())


def test_subgroups_dose_response_sensitivity_on_seed(seeded):
    t = compute_effects(query_results(seeded, ResultFilter(study_ids=["merkle_2022_pruningfaceadversaries"])))
    sg = subgroups(t, "family")
    assert set(sg.groups["group"]) == {"structured_pruning", "unstructured_pruning"}
    assert sg.between.qm_df[0] == 1
    dr = dose_response(t, "sparsity")
    assert len(dr.grid) == 60 and dr.fit.coef("sparsity^2").se > 0
    s = rigour_sensitivity(t)
    assert s.to_frame()["analysis"].tolist() == ["all effects", "without high-risk effects"]


def test_contradiction_report_on_seed(seeded):
    """The pair verdicts themselves are tested in tests/test_meta_contradictions.py."""
    res = query_results(seeded)
    rep = contradiction_report(compute_effects(res, EffectSettings(assume_n="dataset")), list_studies(seeded), list_claims(seeded))
    pairs = {(p.a.study, p.b.study): p for p in rep.pairs}
    p = pairs[("jordao_2021_pruning", "wang_2018_prunedrobustness")]
    assert p.kind == "opposite" and p.question == "pruning_without_at"
    assert p.a.estimate is None and p.b.estimate is None and not p.a.has_numbers
    d = json.loads(rep.to_json())
    assert d["n_pairs"] == len(rep.pairs) and sum(d["verdict_counts"].values()) == len(rep.pairs)
    assert "# Contradiction report" in rep.to_markdown()


def test_reevaluation_gap_pairs_hydra_with_autoattack(seeded):
    g = reevaluation_gaps(query_results(seeded))
    assert len(g.pairs) >= 2
    assert set(g.pairs["method"]) == {"HYDRA"}
    assert (g.pairs["original_study"] == "sehwag_2020_hydra").all()
    assert g.pooled.estimate > 0  # reported robustness exceeds the independent re-evaluation


def test_votes_count_every_study(seeded):
    v = vote_count(list_studies(seeded), list_claims(seeded))
    row = v.table.iloc[0]
    assert row["n"] == len(list_studies(seeded)) and row["up"] + row["down"] + row["neutral"] + row["mixed"] + row["unknown"] == row["n"]
    assert "weaker evidence" in v.caveat.lower()


def test_cli_input_errors_are_one_line_exit_2(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("yi,vi\n0.1,0.01\nabc,0.02\n")
    r = runner.invoke(app, ["meta", "run", "--input", str(p), "--json"])
    assert r.exit_code == 2 and "column yi is not numeric (row 2: 'abc')" in r.stderr
    p.write_text("yi,vi\n0.1,0.01\n0.2,0\n")
    r = runner.invoke(app, ["meta", "run", "--input", str(p)])
    assert r.exit_code == 2 and "must be positive" in r.stderr
    p.write_text("yi,vi\n0.1,0.01\n")
    r = runner.invoke(app, ["meta", "run", "--input", str(p)])
    assert r.exit_code == 2 and "need at least 2 effects" in r.stderr
    r = runner.invoke(app, ["meta", "run", "--input", str(p), "--vi", "w"])
    assert r.exit_code == 2 and "missing column(s) w" in r.stderr


def test_cli_over_database_and_plots(seeded_url, tmp_path):
    refused = runner.invoke(app, ["meta", "run", "--db", seeded_url, "--assume-n", "dataset", "--json"])
    assert refused.exit_code == 2 and "evaluation kinds, which measure different things and are not pooled silently" in refused.stderr
    r = runner.invoke(app, ["meta", "run", "--db", seeded_url, "--assume-n", "dataset", "--json", "--pool-kinds"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["model"] == "rma.mv" and len(d["sigma2"]) == 3 and d["n_studies"] >= 4
    assert list(d["sigma2_levels"]) == ["study", "study/cluster", "study/cluster/es"] and d["sigma2_levels"]["study"] == d["n_studies"]
    assert d["test"] == "CR2" and d["df"] < d["n_studies"]
    for kind in ("forest", "funnel", "bubble", "dose"):
        out = tmp_path / f"{kind}.png"
        r = runner.invoke(app, ["meta", "plot", kind, "--out", str(out), "--db", seeded_url, "--study", "merkle_2022_pruningfaceadversaries"])
        assert r.exit_code == 0, r.output
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    svg = tmp_path / "f.svg"
    assert runner.invoke(app, ["meta", "plot", "forest", "--out", str(svg), "--db", seeded_url, "--assume-n", "dataset"]).exit_code == 0
    assert "<svg" in svg.read_text()
    r = runner.invoke(app, ["meta", "contradictions", "--db", seeded_url, "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["n_pairs"] > 0
    # the literature's binarization study reports no n_test (the replication release's binarization rows do)
    r = runner.invoke(app, ["meta", "run", "--db", seeded_url, "--family", "binarization", "--study", "anon_iclr2021_bnnattacks"])
    assert r.exit_code == 2 and "0 effect(s) after filtering" in r.stderr


def test_paired_variance_equals_metafor_mprd():
    ref = json.loads((Path(__file__).parent / "data" / "metafor" / "expected" / "paired_mprd.json").read_text())
    a, b, c, d = (np.array(ref[x], float) for x in ("ai", "bi", "ci", "di"))
    n = a + b + c + d
    v, corrected = paired_variance(a, b, c, d)
    np.testing.assert_allclose(v, ref["vi"], rtol=1e-12)
    assert list(corrected) == [False, True, False, True, True]  # an empty cell: metafor adds 1/2 to every cell
    ok = ~corrected
    np.testing.assert_allclose(((c - b) / n)[ok], -np.array(ref["yi"])[ok], atol=1e-15)  # crev: compressed minus dense


def test_rows_with_discordant_counts_use_the_paired_variance_and_others_the_floor():
    rows = pd.DataFrame([
        _row(robust_acc_dense=45.0, robust_acc_compressed=43.0, n_test=1000, n_robust_dense_only=50, n_robust_compressed_only=30),
        _row(robust_acc_dense=45.0, robust_acc_compressed=43.0, n_test=1000, n_robust_dense_only=None, n_robust_compressed_only=None),
        _row(robust_acc_dense=5.0, robust_acc_compressed=8.0, n_test=1000, dataset="CIFAR-10"),
    ])
    t = compute_effects(rows, EffectSettings(correlation=0.99))
    e = t.effects
    assert list(e["paired_variance"]) == [True, False, False]
    assert e.loc[0, "vi"] == pytest.approx(1e4 * (0.05 + 0.03 - 0.02 ** 2) / 1000, rel=1e-12)
    # rho = 0.99 would push the variance below what a 2-point difference allows: the floor holds it
    assert e.loc[1, "vi"] == pytest.approx(1e4 * 0.02 * 0.98 / 1000, rel=1e-12)
    assert list(e["floor"]) == [False, False, True]  # CIFAR-10: chance is 10 %


def test_dose_response_reports_a_vertex_only_when_the_curvature_ci_excludes_zero(seeded):
    t = compute_effects(query_results(seeded), EffectSettings(assume_n="dataset"))
    dr = dose_response(t, "sparsity")
    q = dr.fit.coef("sparsity^2")
    assert dr.fit.test == "CR2" and dr.curvature_ci == (q.ci_low, q.ci_high)
    if q.ci_low < 0 < q.ci_high:
        assert dr.vertex is None and "includes 0" in dr.verdict
    assert list(dr.comparison["model"]) == ["linear", "quadratic", "factor"]
    assert (dr.comparison["AIC"] == -2 * dr.comparison["logLik"] + 2 * dr.comparison["parameters"]).all()
    assert len(dr.factor_means) >= 3 and (dr.factor_means["ci_low"] < dr.factor_means["estimate"]).all()


def test_merkle_losses_grow_with_sparsity_as_a_factor(seeded):
    t = compute_effects(query_results(seeded, ResultFilter(study_ids=["merkle_2022_pruningfaceadversaries"])), EffectSettings(assume_n="dataset"))
    dr = dose_response(t, "sparsity")
    est = dr.factor_means["estimate"].to_numpy()
    assert len(est) == 6 and np.all(np.diff(est) < 0)  # monotone: no sweet spot among the measured levels
    assert not dr.supported


def test_rigour_fixes_library_defaults_uap_and_different_image_sets():
    df = pd.DataFrame([
        _row(steps=None, steps_text="library default (not set in code)", attack_text="PGD (foolbox 3 LinfProjectedGradientDescentAttack, library defaults)"),
        _row(attack="uap", steps=20),
        _row(robust_acc_dense=99.0, clean_acc_dense=90.0, notes="attack set: first 1000 MNIST test images; clean acc from column accuracy (test split)"),
        _row(robust_acc_dense=99.0, clean_acc_dense=90.0),
        _row(robust_acc_dense=90.5, clean_acc_dense=90.0),  # within binomial noise on 1,000 images
        _row(attack="autoattack_fast", steps=None), _row(attack="eot_pgd", steps=None), _row(attack="apgd", steps=None),
    ])
    r = rigour_scores(df)
    assert r.loc[0, "attack_strength"] == 1 and r.loc[0, "steps_effective"] == 40  # foolbox 3's documented default
    assert r.loc[1, "attack_strength"] == 0 and r.loc[1, "high_risk"]  # a universal perturbation is not a per-image attack
    assert r.loc[2, "robust_below_clean"] == 1 and not r.loc[2, "same_images"]  # different image sets: not assessed
    assert r.loc[3, "robust_below_clean"] == 0 and r.loc[3, "high_risk"]
    assert r.loc[4, "robust_below_clean"] == 1
    assert list(r.loc[5:7, "attack_strength"]) == [1, 2, 1]


def test_low_risk_sensitivity_fits_on_the_seed_and_components_are_moderators(seeded):
    t = compute_effects(query_results(seeded), EffectSettings(assume_n="dataset"))
    s = rigour_sensitivity(t)
    assert s.low_risk is not None and s.low_risk.fit.k > 1000  # Merkle's library-default PGD is no longer high-risk
    from metaanalysis.sensitivity import rigour_moderators

    m = rigour_moderators(t)
    assert "attack_strength" in set(m.rows["component"])
    assert len(m.rows) + sum(not n.startswith("pval_holm") for n in m.notes) == 7  # a moderator, or a note saying why not
    assert (m.rows["pval_holm"] >= m.rows["pval"]).all()
    assert (m.rows["test"] == "CR2").all()


def test_replication_rows_are_kept_out_of_the_literature_pool_unless_asked():
    res = pd.DataFrame([_row(uid="lit", source_kind="literature"), _row(uid="rep", study_id="crev_replications", source_kind="replication")])
    lit = compute_effects(res)
    assert list(lit.effects["uid"]) == ["lit"] and list(lit.excluded["uid"]) == ["rep"]
    assert lit.excluded["reason"].iloc[0].startswith("the project's own replication: reported beside the literature, never pooled")
    assert any("literature only" in n for n in lit.notes)
    assert list(compute_effects(res, EffectSettings(source="replication")).effects["uid"]) == ["rep"]
    both = compute_effects(res, EffectSettings(source="all"))
    assert sorted(both.effects["uid"]) == ["lit", "rep"] and any("pooled together" in n for n in both.notes)
    with pytest.raises(MetaInputError, match="source must be one of literature, replication, all"):
        EffectSettings(source="preprints")


def test_cli_source_option_chooses_the_rows(seeded_url):
    base = ["meta", "run", "--db", seeded_url, "--assume-n", "dataset", "--family", "quantization", "--json"]
    bad = runner.invoke(app, [*base, "--source", "preprints"])
    assert bad.exit_code == 2 and "source must be one of" in bad.stderr
    only = runner.invoke(app, [*base, "--source", "replication", "--pool-kinds"])
    assert only.exit_code == 0, only.output


@pytest.mark.parametrize("command", ["run", "sensitivity", "bias", "multiverse"])
def test_standalone_analyses_refuse_to_pool_evaluation_kinds_silently(seeded_url, command):
    args = ["meta", command, "--db", seeded_url, "--assume-n", "dataset", "--study", "sehwag_2020_hydra"]
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    n = "3" if command == "multiverse" else "2"  # the multiverse reads results, one more of them without an effect
    assert f"{n} evaluation kinds" in r.stderr and "certified, certified bound, without adversarial training (k = 24, 1 study)" in r.stderr
    assert "--pool-kinds" in r.stderr
    if command != "multiverse":  # one kind after filtering: it runs
        assert runner.invoke(app, [*args, "--threat", "certified"]).exit_code == 0
