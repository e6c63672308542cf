"""A multiverse of defensible analyses, drawn as a specification curve.

Many choices in this meta-analysis are defensible and none is forced: which attacks count, which
perturbation budgets are comparable, whether a transfer attack measures the same thing, what
sample size to assume where a paper gives none, how strongly the dense and compressed models'
accuracies correlate on the same images, which effect measure, whether high-risk results enter.
The multiverse fits the default model (:func:`metaanalysis.analysis.run_analysis`: the multilevel
model with CR2 by study) under every combination and shows how far the answer depends on them:
the estimates sorted with their CIs, the choices underneath as a dot matrix, and the share of
specifications whose CI excludes zero (Simonsohn, Simmons & Nelson 2020; Steegen et al. 2016).

The grid (:data:`DIMENSIONS`): attack family (all / iterative only / AutoAttack only) × ε (each
study's own / L∞ ≤ 2/255 / L∞ in (2/255, 8/255] / L∞ > 8/255) × threat model (all / white-box
only) × assumed n (none / the dataset's test-set size) × ρ (0, 0.5, 0.9; only for the
difference in robust accuracy, which it enters) × effect (delta_robust in percentage points /
log odds ratio) × high-risk rows (included / excluded): 384 specifications.

Speed: the effects are computed once per (effect, ρ, assumed n) setting (8 tables); every
specification is a row mask on one of them, and specifications selecting the same rows of the
same table share one fit (key: the table and the mask's bytes). The distinct fits run in
parallel with joblib (loky processes), ``workers`` at a time.

The share of CIs excluding zero is descriptive, not a test: the specifications are not
independent analyses, so no multiple-testing correction applies to it and none is claimed.

References: Steegen S, Tuerlinckx F, Gelman A, Vanpaemel W (2016). Increasing transparency through
a multiverse analysis. Perspect Psychol Sci 11:702-712. Simonsohn U, Simmons JP, Nelson LD (2020).
Specification curve analysis. Nat Hum Behav 4:1208-1214.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from .analysis import AnalysisSpec, run_analysis
from .effects import EffectSettings, compute_effects
from .models.results import clean
from .models.uni import MetaInputError

__all__ = ["DIMENSIONS", "Specification", "spec_mask", "SpecResult", "MultiverseResult", "specifications", "multiverse", "ITERATIVE_ATTACKS",
           "AUTOATTACK"]

ITERATIVE_ATTACKS = frozenset({"pgd", "apgd", "pgd_pp", "eot_pgd", "bpda", "cw", "square", "autoattack", "autoattack_fast",
                               "autoattack_standard"})
AUTOATTACK = frozenset({"autoattack", "autoattack_fast", "autoattack_standard"})
EPS_BUCKETS = {"each study's own": None, "Linf <= 2/255": (0.0, 2 / 255), "Linf in (2/255, 8/255]": (2 / 255, 8 / 255),
               "Linf > 8/255": (8 / 255, np.inf)}
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "attack family": ("all", "iterative only", "AutoAttack only"),
    "epsilon": tuple(EPS_BUCKETS),
    "threat model": ("all", "white-box only"),
    "assumed n": ("none", "dataset size"),
    "rho": ("0", "0.5", "0.9"),
    "effect": ("delta_robust", "log_odds_ratio"),
    "high-risk rows": ("included", "excluded"),
}
_UNIT = {"delta_robust": "percentage points", "log_odds_ratio": "log odds ratio"}


@dataclass(frozen=True)
class Specification:
    attack: str
    epsilon: str
    threat: str
    assume_n: str
    rho: str | None  # None for the log odds ratio (no correlation enters it)
    effect: str
    high_risk: str

    def choices(self) -> dict[str, str]:
        return {"attack family": self.attack, "epsilon": self.epsilon, "threat model": self.threat, "assumed n": self.assume_n,
                "rho": self.rho if self.rho is not None else "n/a", "effect": self.effect, "high-risk rows": self.high_risk}

    def label(self) -> str:
        return "; ".join(f"{k}: {v}" for k, v in self.choices().items())


def specifications() -> list[Specification]:
    """Every combination of :data:`DIMENSIONS` (ρ only with delta_robust)."""
    d = DIMENSIONS
    out = []
    for a, e, t, n, eff, hr in itertools.product(d["attack family"], d["epsilon"], d["threat model"], d["assumed n"], d["effect"],
                                                  d["high-risk rows"]):
        for rho in (d["rho"] if eff == "delta_robust" else (None,)):
            out.append(Specification(a, e, t, n, rho, eff, hr))
    return out


@dataclass(frozen=True)
class SpecResult:
    spec: Specification
    ok: bool
    reason: str
    k: int
    n_studies: int
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    df: float | None = None
    test: str = ""

    @property
    def excludes_zero(self) -> bool:
        return bool(self.ok and (self.ci_low > 0 or self.ci_high < 0))


@dataclass
class MultiverseResult:
    results: list[SpecResult]
    n_distinct_fits: int
    seconds: float
    workers: int
    notes: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0  # CPU time of the effect tables and fits, summed over the worker processes

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for r in self.results:
            rows.append({**r.spec.choices(), "ok": r.ok, "reason": r.reason, "k": r.k, "n_studies": r.n_studies, "estimate": r.estimate,
                         "ci_low": r.ci_low, "ci_high": r.ci_high, "df": r.df, "test": r.test, "excludes_zero": r.excludes_zero})
        return pd.DataFrame(rows)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per effect measure: specifications, fitted ones, CIs excluding zero below and above it (counts)."""
        out = {}
        for eff in DIMENSIONS["effect"]:
            rs = [r for r in self.results if r.spec.effect == eff]
            ok = [r for r in rs if r.ok]
            out[eff] = {"specifications": len(rs), "fitted": len(ok), "ci_below_zero": sum(r.ci_high < 0 for r in ok),
                        "ci_above_zero": sum(r.ci_low > 0 for r in ok)}
        return out

    def summary(self) -> str:
        lines = [f"{len(self.results)} specifications ({self.n_distinct_fits} distinct fits, {self.workers} worker(s), {self.seconds:.1f} s wall, "
                 f"{self.cpu_seconds:.1f} s CPU in the fits)."]
        for eff, c in self.counts().items():
            n = c["fitted"]
            excl = c["ci_below_zero"] + c["ci_above_zero"]
            share = f"{excl} of {n} ({100 * excl / n:.0f}%)" if n else "0 of 0"
            est = [r.estimate for r in self.results if r.ok and r.spec.effect == eff]
            rng = f"; estimates range {min(est):+.2f} to {max(est):+.2f} {_UNIT[eff]}" if est else ""
            lines.append(f"{eff}: {n} of {c['specifications']} specifications could be fitted; CI excludes zero in {share} "
                         f"({c['ci_below_zero']} below, {c['ci_above_zero']} above){rng}.")
        reasons = pd.Series([r.reason for r in self.results if not r.ok]).value_counts()
        lines += [f"not fitted: {why} ({n} specifications)" for why, n in reasons.items()]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return clean({"summary": self.summary(), "counts": self.counts(), "n_specifications": len(self.results),
                      "n_distinct_fits": self.n_distinct_fits, "seconds": self.seconds, "cpu_seconds": self.cpu_seconds, "workers": self.workers,
                      "dimensions": {k: list(v) for k, v in DIMENSIONS.items()},
                      "specifications": [{**asdict(r), "excludes_zero": r.excludes_zero} for r in self.results], "notes": self.notes})

    def figure(self):
        """The specification curve (matplotlib): per effect measure, estimates sorted with CIs above
        and the choices as a dot matrix below."""
        from .speccurve import specification_curve_figure

        return specification_curve_figure(self)


class _Columns:
    """The columns a specification filters on, as plain arrays (converted once per effect table)."""

    def __init__(self, eff: pd.DataFrame):
        self.attack = eff["attack"].astype(str).to_numpy()
        self.epsilon = pd.to_numeric(eff["epsilon"], errors="coerce").astype(float).to_numpy()
        self.linf = eff["norm"].astype(str).to_numpy() == "linf"
        self.white_box = eff["threat_model"].astype(str).to_numpy() == "white_box"
        self.low_risk = ~eff["high_risk"].astype(bool).to_numpy()
        self.iterative = np.isin(self.attack, list(ITERATIVE_ATTACKS))
        self.autoattack = np.isin(self.attack, list(AUTOATTACK))


def spec_mask(eff: pd.DataFrame | _Columns, s: Specification) -> np.ndarray:
    """The rows of an effect table that specification ``s`` keeps."""
    c = eff if isinstance(eff, _Columns) else _Columns(eff)
    m = np.ones(len(c.attack), dtype=bool)
    if s.attack == "iterative only":
        m &= c.iterative
    elif s.attack == "AutoAttack only":
        m &= c.autoattack
    bucket = EPS_BUCKETS[s.epsilon]
    if bucket is not None:
        with np.errstate(invalid="ignore"):
            m &= c.linf & (c.epsilon > bucket[0] + 1e-12) & (c.epsilon <= bucket[1] + 1e-12)
    if s.threat == "white-box only":
        m &= c.white_box
    if s.high_risk == "excluded":
        m &= c.low_risk
    return m


def _fit(sub: pd.DataFrame, spec: AnalysisSpec) -> tuple:
    """One fit of the default model: (ok, reason, estimate, ci_low, ci_high, df, test)."""
    try:
        fit = run_analysis(sub, spec).fit
    except (MetaInputError, np.linalg.LinAlgError, ValueError) as exc:
        return False, str(exc).split(":")[0][:120], None, None, None, None, ""
    c = fit.coefficients[0]
    return True, "", c.estimate, c.ci_low, c.ci_high, c.df, fit.test


def _table_task(results: pd.DataFrame, key: tuple, specs: list[Specification], base: AnalysisSpec, min_effects: int):
    """One effect table (effect, assumed n, rho): its effects, then one fit per distinct row subset."""
    cpu0 = time.process_time()
    eff_name, n, rho = key
    settings = EffectSettings(measure=eff_name, correlation=float(rho or 0), assume_n="dataset" if n == "dataset size" else None)
    eff = compute_effects(results, settings).effects
    cols = [c for c in ("yi", "vi", "study", "cluster") if c in eff]
    fits: dict[str, tuple] = {}
    out = []
    arrays = _Columns(eff) if len(eff) else None
    for s in specs:
        m = spec_mask(arrays, s) if arrays is not None else np.zeros(0, dtype=bool)
        k = int(m.sum())
        n_st = int(eff.loc[m, "study"].nunique()) if k else 0
        if k < min_effects:
            out.append(SpecResult(s, False, f"fewer than {min_effects} effects", k, n_st))
            continue
        h = hashlib.blake2b(np.packbits(m).tobytes(), digest_size=16).hexdigest()
        if h not in fits:
            fits[h] = _fit(eff.loc[m, cols].reset_index(drop=True), base)
        ok, reason, est, lo, hi, df, test = fits[h]
        out.append(SpecResult(s, ok, reason, k, n_st, est, lo, hi, df, test))
    return out, len(fits), time.process_time() - cpu0


def multiverse(results: pd.DataFrame, *, spec: AnalysisSpec | None = None, workers: int = 2, min_effects: int = 2) -> MultiverseResult:
    """Fit the default model under every specification of :func:`specifications` to ``results``
    (a frame from :func:`evidence.query_results`, already filtered to what the analysis is about)."""
    t0 = time.perf_counter()
    base = (spec or AnalysisSpec()).replace(component_tests=False)  # the curve needs the estimate and its CI only
    groups: dict[tuple, list[Specification]] = {}
    for s in specifications():
        groups.setdefault((s.effect, s.assume_n, s.rho), []).append(s)
    keys = sorted(groups, key=lambda k: k[0] != "delta_robust")  # the larger delta_robust tables first
    if workers > 1:
        from joblib import Parallel, delayed

        done = Parallel(n_jobs=workers, backend="loky")(delayed(_table_task)(results, k, groups[k], base, min_effects) for k in keys)
    else:
        done = [_table_task(results, k, groups[k], base, min_effects) for k in keys]
    by_spec = {r.spec: r for rs, _, _ in done for r in rs}
    n_fits = sum(n for _, n, _ in done)
    cpu = sum(c for _, _, c in done)
    notes = ["each specification fits the default model (multilevel, CR2 by study where there are 2 or more studies); "
             "the share of CIs excluding zero is descriptive, not a test"]
    return MultiverseResult([by_spec[s] for s in specifications()], n_fits, time.perf_counter() - t0, workers, notes, cpu)
