"""Nested multilevel models (3 and 4 levels), dfs = "contain", component LRTs and CR2, pinned to
metafor rma.mv and clubSandwich (script: tests/data/metafor/nested_reference.R)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metaanalysis import robust
from metaanalysis.models.multilevel import NestedCovariance, rma_mv
from metaanalysis.models.structure import encode_levels

HERE = Path(__file__).parent / "data" / "metafor"
CASES = {
    "nested4": (["study", "lab", "cluster", "es"], ["g", "x"]),
    "assink2016": (["study", "esid"], ["year"]),
}


def load(name):
    return pd.read_csv(HERE / "data" / f"{name}.csv"), json.loads((HERE / "expected" / f"nested_{name}.json").read_text())


def fit_case(name, d, mods, **kw):
    cols, modcols = CASES[name]
    X = np.column_stack([np.ones(len(d))] + [d[c] for c in modcols]) if mods else None
    names = ["intrcpt", *modcols] if mods else None
    return rma_mv(d.yi, d.vi, X=X, names=names, random=[d[c] for c in cols], random_names=cols, **kw), X


def close(a, b, tol=1e-6):
    a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.max(np.abs(b)))))


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("key, method, mods", [("intercept_REML", "REML", False), ("intercept_ML", "ML", False),
                                               ("metareg_REML", "REML", True), ("metareg_ML", "ML", True)])
def test_nested_model_matches_rma_mv(name, key, method, mods):
    d, e = load(name)
    ref = e[key]
    fit, _ = fit_case(name, d, mods, method=method, component_tests=True)
    close(list(fit.sigma2.values()), ref["sigma2"], 1e-6)
    assert list(fit.sigma2) == ref["s.names"] and list(fit.n_levels.values()) == ref["s.nlevels"]
    close([c.estimate for c in fit.coefficients], ref["beta"])
    close([c.se for c in fit.coefficients], ref["se"], 1e-6)
    close(fit.extra["logLik"], ref["logLik"])
    close(fit.q, ref["QE"])
    if not mods:
        close([fit.pi_low, fit.pi_high], [ref["pi.lb"], ref["pi.ub"]], 1e-5)
    else:
        close(fit.qm, ref["QM"], 1e-5)
    for t, r in zip(fit.component_tests, ref["lrt"]):
        assert t.name == r["component"]
        assert abs(t.lrt - r["LRT"]) < 1e-5 * max(1, r["LRT"])


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("key, mods", [("intercept_REML_contain", False), ("metareg_REML_contain", True)])
def test_t_tests_use_contain_degrees_of_freedom(name, key, mods):
    d, e = load(name)
    ref = e[key]
    fit, _ = fit_case(name, d, mods, test="t", dfs="contain")
    assert [c.df for c in fit.coefficients] == pytest.approx(np.atleast_1d(ref["ddf"]).tolist())
    close([c.pval for c in fit.coefficients], ref["pval"], 1e-5)
    close([c.ci_low for c in fit.coefficients], ref["ci.lb"], 1e-5)
    if not mods:
        close([fit.pi_low, fit.pi_high], [ref["pi.lb"], ref["pi.ub"]], 1e-5)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("key, mods", [("intercept_REML_CR2", False), ("metareg_REML_CR2", True)])
def test_cr2_by_study_equals_clubsandwich(name, key, mods):
    d, e = load(name)
    ref = e[key]
    fit, X = fit_case(name, d, mods)
    rob = robust(fit, d.yi, d.vi, X, d.study, kind="CR2", form="cholesky")
    close([c.se for c in rob.coefficients], ref["se"], 1e-6)
    close([c.df for c in rob.coefficients], ref["df"], 1e-6)
    close([c.pval for c in rob.coefficients], ref["pval"], 1e-6)
    close([c.ci_low for c in rob.coefficients], ref["ci.lb"], 1e-6)
    # the p×p symmetric-root form solves the same unbiasedness condition; it is close, not identical
    sym = robust(fit, d.yi, d.vi, X, d.study, kind="CR2", form="symmetric")
    np.testing.assert_allclose([c.se for c in sym.coefficients], ref["se"], rtol=0.05)
    assert any("symmetric-root" in n for n in sym.notes)


def test_logdet_gradient_is_the_trace_of_the_inverse_times_each_level():
    rng = np.random.default_rng(3)
    k = 40
    a, b = np.repeat(np.arange(5), 8), rng.integers(0, 3, k)
    lv = encode_levels([a, b, np.arange(k)], ["a", "b", "es"])
    v = rng.uniform(0.01, 0.1, k)
    s2 = np.array([0.3, 0.1, 0.05])
    st = NestedCovariance(v, lv).prepare(s2)
    V = np.diag(v) + sum(s * (c[:, None] == c[None, :]) for s, c in zip(s2, lv.codes))
    Vi = np.linalg.inv(V)
    assert st.logdet == pytest.approx(np.linalg.slogdet(V)[1], rel=1e-12)
    Z = [(c[:, None] == c[None, :]).astype(float) for c in lv.codes]
    np.testing.assert_allclose(st.logdet_gradient(), [np.trace(Vi @ z) for z in Z], rtol=1e-10)
    U = rng.normal(size=(k, 3))
    np.testing.assert_allclose(st.solve(U), Vi @ U, rtol=1e-9, atol=1e-12)


def testsymmetric_cr2_meets_the_unbiasedness_condition():
    """Aⱼ(Φⱼ − XⱼMXⱼ')Aⱼ' = Φⱼ checked through its consequence: with e ~ N(0, Φ − XMX') the meat's
    expectation equals the model-based X'WΦWX, i.e. E[vcov_CR2] = M; exact identity in p×p terms."""
    from metaanalysis.models.robust import symmetric_cr2

    rng = np.random.default_rng(5)
    p, J = 2, 4
    Ns = []
    for _ in range(J):
        Xj = rng.normal(size=(6, p))
        L = rng.normal(size=(6, 6))
        Ns.append(Xj.T @ np.linalg.solve(L @ L.T + np.eye(6), Xj))
    N = np.array(Ns)
    M = np.linalg.inv(N.sum(0))
    T, _ = symmetric_cr2(M, N, np.zeros((J, p)))
    for j in range(J):
        # E[X'WAee'A'WX] = T'(N − N M N)T must equal N (the target X'WΦWX)
        np.testing.assert_allclose(T[j].T @ (N[j] - N[j] @ M @ N[j]) @ T[j], N[j], rtol=1e-9)


def test_row_order_does_not_change_the_fit():
    d, e = load("nested4")
    ref = e["metareg_REML_contain"]
    shuffled = d.sample(frac=1, random_state=7).reset_index(drop=True)
    fit, _ = fit_case("nested4", shuffled, True, test="t", dfs="contain")
    close([c.estimate for c in fit.coefficients], ref["beta"])
    assert [c.df for c in fit.coefficients] == ref["ddf"]
    close(fit.q, ref["QE"])


def test_levels_that_are_not_nested_are_refused():
    from metaanalysis import MetaInputError
    from metaanalysis.models.structure import Levels

    lv = Levels(("a", "a/b"), (np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])), (2, 2))
    with pytest.raises(MetaInputError, match="not nested"):
        NestedCovariance(np.ones(4), lv)


def test_cli_random_structure_on_a_csv(tmp_path):
    import json as _json

    from typer.testing import CliRunner

    from crev_cli import app

    d = pd.read_csv(HERE / "data" / "nested4.csv").drop(columns=["es"])
    p = tmp_path / "n4.csv"
    d.to_csv(p, index=False)
    ref = json.loads((HERE / "expected" / "nested_nested4.json").read_text())
    r = CliRunner().invoke(app, ["meta", "run", "--input", str(p), "--random", "study/lab/cluster/es", "--robust", "none", "--json"])
    assert r.exit_code == 0, r.output
    out = _json.loads(r.stdout)
    assert list(out["sigma2_levels"]) == ref["intercept_REML"]["s.names"]  # es added: one unit per row
    assert list(out["sigma2_levels"].values()) == ref["intercept_REML"]["s.nlevels"]
    np.testing.assert_allclose(out["sigma2"], ref["intercept_REML"]["sigma2"], rtol=2e-5)
    np.testing.assert_allclose(out["pval"], ref["intercept_REML_contain"]["pval"], rtol=1e-5)  # default: t with dfs = "contain"
    assert [t["name"] for t in out["component_tests"]] == ref["intercept_REML"]["s.names"]
    r = CliRunner().invoke(app, ["meta", "run", "--input", str(p), "--random", "study/lab/cluster/es", "--json"])
    out = _json.loads(r.stdout)
    assert out["test"] == "CR2" and out["n_clusters"] == 14  # the default for a multilevel model: CR2 by the outermost level
    np.testing.assert_allclose(out["se"], ref["intercept_REML_CR2"]["se"], rtol=1e-5)
    r = CliRunner().invoke(app, ["meta", "run", "--input", str(p), "--random", "study/nope"])
    assert r.exit_code == 2 and "nope" in r.stderr
