"""Publication bias for dependent effects: what can be checked, with how many studies.

The effects in this database are many per study (one study holds 7,798 effects from a complete
grid of sparsities and epsilons). Selection acts on what a *study* publishes, not on rows of a
grid, so a row-level funnel test measures the grid's shape, not publication bias. The methods
here respect that:

- **Multilevel Egger** (:func:`multilevel_egger`): the standard error (or the variance) of each
  effect as a moderator of the multilevel model, inference by CR2 cluster-robust variance by study
  (Rodgers & Pustejovsky 2021). Its slope is the funnel asymmetry; its intercept the limit
  estimate at se → 0.
- **PET-PEESE** (:func:`pet_peese`) on study-level aggregates: the precision-effect test
  (effect ~ se, weighted least squares with weights 1/v, statsmodels WLS = metafor's
  ``regtest(model = "lm")``) and, when PET's intercept differs from 0 (two-sided p < .10, i.e. a
  one-tailed 5 % test in either direction), the precision-effect estimate with standard error
  (effect ~ v). Stanley & Doucouliagos (2014).
- **Three-parameter selection model** on study-level aggregates (:mod:`metaanalysis.bias.selection`).
- **Mathur & VanderWeele's sensitivity analysis** on all effects clustered by study
  (:mod:`metaanalysis.bias.pubsens`).

Each method needs a minimum number of studies (:data:`MIN_STUDIES`, with the reason); below it
the answer is "not assessable with N studies", never a p-value. Study-level aggregates are each
study's own pooled estimate (its clusters as random effects; :func:`metaanalysis.analysis.study_estimate`),
so a study's aggregate carries its within-study heterogeneity, not only sampling error.

References
----------
- Egger M et al. (1997). BMJ 315:629-634; Sterne JAC et al. (2011). Recommendations for examining
  and interpreting funnel plot asymmetry. BMJ 343:d4002 (at least 10 studies).
- Rodgers MA, Pustejovsky JE (2021). Evaluating meta-analytic methods to detect selective reporting
  in the presence of dependent effect sizes. Psychol Methods 26:141-160.
- Stanley TD, Doucouliagos H (2014). Meta-regression approximations to reduce publication selection
  bias. Res Synth Methods 5:60-78.
- Vevea JL, Hedges LV (1995); Mathur MB, VanderWeele TJ (2020): see the modules named above.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm

from ..analysis import AnalysisSpec, per_study, run_analysis
from .funnel import egger_test, rank_test, trim_and_fill
from ..effects import EffectTable
from ..models.multilevel import rma_mv
from .pubsens import PubBiasSensitivity, pubbias_sensitivity
from ..models.results import clean
from ..models.robust import robust
from .selection import SelectionModelResult, step_selection_model
from ..models.uni import MetaInputError

__all__ = ["MIN_STUDIES", "MultilevelEggerResult", "multilevel_egger", "PetPeeseResult", "pet_peese", "BiasAssessment", "BiasReport",
           "study_aggregates", "bias_report", "ROW_LEVEL_WARNING"]

# the fewest studies each method needs, and why
MIN_STUDIES: dict[str, tuple[int, str]] = {
    "multilevel Egger": (10, "funnel-asymmetry tests need at least 10 studies (Sterne et al. 2011); CR2 df fall below 4 with fewer"),
    "PET-PEESE": (10, "a regression on study aggregates needs at least 10 studies (Stanley & Doucouliagos 2014; Sterne et al. 2011)"),
    "selection model (3PSM)": (10, "three parameters by ML need at least 10 studies, with studies on both sides of p = .025"),
    "Mathur-VanderWeele sensitivity": (10, "robust variance by study is unreliable (df < 4) with fewer than about 10 studies (Tipton 2015)"),
}
ROW_LEVEL_WARNING = ("WARNING: row-level Egger, Begg and trim-and-fill treat every effect as an independent study. The effects here "
                     "are many per study (grids of sparsity x epsilon), where publication selection cannot act row by row: "
                     "these tests are anti-conservative and trim-and-fill refits an independent-effects model, a different "
                     "estimand from the default multilevel model. Shown only because --row-level was asked for.")


@dataclass(frozen=True)
class MultilevelEggerResult:
    """Egger's test in the multilevel model: the moderator ``predictor`` (sei or vi), CR2 by study."""

    predictor: str
    k: int
    n_studies: int
    slope: float
    se: float
    tval: float
    df: float
    pval: float
    limit_estimate: float
    limit_se: float
    limit_ci_low: float
    limit_ci_high: float
    sigma2: dict[str, float]

    def to_dict(self) -> dict:
        return clean(asdict(self))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(self) | {"sigma2": str(self.sigma2)}])

    def summary(self) -> str:
        return (f"multilevel Egger ({self.predictor} as moderator, CR2 by study, {self.n_studies} studies, k = {self.k}): slope "
                f"{self.slope:.4f} (t = {self.tval:.3f}, df = {self.df:.1f}, p = {self.pval:.3g}); limit estimate {self.limit_estimate:.4f} "
                f"[{self.limit_ci_low:.4f}, {self.limit_ci_high:.4f}]")


def multilevel_egger(yi, vi, study, cluster=None, *, predictor: str = "sei", level: float = 0.95) -> MultilevelEggerResult:
    """``rma.mv(yi, vi, mods = ~ sqrt(vi), random = ~ 1 | study/cluster)`` then
    ``robust(fit, cluster = study, clubSandwich = TRUE)`` (``predictor="vi"``: ``mods = ~ vi``)."""
    if predictor not in ("sei", "vi"):
        raise MetaInputError("the Egger predictor is sei (standard error) or vi (variance)")
    y = np.asarray(yi, float)
    v = np.asarray(vi, float)
    x = np.sqrt(v) if predictor == "sei" else v
    X = np.column_stack([np.ones_like(y), x])
    names = ["intrcpt", predictor]
    fit = rma_mv(y, v, study, cluster, X, names, method="REML")
    rb = robust(fit, y, v, X, study, kind="CR2", level=level)
    b0, b1 = rb.coefficients
    return MultilevelEggerResult(predictor, len(y), int(pd.Series(study).nunique()), b1.estimate, b1.se, b1.stat, float(b1.df), b1.pval,
                                 b0.estimate, b0.se, b0.ci_low, b0.ci_high, dict(fit.sigma2))


@dataclass(frozen=True)
class PetPeeseResult:
    """PET (effect ~ se) and PEESE (effect ~ variance), weights 1/v; the conditional estimate."""

    k: int
    pet_estimate: float
    pet_se: float
    pet_ci_low: float
    pet_ci_high: float
    pet_pval: float
    pet_slope_pval: float
    peese_estimate: float
    peese_se: float
    peese_ci_low: float
    peese_ci_high: float
    peese_pval: float
    chosen: str  # "PET" | "PEESE"
    estimate: float
    ci_low: float
    ci_high: float
    alpha: float

    def to_dict(self) -> dict:
        return clean(asdict(self))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([
            {"model": "PET (effect ~ se)", "estimate": self.pet_estimate, "se": self.pet_se, "ci_low": self.pet_ci_low, "ci_high": self.pet_ci_high,
             "pval": self.pet_pval},
            {"model": "PEESE (effect ~ variance)", "estimate": self.peese_estimate, "se": self.peese_se, "ci_low": self.peese_ci_low,
             "ci_high": self.peese_ci_high, "pval": self.peese_pval},
        ])

    def summary(self) -> str:
        return (f"PET-PEESE on {self.k} study aggregates: PET intercept {self.pet_estimate:.4f} (p = {self.pet_pval:.3g}) -> {self.chosen}: "
                f"{self.estimate:.4f} [{self.ci_low:.4f}, {self.ci_high:.4f}]")


def pet_peese(yi, vi, *, alpha: float = 0.10, level: float = 0.95) -> PetPeeseResult:
    """PET-PEESE by weighted least squares (statsmodels ``WLS``, weights 1/vi; the residual scale is
    estimated, as in metafor's ``regtest(model = "lm")``). PEESE is chosen when PET's intercept has
    a two-sided p below ``alpha``."""
    y = np.asarray(yi, float)
    v = np.asarray(vi, float)
    if len(y) < 4:
        raise MetaInputError(f"PET-PEESE needs at least 4 effects, got {len(y)}")
    out = {}
    for name, x in (("pet", np.sqrt(v)), ("peese", v)):
        res = sm.WLS(y, sm.add_constant(x, has_constant="add"), weights=1.0 / v).fit()
        ci = res.conf_int(alpha=1 - level)
        out[name] = (float(res.params[0]), float(res.bse[0]), float(ci[0, 0]), float(ci[0, 1]), float(res.pvalues[0]), float(res.pvalues[1]))
    pet, peese = out["pet"], out["peese"]
    chosen = "PEESE" if pet[4] < alpha else "PET"
    est = peese if chosen == "PEESE" else pet
    return PetPeeseResult(len(y), pet[0], pet[1], pet[2], pet[3], pet[4], pet[5], peese[0], peese[1], peese[2], peese[3], peese[4], chosen,
                          est[0], est[2], est[3], alpha)


@dataclass(frozen=True)
class BiasAssessment:
    """One bias method's answer: a result, or why it cannot be assessed."""

    method: str
    assessable: bool
    n_studies: int
    min_studies: int
    reason: str
    result: MultilevelEggerResult | PetPeeseResult | SelectionModelResult | PubBiasSensitivity | None = None
    pval: float | None = None  # the method's test of bias, where it has one (enters the report's multiplicity correction)

    @property
    def verdict(self) -> str:
        if not self.assessable:
            return f"not assessable with {self.n_studies} stud{'y' if self.n_studies == 1 else 'ies'}: {self.reason}"
        return self.result.summary()

    def to_dict(self) -> dict:
        return clean({"method": self.method, "assessable": self.assessable, "n_studies": self.n_studies, "min_studies": self.min_studies,
                      "reason": self.reason, "verdict": self.verdict, "pval": self.pval,
                      "result": self.result.to_dict() if self.result is not None else None})


@dataclass
class BiasReport:
    """Every bias method on one effect table, and the row-level tests when asked for."""

    assessments: list[BiasAssessment]
    n_studies: int
    k: int
    row_level: list[str] = field(default_factory=list)  # summaries of the row-level tests (with the warning first)
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"method": a.method, "assessable": a.assessable, "studies": a.n_studies, "needs": a.min_studies, "pval": a.pval,
                              "verdict": a.verdict} for a in self.assessments])

    def to_dict(self) -> dict:
        return clean({"k": self.k, "n_studies": self.n_studies, "assessments": [a.to_dict() for a in self.assessments],
                      "row_level": self.row_level, "notes": self.notes})

    def summary(self) -> str:
        lines = [f"publication bias on {self.k} effects from {self.n_studies} studies (methods for dependent effects):"]
        lines += [f"- {a.method}: {a.verdict}" for a in self.assessments]
        lines += self.row_level
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def study_aggregates(table: EffectTable | pd.DataFrame, spec: AnalysisSpec | None = None) -> pd.DataFrame:
    """One row per study: its pooled estimate (``yi``) and squared SE (``vi``), and its k."""
    rows = per_study(table, spec)
    return pd.DataFrame({"study": rows["study"], "yi": rows["estimate"], "vi": rows["se"] ** 2, "k": rows["k"]})


def _not(method: str, n: int, extra: str = "") -> BiasAssessment:
    need, why = MIN_STUDIES[method]
    return BiasAssessment(method, False, n, need, extra or f"needs at least {need} studies: {why}")


def bias_report(table: EffectTable, spec: AnalysisSpec | None = None, *, row_level: bool = False, method: str = "REML") -> BiasReport:
    """Run each bias method that the number of studies allows; say why the others cannot run."""
    df = table.effects if isinstance(table, EffectTable) else table
    n = int(df["study"].nunique()) if len(df) else 0
    out: list[BiasAssessment] = []
    notes: list[str] = []
    # multilevel Egger: the default model with sqrt(vi) as a moderator, CR2 by study
    if n < MIN_STUDIES["multilevel Egger"][0]:
        out.append(_not("multilevel Egger", n))
    else:
        try:
            an = run_analysis(df.assign(sei=np.sqrt(df["vi"])).reset_index(drop=True),
                              (spec or AnalysisSpec()).replace(mods="sei", robust="CR2", robust_cluster="study", component_tests=False))
            b0, b1 = an.fit.coefficients[0], an.fit.coef("sei")
            res = MultilevelEggerResult("sei", an.fit.k, n, b1.estimate, b1.se, b1.stat, float(b1.df or np.nan), b1.pval, b0.estimate, b0.se,
                                        b0.ci_low, b0.ci_high, dict(an.fit.sigma2))
            out.append(BiasAssessment("multilevel Egger", True, n, MIN_STUDIES["multilevel Egger"][0], "", res, res.pval))
        except MetaInputError as exc:
            out.append(_not("multilevel Egger", n, f"the model cannot be fitted: {exc}"))
    need_agg = min(MIN_STUDIES["PET-PEESE"][0], MIN_STUDIES["selection model (3PSM)"][0])
    agg = study_aggregates(df, spec) if n >= need_agg else None
    if agg is None:
        out.append(_not("PET-PEESE", n))
    else:
        r = pet_peese(agg["yi"], agg["vi"])
        out.append(BiasAssessment("PET-PEESE", True, n, MIN_STUDIES["PET-PEESE"][0], "", r, r.pet_slope_pval))
    favor_positive = None
    if agg is None:
        out.append(_not("selection model (3PSM)", n))
    else:
        favor_positive = bool(np.average(agg["yi"], weights=1 / agg["vi"]) >= 0)
        try:
            r = step_selection_model(agg["yi"], agg["vi"], alternative="greater" if favor_positive else "less")
            out.append(BiasAssessment("selection model (3PSM)", True, n, MIN_STUDIES["selection model (3PSM)"][0], "", r, r.lrt_pval))
        except MetaInputError as exc:
            out.append(_not("selection model (3PSM)", n, str(exc)))
    if n < MIN_STUDIES["Mathur-VanderWeele sensitivity"][0]:
        out.append(_not("Mathur-VanderWeele sensitivity", n))
    else:
        try:
            r = pubbias_sensitivity(df["yi"], df["vi"], df["study"], favor_positive=favor_positive)
            out.append(BiasAssessment("Mathur-VanderWeele sensitivity", True, n, MIN_STUDIES["Mathur-VanderWeele sensitivity"][0], "", r))
        except MetaInputError as exc:
            out.append(_not("Mathur-VanderWeele sensitivity", n, str(exc)))
    rows: list[str] = []
    if row_level:
        y, v = df["yi"], df["vi"]
        rows = [ROW_LEVEL_WARNING, egger_test(y, v, method=method).summary(), egger_test(y, v, model="lm").summary()]
        rt = rank_test(y, v)
        rows.append(f"Begg's rank test: Kendall tau = {rt.tau:.4f}, p = {rt.pval:.4g}")
        rows.append(trim_and_fill(y, v, method=method).summary())
    return BiasReport(out, n, int(len(df)), rows, notes)
