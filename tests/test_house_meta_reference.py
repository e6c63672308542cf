"""Influence diagnostics and subgroup analyses against R's metafor and clubSandwich.

Reference values: tests/data/metafor/expected/house_influence_subgroups.json, made by
``Rscript tests/data/metafor/house_reference.R`` (metafor 3.8-1, clubSandwich 0.5.8, tight convergence).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metaanalysis import AnalysisSpec, EffectSettings, EffectTable, influence, subgroups

DATA = Path(__file__).parent / "data" / "metafor"
REF = json.loads((DATA / "expected" / "house_influence_subgroups.json").read_text(encoding="utf-8"))


def _csv(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / "data" / name)


def _table(df: pd.DataFrame) -> EffectTable:
    return EffectTable(df, pd.DataFrame(columns=["reason"]), EffectSettings())


INFLUENCE_CASES = [("bcg_rr_REML", "bcg_rr.csv", "REML"), ("bcg_rr_DL", "bcg_rr.csv", "DL"),
                   ("normand1999_md_REML", "normand1999_md.csv", "REML"), ("bcg_rr_outlier_REML", "bcg_rr_outlier.csv", "REML")]


@pytest.mark.parametrize("key, csv, method", INFLUENCE_CASES, ids=[c[0] for c in INFLUENCE_CASES])
def test_influence_matches_metafor(key, csv, method):
    ref, d = REF["influence"][key], _csv(csv)
    out = influence(d["yi"], d["vi"], method=method)
    assert len(out) == len(d)
    for ours, theirs in (("rstudent", "rstudent"), ("dffits", "dffits"), ("cooks_distance", "cook.d"), ("hat", "hat"), ("weight_pct", "weight"),
                         ("dfbetas", "dfbs"), ("tau2_deleted", "tau2.del")):
        np.testing.assert_allclose(out[ours].to_numpy(float), np.array(ref[theirs], float), rtol=1e-6, atol=1e-9, err_msg=ours)


def test_influence_flags_the_outlier_metafor_flags():
    """metafor's "inf" flag (DFFITS, Cook's distance, hat, DFBETAS cut-offs) on every reference data set;
    trial 4 of dat.bcg moved to +2.5 is the only influential study there."""
    for key, csv, method in INFLUENCE_CASES:
        d = _csv(csv)
        flags = influence(d["yi"], d["vi"], method=method)["influential"].tolist()
        assert flags == REF["influence"][key]["inf"], key
    assert REF["influence"]["bcg_rr_outlier_REML"]["inf"].count(True) == 1


def test_influence_needs_three_effects():
    with pytest.raises(ValueError):
        influence([0.1, 0.2], [0.01, 0.02])


def _bcg_table() -> EffectTable:
    d = _csv("bcg_rr.csv")
    return _table(d.assign(study=d["trial"].astype(str), cluster=d["trial"].astype(str)))


def test_subgroups_random_effects_match_metafor_per_level_and_between():
    """Per level: rma(yi, vi, subset = alloc == level); between: the QM of rma(yi, vi, mods = ~ factor(alloc))."""
    ref = REF["subgroups"]["bcg_rr_alloc_REML"]
    res = subgroups(_bcg_table(), "alloc", AnalysisSpec(model="random"))
    groups = res.groups.set_index("group")
    assert list(groups.index) == sorted(ref["groups"])
    for level, r in ref["groups"].items():
        g = groups.loc[level]
        assert g["k"] == r["k"]
        for ours, theirs in (("estimate", "estimate"), ("se", "se"), ("ci_low", "ci.lb"), ("ci_high", "ci.ub"), ("pi_low", "pi.lb"),
                             ("pi_high", "pi.ub"), ("pval", "pval")):
            assert g[ours] == pytest.approx(r[theirs], rel=1e-6, abs=1e-9), (level, ours)
    assert res.between.qm == pytest.approx(ref["between"]["QM"], rel=1e-6)
    assert res.between.qm_df[0] == ref["between"]["QMdf"][0] == 2
    assert res.between.qm_pval == pytest.approx(ref["between"]["QMp"], rel=1e-6)


def test_subgroups_knapp_hartung_between_test_is_metafors_f_test():
    ref = REF["subgroups"]["bcg_rr_alloc_REML"]["between_knha"]
    res = subgroups(_bcg_table(), "alloc", AnalysisSpec(model="random", knha=True))
    assert res.between.qm == pytest.approx(ref["QM"], rel=1e-6)
    assert tuple(res.between.qm_df) == pytest.approx(tuple(ref["QMdf"]))
    assert res.between.qm_pval == pytest.approx(ref["QMp"], rel=1e-6)


def test_subgroups_name_a_missing_column():
    with pytest.raises(ValueError, match="no column 'nope'"):
        subgroups(_bcg_table(), "nope", AnalysisSpec(model="random"))


def _nested4_table() -> EffectTable:
    d = _csv("nested4.csv")
    return _table(d.assign(study=d["study"].astype(str), cluster=d["cluster"].astype(str)))


def test_subgroups_under_the_default_multilevel_model_match_metafor_and_clubsandwich():
    """crev's default: rma.mv(random = ~ 1 | study/cluster/es), REML, CR2 by study (clubSandwich).
    Per level: the fit on that level's effects; between: the CR2 Wald test of the factor, which
    for two levels is clubSandwich's HTZ F test (= the Satterthwaite t test squared)."""
    ref = REF["subgroups"]["nested4_g_REML_es"]
    res = subgroups(_nested4_table(), "g")
    groups = res.groups.set_index("group")
    for level, r in ref["groups"].items():
        g = groups.loc[level]
        assert g["k"] == r["k"]
        assert g["estimate"] == pytest.approx(r["estimate"], rel=1e-5, abs=1e-7), level
        for ours, theirs in (("se", "se"), ("ci_low", "ci.lb"), ("ci_high", "ci.ub"), ("pval", "pval")):
            assert g[ours] == pytest.approx(r["CR2"][theirs], rel=1e-4, abs=1e-6), (level, ours)
    between = ref["between_CR2"]
    assert res.between.qm == pytest.approx(between["HTZ_F"], rel=1e-4)
    assert res.between.qm_df[0] == between["HTZ_df_num"] == 1
    assert res.between.qm_df[1] == pytest.approx(between["HTZ_df_denom"], rel=1e-4)
    assert res.between.qm_pval == pytest.approx(between["HTZ_p"], rel=1e-4)
    sigma2 = list(res.between.sigma2.values())
    np.testing.assert_allclose(sigma2, ref["between"]["sigma2"], rtol=1e-4)


def test_subgroups_without_robust_inference_use_the_model_based_qm():
    ref = REF["subgroups"]["nested4_g_REML_es"]["between"]
    res = subgroups(_nested4_table(), "g", AnalysisSpec(robust=None, test="z"))
    assert res.between.qm == pytest.approx(ref["QM"], rel=1e-4)
    assert res.between.qm_pval == pytest.approx(ref["QMp"], rel=1e-4)
