"""The cluster-robust test of several coefficients at once is clubSandwich's HTZ (Tipton & Pustejovsky
2015), pinned to ``tests/data/metafor/htz_reference.R`` (Wald_test(test = c("HTZ", "Naive-Fp")))."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metaanalysis import robust
from metaanalysis.models.design import design_matrix
from metaanalysis.models.multilevel import rma_mv
from metaanalysis.models.uni import MetaInputError
from metaanalysis.models.wald import WaldTestKind, wald_test

HERE = Path(__file__).parent / "data" / "metafor"
CASES = {  # name: (csv, random levels, moderator formula)
    "bornmann2007": ("bornmann2007", ["study", "obs"], "type + year_c"),  # year centred: see htz_reference.R
    "assink2016": ("assink2016_deltype", ["study", "esid"], "deltype + year"),
    "nested4": ("nested4", ["study", "lab", "cluster", "es"], "g + x"),
}


def close(a, b, tol=1e-6):
    a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.max(np.abs(b)))))


def cr2_fit(name, **kw):
    csv, cols, mods = CASES[name]
    d = pd.read_csv(HERE / "data" / f"{csv}.csv")
    design = design_matrix(d, mods)
    fit = rma_mv(d.yi, d.vi, X=design.X, names=design.names, random=[d[c] for c in cols], random_names=cols, component_tests=False)
    ref = json.loads((HERE / "expected" / f"htz_{name}.json").read_text())
    return robust(fit, d.yi, d.vi, design.X, d.study, kind="CR2", form="cholesky", **kw), ref


def r_name(name: str) -> str:
    """metafor's coefficient name for crev's (``type[Grant]`` is R's ``typeGrant``)."""
    return name.replace("[", "").replace("]", "")


@pytest.mark.parametrize("name", list(CASES))
def test_htz_equals_clubsandwich_wald_test(name):
    rb, ref = cr2_fit(name)
    names = [c.name for c in rb.coefficients]
    assert [r_name(n) for n in names] == ref["names"]
    close([c.estimate for c in rb.coefficients], ref["beta"])
    close([c.se for c in rb.coefficients], ref["CR2"]["se"])
    close([c.df for c in rb.coefficients], ref["CR2"]["df"])
    for t in ref["tests"]:
        coefs = [names[[r_name(n) for n in names].index(c)] for c in t["coefficients"]]
        for kind, key in ((WaldTestKind.HTZ, "HTZ"), (WaldTestKind.naive_F, "Naive-Fp")):
            w = wald_test(rb, coefs, test=kind)
            assert w.test == kind and w.coefficients == tuple(coefs) and w.df_num == t[key]["df_num"] == len(coefs)
            close([w.f, w.df_denom, w.p, w.delta], [t[key]["Fstat"], t[key]["df_denom"], t[key]["p_val"], t[key]["delta"]])


def test_the_omnibus_test_of_a_cr2_fit_is_htz_unless_naive_f_is_asked_for():
    rb, ref = cr2_fit("bornmann2007")
    htz = ref["tests"][0]["HTZ"]
    assert rb.wald.test == WaldTestKind.HTZ and rb.to_dict()["qm_test"] == "HTZ"
    close([rb.qm, rb.qm_df[1], rb.qm_pval], [htz["Fstat"], htz["df_denom"], htz["p_val"]])
    assert rb.qm_pval > 0.09  # the naive test's .0065 is not what a reader sees by default
    assert "HTZ; df = 2, 3.36" in rb.summary()
    naive, ref_naive = cr2_fit("bornmann2007", omnibus="naive-F")
    close([naive.qm, naive.qm_df[1], naive.qm_pval], [ref_naive["tests"][0]["Naive-Fp"][k] for k in ("Fstat", "df_denom", "p_val")])
    assert naive.wald.test == WaldTestKind.naive_F and any("naive F" in n for n in naive.notes)


def test_htz_of_one_coefficient_is_the_satterthwaite_t_test():
    rb, _ = cr2_fit("assink2016")
    c = rb.coefficients[3]
    w = wald_test(rb, [c.name])
    close([w.f, w.df_denom, w.p], [c.stat ** 2, c.df, c.pval], tol=1e-10)


def test_wald_test_refuses_unknown_coefficients_tests_and_non_cr2_fits():
    rb, _ = cr2_fit("bornmann2007")
    with pytest.raises(MetaInputError, match="no coefficient 'nope'"):
        wald_test(rb, ["nope"])
    with pytest.raises(MetaInputError, match="HTZ, naive-F"):
        wald_test(rb, test="chi2")
    d = pd.read_csv(HERE / "data" / "bornmann2007.csv")
    design = design_matrix(d, "type + year_c")
    fit = rma_mv(d.yi, d.vi, X=design.X, names=design.names, random=[d.study, d.obs], random_names=["study", "obs"], component_tests=False)
    cr1 = robust(fit, d.yi, d.vi, design.X, d.study, kind="CR1")
    assert cr1.wald.test == WaldTestKind.naive_F and cr1.qm_df == (2, 18.0)  # metafor's robust(): F(m, J - p)
    with pytest.raises(MetaInputError, match="needs a CR2 fit"):
        wald_test(cr1)


def test_cli_meta_run_prints_htz_by_default_and_naive_f_on_request(tmp_path):
    from typer.testing import CliRunner

    from crev_cli import app

    ref = json.loads((HERE / "expected" / "htz_bornmann2007.json").read_text())["tests"][0]
    args = ["meta", "run", "--input", str(HERE / "data" / "bornmann2007.csv"), "--study", "study", "--cluster", "obs",
            "--mods", "type + year_c", "--robust", "study", "--json"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["qm_test"] == "HTZ" and out["qm_df"][0] == 2
    close([out["qm"], out["qm_df"][1], out["qm_pval"]], [ref["HTZ"]["Fstat"], ref["HTZ"]["df_denom"], ref["HTZ"]["p_val"]], tol=1e-5)
    r = CliRunner().invoke(app, args + ["--omnibus", "naive-F"])
    out = json.loads(r.stdout)
    assert out["qm_test"] == "naive-F" and out["qm_df"] == [2, 18.0]
    close(out["qm_pval"], ref["Naive-Fp"]["p_val"], tol=1e-5)
    r = CliRunner().invoke(app, args + ["--omnibus", "chi2"])
    assert r.exit_code == 2 and "HTZ or naive-F" in r.stderr


def test_subgroup_differences_use_htz():
    from metaanalysis.analysis import AnalysisSpec, subgroups
    from metaanalysis.effects import EffectSettings, EffectTable

    d = pd.read_csv(HERE / "data" / "assink2016_deltype.csv").assign(cluster=lambda x: x.esid.astype(str), study=lambda x: x.study.astype(str))
    table = EffectTable(d, pd.DataFrame(columns=["reason"]), EffectSettings())
    sg = subgroups(table, "deltype", AnalysisSpec(random=("study", "es"), component_tests=False))
    assert sg.between.wald.test == WaldTestKind.HTZ and sg.between.qm_df[0] == 2
    assert "HTZ F(2," in sg.summary()
    naive = subgroups(table, "deltype", AnalysisSpec(random=("study", "es"), component_tests=False, omnibus="naive-F")).between
    assert naive.qm_df[1] == naive.n_clusters - 3 and naive.qm_pval < sg.between.qm_pval
