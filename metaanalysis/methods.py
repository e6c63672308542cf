"""The methods paragraph of an analysis, generated from the objects that ran it (issue 25).

Every sentence is read off the fitted :class:`~metaanalysis.analysis.Analysis` (its spec, its
:class:`~metaanalysis.models.results.MetaResult`, the design's moderator coding, the effects and
the exclusions), the effect settings, the evidence provenance, the estimability constants the
answers and the bias methods apply (``answers.MIN_STUDIES``, ``robust.LOW_DF_WARNING``,
``bias.pubbias.MIN_STUDIES``) and the bias report that ran, so a change of any of them changes the
text: there is no hand-written template that can drift from what ran. Parts: data, model,
inference, estimability, sensitivity (bias), software, references.

References cited where the method is used: Viechtbauer W (2010) J Stat Softw 36(3); Van den
Noortgate W et al. (2013) Behav Res Methods 45:576-594; Knapp G, Hartung J (2003) Stat Med
22:2693-2710; Pustejovsky JE, Tipton E (2018) J Bus Econ Stat 36:672-683; Tipton E (2015) Psychol
Methods 20:375-393; Tipton E, Pustejovsky JE (2015) J Educ Behav Stat 40:604-634; Bell RM,
McCaffrey DF (2002) Surv Methodol 28:169-181; Vevea JL, Hedges LV (1995) Psychometrika 60:419-435;
Stanley TD, Doucouliagos H (2014) Res Synth Methods 5:60-78; Mathur MB, VanderWeele TJ (2020)
J R Stat Soc C 69:1091-1119; Egger M et al. (1997) BMJ 315:629-634.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

import numpy as np
import scipy

from . import answers
from .analysis import Analysis
from .bias import pubbias
from .effects import EffectMeasure, EffectSettings
from .models.robust import CHOLESKY_CR2_MAX, LOW_DF_WARNING
from .rscript.recipe import Provenance, crev_version

__all__ = ["MethodsText", "REFERENCES", "methods_text"]

REFERENCES = {
    "metafor": "Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package. J Stat Softw 36(3):1-48.",
    "multilevel": "Van den Noortgate W, López-López JA, Marín-Martínez F, Sánchez-Meca J (2013). Three-level meta-analysis of dependent "
                  "effect sizes. Behav Res Methods 45:576-594.",
    "knha": "Knapp G, Hartung J (2003). Improved tests for a random effects meta-regression with a single covariate. Stat Med 22:2693-2710.",
    "CR2": "Pustejovsky JE, Tipton E (2018). Small-sample methods for cluster-robust variance estimation and hypothesis testing in fixed "
           "effects models. J Bus Econ Stat 36:672-683.",
    "satterthwaite": "Tipton E (2015). Small sample adjustments for robust variance estimation with meta-regression. Psychol Methods 20:375-393.",
    "HTZ": "Tipton E, Pustejovsky JE (2015). Small-sample adjustments for tests of moderators and model fit using robust variance "
           "estimation in meta-regression. J Educ Behav Stat 40:604-634.",
    "symmetric": "Bell RM, McCaffrey DF (2002). Bias reduction in standard errors for linear regression with multi-stage samples. "
                 "Surv Methodol 28:169-181.",
    "egger": "Egger M, Davey Smith G, Schneider M, Minder C (1997). Bias in meta-analysis detected by a simple, graphical test. BMJ 315:629-634.",
    "pet-peese": "Stanley TD, Doucouliagos H (2014). Meta-regression approximations to reduce publication selection bias. Res Synth Methods 5:60-78.",
    "selection": "Vevea JL, Hedges LV (1995). A general linear model for estimating effect size in the presence of publication bias. "
                 "Psychometrika 60:419-435.",
    "mathur": "Mathur MB, VanderWeele TJ (2020). Sensitivity analysis for publication bias in meta-analyses. J R Stat Soc C 69:1091-1119.",
}
_BIAS_REFS = {"multilevel Egger": "egger", "PET-PEESE": "pet-peese", "selection model (3PSM)": "selection", "Mathur-VanderWeele sensitivity": "mathur"}
_MEASURES = {
    EffectMeasure.delta_robust: "the difference in robust accuracy, compressed minus dense model, in percentage points; its sampling "
                                "variance is the paired-proportion variance (exact from the discordant counts where reported, otherwise "
                                "the two binomial variances less twice their covariance at the assumed correlation)",
    EffectMeasure.log_odds_ratio: "the log odds ratio of robust accuracy, compressed versus dense model, from the 2×2 table of correct and "
                                  "incorrect test images (0.5 added to every cell of a table with an empty cell)",
    EffectMeasure.delta_retention: "the change of the robust/clean accuracy ratio in percentage points, with the delta-method variance "
                                   "R(1 - R)/(n·c) of each ratio",
}


@dataclass(frozen=True)
class MethodsText:
    """The methods paragraph by part (each a few sentences) and the references it cites."""

    data: str
    model: str
    inference: str
    estimability: str
    sensitivity: str
    software: str
    references: tuple[str, ...]

    PARTS = ("data", "model", "inference", "estimability", "sensitivity", "software")

    def text(self) -> str:
        body = " ".join(getattr(self, p) for p in self.PARTS if getattr(self, p))
        return body + "\n\nReferences\n" + "\n".join(f"- {r}" for r in self.references)

    def to_dict(self) -> dict:
        return {**{p: getattr(self, p) for p in self.PARTS}, "references": list(self.references), "text": self.text()}


def _n(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _data(an: Analysis, prov: Provenance, settings: EffectSettings | None) -> str:
    eff = an.effects
    out = [f"Data: {prov.evidence}; inclusion filters: {prov.filters}.",
           f"The analysis used {_n(an.fit.k, 'effect')} from {_n(an.n_studies, 'study', 'studies')}"]
    if len(an.excluded):
        reasons = an.excluded["reason"].value_counts() if "reason" in an.excluded else None
        top = "; ".join(f"{r} ({c:,})" for r, c in reasons.head(3).items()) if reasons is not None and len(reasons) else ""
        out[-1] += f"; {_n(len(an.excluded), 'result')} could not enter" + (f" (most often: {top})" if top else "")
    out[-1] += "."
    if settings is not None:
        out.append(f"The effect size is {_MEASURES[settings.measure]}" + (
            f" (ρ = {settings.correlation:g})" if settings.measure != EffectMeasure.log_odds_ratio else "") + ".")
        if settings.assume_n is None:
            out.append("Results that do not report the number of test images were excluded; no sample size was assumed.")
        elif settings.assume_n == "dataset":
            n_ass = int(eff["n_assumed"].sum()) if "n_assumed" in eff else None
            out.append("Where the number of test images was not reported, the data set's standard test-set size was assumed"
                       + (f" ({_n(n_ass, 'effect')} rest on this assumption)" if n_ass is not None else "") + ".")
        else:
            out.append(f"Where the number of test images was not reported, n = {settings.assume_n} was assumed.")
    return " ".join(out)


def _model(an: Analysis, refs: list[str]) -> str:
    fit, spec = an.fit, an.spec
    refs.append("metafor")
    if fit.model == "rma.mv":
        refs.append("multilevel")
        levels = list(fit.sigma2)
        counts = ", ".join(f"{name} ({fit.n_levels.get(name, '?'):,} groups)" for name in levels)
        text = (f"Effects were pooled with a {len(levels) + 1}-level random-effects model (metafor rma.mv, random = ~ 1 | "
                f"{'/'.join(fit.extra.get('random_columns', levels))}) with variance components for {counts}, estimated by {fit.method}.")
    elif spec.model == "common":
        text = "Effects were pooled with a common-effect model (metafor rma.uni, inverse-variance weights)."
    else:
        text = f"Effects were pooled with a random-effects model (metafor rma.uni) with τ² estimated by {fit.method}."
    coding = an.design.coding if an.design is not None else ()
    if coding:
        terms = []
        for t in coding:
            if t.kind == "factor":
                terms.append(f"{t.column} (treatment coding against '{t.levels[0]}')")
            else:
                terms.append(f"{t.column}²" if t.kind == "square" else f"{t.column} (as a number)")
        text += f" Moderators: {', '.join(terms)}."
    return text


def _inference(an: Analysis, refs: list[str]) -> str:
    fit, spec = an.fit, an.spec
    several = not fit.intercept_only and fit.qm_df is not None and fit.qm_df[0] > 1
    if fit.test == "CR2":
        refs += ["CR2", "satterthwaite"]
        text = (f"Inference was cluster-robust (CR2 bias-reduced linearisation, working-model weights) with {_n(fit.n_clusters or 0, 'cluster')} "
                f"({spec.robust_cluster}), t tests with Satterthwaite degrees of freedom per coefficient")
        if fit.extra.get("cr2_form") == "symmetric":
            refs.append("symmetric")
            text += (f" (CR2 in Bell & McCaffrey's symmetric-root form, because a cluster holds more than {CHOLESKY_CR2_MAX:,} effects)")
        if several:
            if fit.wald is not None and fit.wald.test.value == "HTZ":
                refs.append("HTZ")
                text += f"; the {fit.qm_df[0]} moderator coefficients were tested jointly by the approximate Hotelling T² test (HTZ) with its own df"
            else:
                text += f"; the {fit.qm_df[0]} moderator coefficients were tested jointly by a naive F(m, J − p) test (asked for; it over-rejects with few clusters)"
        text += "."
    elif fit.test in ("CR1", "CR0"):
        text = f"Inference was cluster-robust ({fit.test}) by {spec.robust_cluster}, t tests with J − p degrees of freedom."
    elif fit.test == "knha":
        refs.append("knha")
        text = "Tests and intervals used the Knapp–Hartung adjustment (t with k − p degrees of freedom)."
    elif fit.test == "t":
        text = "Tests and intervals used t distributions with metafor's 'contain' degrees of freedom (the groups of the level a coefficient varies at)."
    else:
        text = "Tests and intervals used z (normal) distributions."
    if fit.pi_low is not None:
        text += " Prediction intervals add the total between-unit variance to the squared SE on the same reference distribution."
    return text


def _estimability() -> str:
    # read at call time: the rules in force are the ones stated
    bias = "; ".join(f"{m}: at least {n} studies" for m, (n, _) in pubbias.MIN_STUDIES.items())
    return (f"Estimability: a pooled answer is given only with at least {answers.MIN_STUDIES} studies; a CR2 Satterthwaite df below "
            f"{LOW_DF_WARNING:g} marks the interval as unreliable (Tipton 2015). Minimums of the bias methods: {bias}.")


def _sensitivity(bias, refs: list[str]) -> str:
    if bias is None:
        return "No publication-bias or sensitivity analysis was run with this fit."
    ran = [a for a in bias.assessments if a.assessable]
    refused = [a for a in bias.assessments if not a.assessable]
    for a in ran:
        if a.method in _BIAS_REFS:
            refs.append(_BIAS_REFS[a.method])
    text = f"Publication bias on {_n(bias.k, 'effect')} from {_n(bias.n_studies, 'study', 'studies')}: "
    text += ("ran " + ", ".join(a.method for a in ran)) if ran else "no method could run"
    if refused:
        text += "; not assessable: " + ", ".join(f"{a.method} (needs {a.min_studies} studies)" for a in refused)
    return text + "."


def _software() -> str:
    return (f"Software: crev {crev_version()} (Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}); "
            "its estimates equal R metafor 3.8 and clubSandwich 0.5.8 on committed reference data, and `--emit-r` writes this fit as an "
            "R script that reproduces it.")


def methods_text(an: Analysis, provenance: Provenance, settings: EffectSettings | None = None, *, bias=None) -> MethodsText:
    """The methods paragraph of ``an`` (and of ``bias``, a :class:`~metaanalysis.bias.pubbias.BiasReport`, where one ran)."""
    refs: list[str] = []
    model = _model(an, refs)
    inference = _inference(an, refs)
    sens = _sensitivity(bias, refs)
    return MethodsText(_data(an, provenance, settings), model, inference, _estimability(), sens, _software(),
                       tuple(REFERENCES[r] for r in dict.fromkeys(refs)))
