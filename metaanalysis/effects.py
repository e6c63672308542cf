"""Effect sizes of compression on adversarial robustness, computed from ``Result`` rows.

Each comparison of a dense and a compressed model on one test set gives one effect:

- ``delta_robust``: robust accuracy of the compressed model minus the dense one, in percentage
  points. Both models are scored on the same images, so the two accuracies are paired. Where the
  discordant counts are stored (``n_robust_dense_only`` = p10·n, ``n_robust_compressed_only`` =
  p01·n: replication rows) the variance is the exact paired one, [p10 + p01 − (p10 − p01)²]/n
  (metafor's ``escalc(measure = "MPRD")``, with its 0.5 added to every cell of a row with an empty
  cell, flagged). Elsewhere it is the binomial variance of each proportion, p(1-p)/n, minus twice the
  covariance ρ·sqrt(v₁v₂) (default ρ = 0: conservative), never below |Δ|(1 − |Δ|)/n, the least
  paired variance that a difference Δ allows (p10 + p01 ≥ |Δ|). :func:`metaanalysis.sensitivity.
  correlation_sensitivity` repeats the analysis over ρ = 0, 0.5, 0.8, 0.9.
- ``log_odds_ratio``: log odds ratio of robust accuracy (compressed vs dense) from the 2×2 table of
  correct / incorrect images, 0.5 added to every cell of a row only where a cell is 0
  (Haldane-Anscombe; metafor's ``escalc(measure = "OR", add = 1/2, to = "only0")``).
- ``delta_retention``: change of the robust / clean accuracy ratio, in percentage points. With the
  images correct under attack a subset of those correct when clean, the delta method gives
  Var(R̂) = R(1-R) / (n·c): the binomial variance of R among the n·c clean-correct images.

A proportion of exactly 0 or 1 has a binomial variance of 0; its variance is computed from
(x + 0.5) / (n + 1) instead, and the effect is flagged. A row that cannot give the chosen effect is
listed in ``excluded`` with its reason, never dropped silently. ``n_test`` missing can be replaced
by an assumed value (a number, or ``"dataset"`` for the dataset's standard test-set size); every
effect that uses it carries ``n_assumed = True``. A **floor** row (``floor``) is one where both
models are at or below chance (100 / classes): the Wilson 95% CI of each robust accuracy reaches
down to chance (statsmodels ``proportion_confint``), so the row cannot show a change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import pandas as pd

from .models.uni import MetaInputError
from .rigour import rigour_scores

__all__ = ["EffectMeasure", "EffectSettings", "EffectTable", "compute_effects", "STANDARD_TEST_SIZES", "MODERATOR_COLUMNS", "N_CLASSES",
           "binomial_variance", "paired_variance"]

STANDARD_TEST_SIZES = {
    "MNIST": 10000, "Fashion-MNIST": 10000, "CIFAR-10": 10000, "CIFAR-100": 10000, "SVHN": 26032, "ImageNet": 50000,
    "Imagenette": 3925, "Tiny-ImageNet": 10000,
}
# number of classes: chance accuracy is 100 / classes; rows where both models are at or below it are "floor" rows
N_CLASSES = {"MNIST": 10, "Fashion-MNIST": 10, "CIFAR-10": 10, "CIFAR-100": 100, "SVHN": 10, "ImageNet": 1000, "Imagenette": 10,
             "Tiny-ImageNet": 200}
MODERATOR_COLUMNS = (
    "compression_family", "sparsity", "bits", "adversarial_training", "epsilon", "threat_model", "attack", "dataset", "norm",
    "architecture", "provenance", "source_kind", "steps",
)


class EffectMeasure(str, Enum):
    delta_robust = "delta_robust"
    log_odds_ratio = "log_odds_ratio"
    delta_retention = "delta_retention"


@dataclass(frozen=True)
class EffectSettings:
    """How effects are computed. Every setting is printed with the results it produced."""

    measure: EffectMeasure = EffectMeasure.delta_robust
    correlation: float = 0.0
    assume_n: int | str | None = None  # None: rows without n_test are excluded

    def __post_init__(self):
        object.__setattr__(self, "measure", EffectMeasure(self.measure))
        if not -1.0 < self.correlation < 1.0:
            raise MetaInputError("the correlation of the two accuracies must lie in (-1, 1)")
        if self.assume_n is not None and self.assume_n != "dataset" and (not isinstance(self.assume_n, int) or self.assume_n < 1):
            raise MetaInputError("assume_n must be a positive integer, 'dataset', or None")

    def describe(self) -> list[str]:
        notes = [f"effect: {self.measure.value}"]
        if self.measure != EffectMeasure.log_odds_ratio:
            notes.append(f"correlation of dense and compressed accuracies assumed {self.correlation:g}"
                         + (" (conservative default)" if self.correlation == 0 else ""))
        if self.assume_n is None:
            notes.append("rows without n_test are excluded (no sample size assumed)")
        elif self.assume_n == "dataset":
            notes.append("n_test missing -> the dataset's standard test-set size is ASSUMED (flagged n_assumed)")
        else:
            notes.append(f"n_test missing -> n = {self.assume_n} is ASSUMED (flagged n_assumed)")
        return notes


@dataclass
class EffectTable:
    """Effects ready for a model (``yi``, ``vi``, study, cluster, moderators) and the excluded rows."""

    effects: pd.DataFrame
    excluded: pd.DataFrame
    settings: EffectSettings
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.effects)

    def to_frame(self) -> pd.DataFrame:
        return self.effects

    def to_csv(self, path=None) -> str | None:
        """CSV with ``yi, vi, study, cluster`` and every moderator, ready for metafor."""
        cols = ["yi", "vi", "study", "cluster", *[c for c in MODERATOR_COLUMNS if c in self.effects], "n_test", "n_assumed",
                "variance_corrected", "paired_variance", "floor", "rigour_score", "high_risk", "uid"]
        return self.effects[[c for c in cols if c in self.effects]].to_csv(path, index=False)

    def summary(self) -> str:
        lines = [f"{len(self.effects)} effects from {self.effects['study'].nunique() if len(self.effects) else 0} studies; "
                 f"{len(self.excluded)} rows excluded"]
        if len(self.excluded):
            for reason, n in self.excluded["reason"].value_counts().items():
                lines.append(f"  excluded: {reason} ({n} rows)")
        if len(self.effects):
            e = self.effects
            lines.append(f"  assumed n_test on {int(e['n_assumed'].sum())} effects; "
                         f"continuity-corrected variance on {int(e['variance_corrected'].sum())}")
            if "paired_variance" in e:
                lines.append(f"  exact paired variance (discordant counts) on {int(e['paired_variance'].sum())} effects; "
                             f"floor rows (both models at or below chance) {int(e['floor'].sum())}")
        lines.extend(f"  {n}" for n in self.settings.describe())
        return "\n".join(lines)


def binomial_variance(p: np.ndarray, n: np.ndarray):
    """p(1-p)/n, with p in {0, 1} replaced by (x + 0.5)/(n + 1); returns (variance, corrected?)."""
    p, n = np.asarray(p, float), np.asarray(n, float)
    edge = (p <= 0) | (p >= 1)
    pc = np.where(edge, (p * n + 0.5) / (n + 1), p)
    return pc * (1 - pc) / n, edge


def paired_variance(n11: np.ndarray, n10: np.ndarray, n01: np.ndarray, n00: np.ndarray):
    """Variance of p01 − p10 for paired binary outcomes on the same n images from the four cells
    (both right, dense only, compressed only, neither): [p10 + p01 − (p10 − p01)²]/n, metafor's
    ``escalc(measure = "MPRD")`` with its default ``add = 1/2, to = "only0"`` (0.5 added to every cell
    of a row with an empty cell). Returns (variance, corrected?)."""
    cells = [np.asarray(x, float) for x in (n11, n10, n01, n00)]
    zero = np.any([c <= 0 for c in cells], axis=0)
    n11, n10, n01, n00 = (np.where(zero, c + 0.5, c) for c in cells)
    n = n11 + n10 + n01 + n00
    p10, p01 = n10 / n, n01 / n
    return (p10 + p01 - (p10 - p01) ** 2) / n, zero


def _floor(eff: pd.DataFrame) -> pd.Series:
    """Both models at or below chance (100 / classes): the Wilson 95% CI of each robust accuracy
    reaches down to chance (statsmodels ``proportion_confint``), so the row cannot show a change."""
    from statsmodels.stats.proportion import proportion_confint

    if "dataset" not in eff or not len(eff):
        return pd.Series(False, index=eff.index)
    chance = (1.0 / eff["dataset"].map(N_CLASSES).astype(float)).to_numpy()
    n = eff["n_test"].to_numpy(float)
    out = np.isfinite(chance)
    for col in ("robust_acc_dense", "robust_acc_compressed"):
        x = np.rint(eff[col].to_numpy(float) / 100 * n)
        low, _ = proportion_confint(x, n, alpha=0.05, method="wilson")
        out &= np.asarray(low) <= chance
    return pd.Series(out, index=eff.index)


def compute_effects(results: pd.DataFrame, settings: EffectSettings | None = None) -> EffectTable:
    """Effects for every row of a results frame (from :func:`evidence.query_results`)."""
    settings = settings or EffectSettings()
    r = results.reset_index(drop=True)
    reasons = pd.Series("", index=r.index, dtype=object)

    def exclude(mask, reason):
        mask = mask & (reasons == "")
        reasons[mask] = reason

    n = r["n_test"].astype("Float64")
    n_assumed = n.isna()
    if settings.assume_n == "dataset":
        n = n.fillna(r["dataset"].map(STANDARD_TEST_SIZES).astype("Float64"))
    elif settings.assume_n is not None:
        n = n.fillna(float(settings.assume_n))
    n_assumed &= n.notna()
    n = n.astype(float).to_numpy()
    measure = settings.measure
    exclude(r["robust_acc_compressed"].isna(), "robust accuracy of the compressed model not reported")
    exclude(r["robust_acc_dense"].isna(), "dense (uncompressed) robust accuracy not reported")
    if measure == EffectMeasure.delta_retention:
        exclude(r["clean_acc_compressed"].isna() | r["clean_acc_dense"].isna(), "clean accuracy not reported (retention needs it)")
        exclude((r["clean_acc_compressed"] <= 0) | (r["clean_acc_dense"] <= 0), "clean accuracy is 0 (retention undefined)")
        above = (r["robust_acc_compressed"] > r["clean_acc_compressed"]) | (r["robust_acc_dense"] > r["clean_acc_dense"])
        exclude(above.fillna(False), "robust accuracy above clean accuracy (retention above 100%)")
    exclude(pd.Series(np.isnan(n), index=r.index),
            "n_test not reported" + (" and no standard size known for the dataset" if settings.assume_n == "dataset" else " (set an assumed n_test to include it)"))
    ok = reasons == ""
    rd = (r["robust_acc_dense"].astype(float) / 100).to_numpy()
    rc = (r["robust_acc_compressed"].astype(float) / 100).to_numpy()
    yi = np.full(len(r), np.nan)
    vi = np.full(len(r), np.nan)
    corrected = np.zeros(len(r), dtype=bool)
    paired = np.zeros(len(r), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == EffectMeasure.delta_robust:
            vd, ed = binomial_variance(rd, n)
            vc, ec = binomial_variance(rc, n)
            yi = 100 * (rc - rd)
            d = np.abs(rc - rd)
            vi = 1e4 * np.maximum(vd + vc - 2 * settings.correlation * np.sqrt(vd * vc), d * (1 - d) / n)
            corrected = ed | ec
            if {"n_robust_dense_only", "n_robust_compressed_only"} <= set(r.columns):
                n10 = pd.to_numeric(r["n_robust_dense_only"], errors="coerce").to_numpy(float)
                n01 = pd.to_numeric(r["n_robust_compressed_only"], errors="coerce").to_numpy(float)
                paired = np.isfinite(n10) & np.isfinite(n01) & ~n_assumed.to_numpy() & np.isfinite(n)
                if paired.any():
                    n11 = np.where(paired, np.rint(rd * n) - n10, 1)  # both right = dense right − dense only
                    n00 = np.where(paired, n - n11 - n10 - n01, 1)
                    pv, pz = paired_variance(n11, np.where(paired, n10, 1), np.where(paired, n01, 1), n00)
                    vi = np.where(paired, 1e4 * pv, vi)
                    corrected = np.where(paired, pz, corrected)
        elif measure == EffectMeasure.log_odds_ratio:
            a, c = rc * n, rd * n
            b, d = n - a, n - c
            zero = (a <= 0) | (b <= 0) | (c <= 0) | (d <= 0)
            add = np.where(zero, 0.5, 0.0)
            a, b, c, d = a + add, b + add, c + add, d + add
            yi = np.log(a * d / (b * c))
            vi = 1 / a + 1 / b + 1 / c + 1 / d
            corrected = zero
        else:
            cd = (r["clean_acc_dense"].astype(float) / 100).to_numpy()
            cc = (r["clean_acc_compressed"].astype(float) / 100).to_numpy()
            Rd, Rc = rd / cd, rc / cc
            vd, ed = binomial_variance(Rd, n * cd)
            vc, ec = binomial_variance(Rc, n * cc)
            yi = 100 * (Rc - Rd)
            vi = 1e4 * (vd + vc - 2 * settings.correlation * np.sqrt(vd * vc))
            corrected = ed | ec
    bad_v = ok & ~(np.isfinite(vi) & (vi > 0))
    exclude(pd.Series(bad_v, index=r.index), "variance is not positive (check the accuracies and n_test)")
    ok = (reasons == "").to_numpy()
    eff = r.loc[ok].copy()
    eff.insert(0, "yi", yi[ok])
    eff.insert(1, "vi", vi[ok])
    eff.insert(2, "study", eff["study_id"])
    eff["n_test"] = n[ok]
    eff["n_assumed"] = n_assumed.to_numpy()[ok]
    eff["variance_corrected"] = np.asarray(corrected, bool)[ok]
    eff["paired_variance"] = paired[ok]
    eff["floor"] = _floor(eff)
    eff = eff.join(rigour_scores(eff))
    eff = eff.reset_index(drop=True)
    excl = r.loc[~ok, [c for c in ("uid", "study_id", "dataset", "compression_method", "compression_level_text", "epsilon_text") if c in r]].copy()
    excl["reason"] = reasons[~ok].to_numpy()
    return EffectTable(eff, excl.reset_index(drop=True), settings, settings.describe())
