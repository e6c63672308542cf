"""The multiverse: the grid of specifications, reuse of fits, agreement with a direct fit, the figure, the CLI."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from crev_cli import app
from evidence import ResultFilter, query_results
from metaanalysis import AnalysisSpec, EffectSettings, compute_effects, run_analysis
from metaanalysis.multiverse import AUTOATTACK, DIMENSIONS, ITERATIVE_ATTACKS, spec_mask, multiverse, specifications

runner = CliRunner()
SMALL = ["sen_2020_empir", "sehwag_2020_hydra", "piras_2024_apbenchmark", "matachana_2020_uap"]


def test_grid_has_every_combination_with_rho_only_for_the_accuracy_difference():
    specs = specifications()
    assert len(specs) == 3 * 4 * 2 * 2 * 2 * (3 + 1)  # rho (3 values) enters delta_robust only: 384
    assert len(set(specs)) == len(specs)
    assert {s.rho for s in specs if s.effect == "log_odds_ratio"} == {None}
    for dim, options in DIMENSIONS.items():
        seen = {s.choices()[dim] for s in specs}
        assert set(options) <= seen, dim


@pytest.fixture(scope="module")
def small_results(seeded_template):
    from evidence import get_engine

    return query_results(get_engine(f"sqlite:///{seeded_template}"), ResultFilter(study_ids=SMALL))


@pytest.fixture(scope="module")
def small_multiverse(small_results):
    return multiverse(small_results, workers=1)


def test_every_specification_is_fitted_or_says_why(small_multiverse):
    mv = small_multiverse
    assert len(mv.results) == 384
    for r in mv.results:
        assert r.ok or r.reason
        if r.ok:
            assert r.ci_low <= r.estimate <= r.ci_high and r.k >= 2
    fitted = [r for r in mv.results if r.ok]
    assert 0 < mv.n_distinct_fits < len(fitted)  # specifications selecting the same rows share one fit
    c = mv.counts()
    assert sum(v["specifications"] for v in c.values()) == 384
    for eff, v in c.items():
        ok = [r for r in fitted if r.spec.effect == eff]
        assert v["fitted"] == len(ok) and v["ci_below_zero"] + v["ci_above_zero"] == sum(r.excludes_zero for r in ok)
    assert "CI excludes zero in" in mv.summary() and "descriptive, not a test" in mv.summary()


def test_a_specification_equals_the_default_model_fitted_directly(small_results, small_multiverse):
    cands = [r for r in small_multiverse.results if r.ok and r.spec.effect == "delta_robust" and r.spec.rho == "0.5"
             and r.spec.epsilon != "each study's own" and r.spec.assume_n == "dataset size" and r.spec.threat == "white-box only"]
    r = max(cands, key=lambda x: x.k)
    s = r.spec
    eff = compute_effects(small_results, EffectSettings(measure="delta_robust", correlation=0.5, assume_n="dataset")).effects
    sub = eff[spec_mask(eff, s)].reset_index(drop=True)
    allowed = {"all": None, "iterative only": ITERATIVE_ATTACKS, "AutoAttack only": AUTOATTACK}[s.attack]
    assert allowed is None or sub["attack"].astype(str).isin(allowed).all()
    assert (sub["norm"].astype(str) == "linf").all() and (sub["threat_model"].astype(str) == "white_box").all()
    lo, hi = {"Linf <= 2/255": (0, 2 / 255), "Linf in (2/255, 8/255]": (2 / 255, 8 / 255), "Linf > 8/255": (8 / 255, 1)}[s.epsilon]
    assert ((sub["epsilon"] > lo) & (sub["epsilon"] <= hi + 1e-12)).all()
    base = AnalysisSpec().replace(component_tests=False)
    direct = run_analysis(sub, base).fit.coefficients[0]
    assert r.k == len(sub) and r.n_studies == sub["study"].nunique()
    assert (r.estimate, r.ci_low, r.ci_high) == pytest.approx((direct.estimate, direct.ci_low, direct.ci_high), rel=1e-9)


def test_parallel_workers_give_the_same_curve(small_results, small_multiverse):
    par = multiverse(small_results, workers=2)
    a = small_multiverse.to_frame()
    b = par.to_frame()
    assert a["ok"].tolist() == b["ok"].tolist()
    np.testing.assert_allclose(a["estimate"].astype(float).fillna(0), b["estimate"].astype(float).fillna(0), rtol=1e-9)


def test_specification_curve_figure_has_the_dot_matrix_of_choices(small_multiverse):
    fig = small_multiverse.figure()
    curve, matrix = fig.axes[0], fig.axes[len(fig.axes) // 2]
    n_rows = sum(len(v) for k, v in DIMENSIONS.items() if k != "effect")
    assert len(matrix.get_yticklabels()) == n_rows == 16  # delta_robust panel: every option, rho included
    if len(fig.axes) == 4:  # the log odds ratio panel has no rho rows (rho does not enter it)
        assert len(fig.axes[3].get_yticklabels()) == 16 - 3
    assert "CI excludes zero in" in curve.get_title()


def test_cli_multiverse_json_and_figure(seeded_url, tmp_path):
    png = tmp_path / "curve.png"
    args = ["meta", "multiverse", "--db", seeded_url, "--workers", "1", "--json", "--figure", str(png), "--pool-kinds"]
    for s in SMALL:
        args += ["--study", s]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["n_specifications"] == 384 and set(d["counts"]) == {"delta_robust", "log_odds_ratio"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = runner.invoke(app, ["meta", "multiverse", "--db", seeded_url, "--question", "nonsense"])
    assert r.exit_code == 2 and "--question must be one of" in r.stderr
