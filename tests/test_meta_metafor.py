"""Our numbers against R's metafor (tests/data/metafor: values computed by metafor 3.8-1).

Tolerances: estimates, standard errors, intervals and tau² within 1e-6 (absolute, or relative for
values above 1), p-values within 1e-5. Iterative estimators are compared with metafor's refits at
tight convergence (``*_tight``): metafor's default stops up to ~1e-6 short of the optimum.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metaanalysis import egger_test, leave_one_out, q_profile_ci, rank_test, rma_mv, rma_uni, robust, trim_and_fill

REF = Path(__file__).parent / "data" / "metafor"
DATASETS = ["bcg_or", "bcg_rr", "normand1999_md", "konstantopoulos2011"]


def load(name):
    return pd.read_csv(REF / "data" / f"{name}.csv"), json.loads((REF / "expected" / f"{name}.json").read_text())


def close(a, b, tol=1e-6):
    if b is None:
        assert a is None or np.isnan(a)
        return
    assert abs(a - b) <= tol * max(1.0, abs(b)), f"{a} vs {b}"


def check_scalar(fit, ref, tol=1e-6, ptol=1e-5):
    c = fit.coefficients[0]
    close(c.estimate, ref["estimate"], tol)
    close(c.se, ref["se"], tol)
    close(c.ci_low, ref["ci.lb"], tol)
    close(c.ci_high, ref["ci.ub"], tol)
    close(c.stat, ref["zval"], tol)
    assert abs(c.pval - ref["pval"]) <= ptol
    if ref.get("tau2") is not None and fit.tau2 is not None:
        close(fit.tau2, ref["tau2"], tol)
    if "QE" in ref:
        close(fit.q, ref["QE"], tol)
        assert abs(fit.q_pval - ref["QEp"]) <= ptol
    if ref.get("pi.lb") is not None:
        close(fit.pi_low, ref["pi.lb"], tol)
        close(fit.pi_high, ref["pi.ub"], tol)


NONITERATIVE = ["FE", "EE", "DL", "HE", "SJ"]
ITERATIVE = ["ML", "REML", "PM", "EB", "PMM"]


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("method", NONITERATIVE)
def test_noniterative_estimators_match_metafor(name, method):
    d, e = load(name)
    for group, knha in (("methods", False), ("knha", True)):
        if method not in e[group]:
            continue
        fit = rma_uni(d.yi, d.vi, method=method, knha=knha)
        check_scalar(fit, e[group][method])
        ref = e[group][method]
        close(fit.i2, ref["I2"])
        close(fit.h2, ref["H2"])


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("method", ITERATIVE)
def test_iterative_estimators_match_metafor_tight(name, method):
    d, e = load(name)
    ref = e["methods_tight_convergence"][method]
    fit = rma_uni(d.yi, d.vi, method=method)
    check_scalar(fit, ref)
    close(fit.i2, ref["I2"])


@pytest.mark.parametrize("name", DATASETS)
def test_default_convergence_reml_is_within_metafors_own_slack(name):
    d, e = load(name)
    fit = rma_uni(d.yi, d.vi, method="REML")
    ref = e["methods"]["REML"]
    assert abs(fit.tau2 - ref["tau2"]) < 2e-5 * max(1, ref["tau2"])
    assert abs(fit.estimate - ref["estimate"]) < 1e-5 * max(1, abs(ref["estimate"]))


@pytest.mark.parametrize("name", DATASETS)
def test_q_profile_interval_for_tau2(name):
    d, e = load(name)
    ref = e.get("confint_REML_QP_tight", e["confint_REML_QP"])
    ci = q_profile_ci(d.yi, d.vi)
    close(ci.tau2[1], ref["tau^2"]["ci.lb"])
    close(ci.tau2[2], ref["tau^2"]["ci.ub"])
    close(ci.i2[1], ref["I^2(%)"]["ci.lb"])
    close(ci.h2[2], ref["H^2"]["ci.ub"])
    # the Q-profile bounds do not depend on the estimator; metafor's confint for DL used its default
    # root-finding tolerance (no tight refit is given), so compare at that tolerance
    dl = q_profile_ci(d.yi, d.vi, method="DL")
    ub = e["confint_DL_QP"]["tau^2"]["ci.ub"]
    if abs(ub - max(100.0, 10 * dl.tau2[0])) < 1e-6 * ub:
        # metafor searched only up to its cap tau2.max = max(100, 10 x estimate) and reports the cap; the true
        # Q-profile bound lies beyond it (its Q statistic there is still above the quantile)
        assert dl.tau2[2] > ub
    else:
        close(dl.tau2[2], ub, tol=1e-5)
    close(dl.tau2[0], e["confint_DL_QP"]["tau^2"]["estimate"])


def _metareg_check(fit, ref, tol=1e-6):
    for c in fit.coefficients:
        rc = ref["coefficients"][c.name]
        close(c.estimate, rc["estimate"], tol)
        close(c.se, rc["se"], tol)
        close(c.ci_low, rc["ci.lb"], tol)
        assert abs(c.pval - rc["pval"]) <= 1e-5
    close(fit.qm, ref["QM"], tol)
    assert abs(fit.qm_pval - ref["QMp"]) <= 1e-5
    if ref.get("tau2") is not None and fit.tau2 is not None:
        close(fit.tau2, ref["tau2"], tol)
    if fit.r2 is not None and ref.get("R2") is not None:
        close(fit.r2, ref["R2"], tol)


@pytest.mark.parametrize("key, method, knha", [
    ("ablat_year_REML_tight", "REML", False), ("ablat_year_ML_tight", "ML", False), ("ablat_year_DL", "DL", False),
    ("ablat_year_EE", "EE", False), ("ablat_year_PM_tight", "PM", False), ("ablat_year_REML_knha_tight", "REML", True),
])
@pytest.mark.parametrize("name", ["bcg_or", "bcg_rr"])
def test_meta_regression_continuous(name, key, method, knha):
    d, e = load(name)
    X = np.column_stack([np.ones(len(d)), d.ablat, d.year])
    _metareg_check(rma_uni(d.yi, d.vi, X, ["intrcpt", "ablat", "year"], method=method, knha=knha), e["metareg"][key])


@pytest.mark.parametrize("key, method", [("factor_alloc_REML_tight", "REML"), ("factor_alloc_ML_tight", "ML"), ("factor_alloc_DL", "DL")])
def test_meta_regression_factor_with_design_matrix(key, method):
    from metaanalysis import design_matrix

    d, e = load("bcg_or")
    des = design_matrix(d, "alloc")
    names = ["intrcpt", "factor(alloc)random", "factor(alloc)systematic"]
    assert des.names == ["intrcpt", "alloc[random]", "alloc[systematic]"]
    _metareg_check(rma_uni(d.yi, d.vi, des.X, names, method=method), e["metareg"][key])


@pytest.mark.parametrize("key, method, test, cluster", [
    ("REML", "REML", "z", "school"), ("ML", "ML", "z", "school"), ("REML_t", "REML", "t", "school"),
    ("twolevel_district_only_REML", "REML", "z", None),
])
def test_three_level_model(key, method, test, cluster):
    d, e = load("konstantopoulos2011")
    ref = e["threelevel"][key]
    fit = rma_mv(d.yi, d.vi, d.district, d[cluster] if cluster else None, method=method, test=test)
    check_scalar(fit, ref)
    for ours, theirs in zip(fit.sigma2.values(), ref["sigma2"].values()):
        close(ours, theirs)
    assert list(fit.n_levels.values()) == list(ref["s.nlevels"].values())
    close(fit.extra["logLik"], ref["fit.stats"]["logLik"])


@pytest.mark.parametrize("key, method", [("year_c_REML", "REML"), ("year_c_ML", "ML")])
def test_three_level_meta_regression(key, method):
    d, e = load("konstantopoulos2011")
    ref = e["threelevel_metareg"][key]
    X = np.column_stack([np.ones(len(d)), d.year - d.year.mean()])
    fit = rma_mv(d.yi, d.vi, d.district, d.school, X, ["intrcpt", "I(year - mean(year))"], method=method)
    _metareg_check(fit, ref)
    for ours, theirs in zip(fit.sigma2.values(), ref["sigma2"].values()):
        close(ours, theirs)


ROBUST_KINDS = [("CR1", "CR1_adjust"), ("CR0", "CR0_noadjust"), ("CR2", "clubSandwich_CR2")]


@pytest.mark.parametrize("kind, refkey", ROBUST_KINDS)
@pytest.mark.parametrize("model", ["uni_REML", "uni_DL", "threelevel_REML", "uni_REML_metareg_year_c"])
def test_cluster_robust_inference(model, kind, refkey):
    d, e = load("konstantopoulos2011")
    ref = e["robust"][f"{model}_cluster_district"][refkey]
    X = np.ones((len(d), 1))
    names = ["intrcpt"]
    if model == "uni_DL":
        fit = rma_uni(d.yi, d.vi, method="DL")
    elif model == "threelevel_REML":
        fit = rma_mv(d.yi, d.vi, d.district, d.school)
    else:
        if model.endswith("year_c"):
            X = np.column_stack([X, d.year - d.year.mean()])
            names = ["intrcpt", "I(year - mean(year))"]
        # robust() is checked on metafor's own tau² (its default convergence) to isolate the sandwich
        tau2 = e["metareg"]["year_c_REML"]["tau2"] if model.endswith("year_c") else e["methods"]["REML"]["tau2"]
        fit = rma_uni(d.yi, d.vi, X, names, method="REML", tau2=tau2)
    rob = robust(fit, d.yi, d.vi, X, d.district, kind=kind)
    refc = list(ref["coefficients"].values()) if "coefficients" in ref else [ref]
    for c, rc in zip(rob.coefficients, refc):
        close(c.estimate, rc["estimate"])
        close(c.se, rc["se"])
        close(c.df, rc["df"])
        close(c.ci_low, rc["ci.lb"])
        assert abs(c.pval - rc["pval"]) <= 1e-5
    assert rob.n_clusters == ref["n.clusters"]
    if "QM" in ref:
        close(rob.qm, ref["QM"])


@pytest.mark.parametrize("name", DATASETS)
def test_egger_rank_trimfill_leave1out(name):
    d, e = load(name)
    for key, method, model in (("rma_EE", "EE", "rma"), ("lm", "REML", "lm")):
        ref = e["regtest"][key]
        eg = egger_test(d.yi, d.vi, method=method, model=model)
        close(eg.stat, ref["zval"])
        assert abs(eg.pval - ref["pval"]) <= 1e-5
        close(eg.limit_estimate, ref["limit.estimate"])
        close(eg.limit_ci_low, ref["limit.ci.lb"])
    eg = egger_test(d.yi, d.vi, method="REML")  # vs metafor's default-convergence REML: its own slack
    assert abs(eg.stat - e["regtest"]["rma_REML"]["zval"]) < 1e-4
    rt = rank_test(d.yi, d.vi)
    close(rt.tau, e["ranktest_REML"]["tau"])
    assert abs(rt.pval - e["ranktest_REML"]["pval"]) <= 1e-5
    for method in ("EE", "REML"):
        ref = e["trimfill"][method]
        tf = trim_and_fill(d.yi, d.vi, method=method)
        assert (tf.k0, tf.side) == (ref["k0"], ref["side"])
        close(tf.se_k0, ref["se.k0"])
        if method == "EE":
            check_scalar(tf.fit, ref)
            np.testing.assert_allclose(tf.filled_yi, ref["filled.yi"], atol=1e-8)
            np.testing.assert_allclose(tf.filled_vi, ref["filled.vi"], atol=1e-10)
        else:
            assert abs(tf.fit.estimate - ref["estimate"]) < 1e-5 * max(1, abs(ref["estimate"]))
    l1 = leave_one_out(d.yi, d.vi, method="REML")
    ref = e["leave1out_REML"]
    np.testing.assert_allclose(l1["estimate"], ref["estimate"], atol=1e-5 * max(1, np.max(np.abs(ref["estimate"]))))
    np.testing.assert_allclose(l1["Q"], ref["Q"], rtol=1e-8)


def test_common_effect_meta_regression_equals_statsmodels_wls():
    """A regression-based check with statsmodels: the common-effect meta-regression is WLS with
    weights 1/vi and a known scale of 1 (statsmodels' SEs divided by the estimated residual SD)."""
    import statsmodels.api as sm

    d, _ = load("bcg_rr")
    X = np.column_stack([np.ones(len(d)), d.ablat, d.year])
    fit = rma_uni(d.yi, d.vi, X, ["intrcpt", "ablat", "year"], method="EE")
    w = sm.WLS(d.yi.to_numpy(), X, weights=1 / d.vi.to_numpy()).fit()
    np.testing.assert_allclose([c.estimate for c in fit.coefficients], w.params, rtol=1e-10)
    np.testing.assert_allclose([c.se for c in fit.coefficients], w.bse / np.sqrt(w.scale), rtol=1e-10)
    assert fit.q == pytest.approx(w.ssr, rel=1e-10)  # QE is the weighted residual sum of squares


def test_profile_ci_of_each_sigma2_matches_metafor_confint():
    d, _ = load("konstantopoulos2011")
    ref = json.loads((REF / "expected" / "nested_confint_konstantopoulos2011.json").read_text())["profile"]
    fit = rma_mv(d.yi, d.vi, d.district, d.school, profile_ci=True)
    for (name, (lo, hi)), r in zip(fit.sigma2_ci.items(), ref.values()):
        assert lo == pytest.approx(r["ci.lb"], rel=1e-6) and hi == pytest.approx(r["ci.ub"], rel=1e-6), name
    assert fit.to_dict()["sigma2_ci"]["study"] == [lo_ := fit.sigma2_ci["study"][0], fit.sigma2_ci["study"][1]] and lo_ > 0
