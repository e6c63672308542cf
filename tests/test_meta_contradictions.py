"""Pair verdicts on each pair's own evidence, the multiple-testing family, and the report document."""

import json

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from evidence import list_claims, list_studies, query_results
from metaanalysis import EffectSettings, compute_effects
from evidence.vocab import Question
from metaanalysis.contradictions import NamedTest, PairVerdict, contradiction_report, question_scope
from metaanalysis.report import build_report, read_catalogue
from metaanalysis.models.uni import MetaInputError


def _effects(at_effect: float = 6.0, n_per_arm: int = 4, seed: int = 0) -> pd.DataFrame:
    """8 pruning studies, 2 clusters x 3 effects each: adversarially trained ones gain, the others lose."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(2 * n_per_arm):
        at = "yes" if i < n_per_arm else "no"
        mu = at_effect if at == "yes" else -at_effect
        s_eff = rng.normal(0, 0.5)
        for c in range(2):
            c_eff = rng.normal(0, 0.3)
            for _ in range(3):
                rows.append({"study": f"s{i}", "cluster": f"s{i}-c{c}", "yi": mu + s_eff + c_eff + rng.normal(0, 0.3), "vi": 0.09,
                             "compression_family": "unstructured_pruning", "adversarial_training": at, "threat_model": "white_box",
                             "epsilon": 8 / 255, "sparsity": 0.5, "high_risk": False})
    return pd.DataFrame(rows)


def _coded(pairs: list[tuple[str, str]], at: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    claims = pd.DataFrame([{"study_id": s, "question_id": "sparsity_level", "direction": d, "position": f"{s} says {d}",
                            "compression_family": None, "adversarial_training": "unknown", "threat_model": "unknown"} for s, d in pairs])
    studies = pd.DataFrame([{"study_id": s, "compression_kind": "pruning", "adversarial_training": at.get(s, "unknown")} for s, _ in pairs])
    return studies, claims


def test_pair_with_numbers_and_a_predictive_moderator_is_explained():
    eff = _effects()
    studies, claims = _coded([("s0", "up"), ("s7", "down")], {})
    rep = contradiction_report(eff, studies, claims)
    (p,) = rep.pairs
    assert p.a.has_numbers and p.b.has_numbers
    assert p.verdict == PairVerdict.explained, p.verdict_text
    (chk,) = [c for c in p.checks if c.column == "adversarial_training"]
    assert chk.predicts and chk.difference[0] > 0 and chk.predicted_a[0] > 0 > chk.predicted_b[0]
    assert chk.pval_adjusted < 0.05 and chk.df is not None and chk.df > 1
    assert any("adversarial training: yes vs no" in line for line in p.evidence_used)


def test_same_moderator_without_one_studys_numbers_is_only_consistent_with():
    eff = _effects()
    studies, claims = _coded([("s0", "up"), ("z_nonumbers", "down")], {"z_nonumbers": "no"})
    rep = contradiction_report(eff, studies, claims)
    (p,) = rep.pairs
    assert not p.b.has_numbers and p.b.values["adversarial_training"] == "no (the study's coding)"
    assert p.verdict == PairVerdict.consistent_with
    assert "z_nonumbers has no numbers" in p.verdict_text
    assert p.evidence_used[1].startswith("z_nonumbers: its coded claim only")


def test_a_moderator_predicting_the_opposite_ordering_leaves_the_pair_unexplained():
    eff = _effects()
    studies, claims = _coded([("s0", "down"), ("s7", "up")], {})  # claims reversed against their own numbers
    (p,) = contradiction_report(eff, studies, claims).pairs
    assert p.verdict == PairVerdict.unexplained
    assert "opposite ordering" in p.verdict_text


def test_pair_differing_on_nothing_coded_is_not_assessable():
    eff = _effects()
    studies, claims = _coded([("x1", "up"), ("x2", "down")], {})
    (p,) = contradiction_report(eff, studies, claims).pairs
    assert p.verdict == PairVerdict.not_assessable and p.checks == []
    assert len(p.evidence_used) == 2 and all("coded claim only" in e for e in p.evidence_used)


def test_no_effect_of_the_moderator_is_not_significant_after_correction():
    eff = _effects(at_effect=0.0)
    studies, claims = _coded([("s0", "up"), ("s7", "down")], {})
    (p,) = contradiction_report(eff, studies, claims).pairs
    assert p.verdict == PairVerdict.unexplained


def test_all_tests_of_a_report_form_one_corrected_family():
    eff = _effects()
    studies, claims = _coded([("s0", "up"), ("s7", "down"), ("s1", "up")], {})
    extra = [NamedTest("bias:x", 0.01), NamedTest("bias:y", 0.6)]
    rep = contradiction_report(eff, studies, claims, correction="fdr_bh", other_tests=extra)
    fit = rep.fits[0]
    chk = [c for p in rep.pairs for c in p.checks if c.testable][0]
    raw = [fit.pval, chk.pval, 0.01, 0.6]  # omnibus test, one distinct contrast (yes vs no), the two passed in
    assert rep.n_tests == 4
    assert fit.pval_adjusted == pytest.approx(multipletests(raw, method="fdr_bh")[1][0])
    assert chk.pval_adjusted == pytest.approx(multipletests(raw, method="fdr_bh")[1][1])
    assert "4 tests in this report, corrected together by Benjamini-Hochberg (false discovery rate)" in rep.summary()
    assert "false discovery rate 0.05" in rep.summary()
    with pytest.raises(MetaInputError, match="holm, fdr_bh"):
        contradiction_report(eff, studies, claims, correction="bonferroni")


def _seed(seeded):
    res = query_results(seeded)
    return compute_effects(res, EffectSettings(assume_n="dataset")), list_studies(seeded), list_claims(seeded), res


def test_seed_no_pair_is_explained_without_both_studies_numbers(seeded):
    table, studies, claims, res = _seed(seeded)
    rep = contradiction_report(table, studies, claims)
    with_results = set(res["study_id"])
    assert len(rep.pairs) == 61
    for p in rep.pairs:
        if p.verdict == PairVerdict.explained:
            assert p.a.study in with_results and p.b.study in with_results
        if p.verdict == PairVerdict.consistent_with:
            assert not (p.a.has_numbers and p.b.has_numbers)
        assert p.a.has_numbers == (p.a.k > 0) and p.b.has_numbers == (p.b.k > 0)
        # every pair carries the evidence it used: each study's side, then each moderator checked
        assert len(p.evidence_used) == 2 + len(p.checks)
        assert p.evidence_used[0].startswith(p.a.study) and p.evidence_used[1].startswith(p.b.study)
        assert p.verdict_text
    jw = [p for p in rep.pairs if {p.a.study, p.b.study} == {"jordao_2021_pruning", "wang_2018_prunedrobustness"}][0]
    assert jw.verdict == PairVerdict.not_assessable  # both coded without adversarial training, no numbers: nothing differs
    n_p = sum(f.testable for f in rep.fits) + len({(p.question, c.column, *sorted([c.value_a, c.value_b]))
                                                   for p in rep.pairs for c in p.checks if c.testable})
    assert rep.n_tests == n_p and f"{n_p} tests in this report, corrected together by Holm" in rep.summary()
    d = json.loads(rep.to_json())
    assert d["n_tests"] == n_p and d["correction"] == "holm" and sum(d["verdict_counts"].values()) == 61
    assert all(pp["evidence_used"] for pp in d["pairs"])


def test_report_document_lists_what_cannot_be_told_with_catalogue_links(seeded):
    table, studies, claims, res = _seed(seeded)
    doc = build_report(table, studies, claims)
    cat = {e.id for e in read_catalogue()}
    assert cat >= {"pruning_without_at", "quantization", "transfer"}
    assert set(doc.studies_without_numbers) == set(claims["study_id"]) - set(table.effects["study"])
    assert "jordao_2021_pruning" in doc.studies_without_numbers
    s = [x for x in doc.settlements if {x.study_a, x.study_b} == {"jordao_2021_pruning", "wang_2018_prunedrobustness"}][0]
    assert s.catalogue_id == "pruning_without_at" and s.match == "names a study of the pair"
    assert "crev replicate run pruning_without_at" in s.text
    cap = [x for x in doc.settlements if x.question == "capacity"][0]
    assert cap.catalogue_id is None and "no catalogue entry" in cap.text
    md = doc.to_markdown()
    assert "## What the evidence cannot tell yet" in md and "tests in this report, corrected together by Holm" in md
    for q, b in doc.bias.items():  # bias on each question's own results (transfer: without its white-box baseline)
        own = question_scope(table.effects, Question(q), baseline=False)
        assert (b.k, b.n_studies) == (len(own), own["study"].nunique())
        if q == "transfer":
            assert set(own["threat_model"].astype(str)) == {"transfer"}
    seed = res["release"] == "seed-2025.1"
    seed_doc = build_report(compute_effects(res[seed], EffectSettings(assume_n="dataset")), studies, claims)
    assert seed_doc.bias
    for q, b in seed_doc.bias.items():  # every question's scope has fewer than 10 studies in the seed release
        assert b.n_studies < 10 and all(a.verdict.startswith(f"not assessable with {b.n_studies} stud") for a in b.assessments), q
    page = doc.to_html()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page and "What the evidence cannot tell yet" in page
    assert json.loads(doc.to_json())["cannot_tell_yet"]["settlements"]


def test_cli_report_writes_html_with_inline_plots_and_contradictions_states_the_correction(seeded_url, tmp_path):
    from typer.testing import CliRunner

    from crev_cli import app

    runner = CliRunner()
    out = tmp_path / "report.html"
    r = runner.invoke(app, ["meta", "report", "--db", seeded_url, "--assume-n", "dataset", "--out", str(out)])
    assert r.exit_code == 0, r.output
    page = out.read_text()
    assert "data:image/png;base64," in page and "What the evidence cannot tell yet" in page and "crev replicate run" in page
    r = runner.invoke(app, ["meta", "contradictions", "--db", seeded_url, "--assume-n", "dataset", "--correction", "fdr_bh", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["correction"] == "fdr_bh" and "Benjamini-Hochberg (false discovery rate)" in d["summary"]
    r = runner.invoke(app, ["meta", "report", "--db", seeded_url, "--out", str(tmp_path / "r.txt")])
    assert r.exit_code == 2 and "written as .html, .md or .json" in r.stderr


def test_a_purely_between_study_contrast_is_flagged_as_confounded():
    eff = _effects()  # adversarial training never varies within a study here
    studies, claims = _coded([("s0", "up"), ("s7", "down")], {})
    (p,) = contradiction_report(eff, studies, claims).pairs
    (chk,) = [c for c in p.checks if c.column == "adversarial_training"]
    assert chk.n_studies == 8 and chk.n_studies_varying == 0
    assert any("purely between-study contrast, confounded" in line for line in p.evidence_used)


def test_each_check_says_what_the_other_studies_alone_predict():
    eff = _effects()
    studies, claims = _coded([("s0", "up"), ("s7", "down")], {})
    (p,) = contradiction_report(eff, studies, claims).pairs
    (chk,) = [c for c in p.checks if c.column == "adversarial_training"]
    d = chk.difference_without_pair
    assert d is not None and d[0] > 0 and d[1] > 0  # the 6 other studies alone predict the same ordering
    assert "from the other 6 studies alone" in chk.without_pair and "(same ordering)" in chk.without_pair
    assert any("from the other 6 studies alone" in line for line in p.evidence_used)
