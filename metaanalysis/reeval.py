"""How much were robustness claims overestimated? Reported robust accuracy against an independent
AutoAttack re-evaluation of the same model.

A re-evaluation row is one measured with AutoAttack by a study other than the one that proposed
the method (the seed's adversarial-pruning benchmark, Piras et al. 2024, re-evaluates HYDRA, RST,
and others). It is paired with an original row of another study when dataset, architecture and
sparsity agree and the re-evaluated method's name appears in the original's method text. The gap is
reported minus re-evaluated robust accuracy, in percentage points; its variance is the sum of the two
binomial variances (n_test, or the dataset's standard test-set size, flagged). Gaps are pooled with
a random-effects model (REML); certified rows are never paired (a certificate is not an attack).

Reference: Croce F, Hein M (2020). Reliable evaluation of adversarial robustness with an ensemble
of diverse parameter-free attacks. ICML (AutoAttack); Carlini et al. (2019).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .effects import STANDARD_TEST_SIZES, binomial_variance
from .models.results import MetaResult
from .models.uni import rma_uni

__all__ = ["ReevaluationGaps", "reevaluation_gaps"]


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(s).lower())


@dataclass
class ReevaluationGaps:
    pairs: pd.DataFrame
    pooled: MetaResult | None
    note: str

    def to_frame(self) -> pd.DataFrame:
        return self.pairs

    def summary(self) -> str:
        if self.pooled is None:
            return f"{len(self.pairs)} reported/re-evaluated pairs. {self.note}"
        c = self.pooled.coefficients[0]
        return (f"{len(self.pairs)} pairs: reported robust accuracy exceeds the AutoAttack re-evaluation by {c.estimate:.2f} pp "
                f"[{c.ci_low:.2f}, {c.ci_high:.2f}], p = {c.pval:.3g} (random effects, REML). {self.note}")


def reevaluation_gaps(results: pd.DataFrame) -> ReevaluationGaps:
    r = results[results["robust_acc_compressed"].notna()].copy()
    re_rows = r[(r["attack"] == "autoattack") & r["compression_method"].str.contains("re-evaluat", case=False, na=False)]
    originals = r[(r["attack"] != "certified") & (r["threat_model"] != "certified")]
    pairs = []
    for _, e in re_rows.iterrows():
        label = str(e["compression_method"]).split()[0]
        cand = originals[
            (originals["study_id"] != e["study_id"])
            & (originals["dataset"].map(_norm) == _norm(e["dataset"]))
            & (originals["architecture"].map(_norm) == _norm(e["architecture"]))
            & (np.isclose(originals["sparsity"].astype(float), float(e["sparsity"]) if pd.notna(e["sparsity"]) else np.nan, atol=5e-3))
            & originals["compression_method"].str.contains(rf"\b{re.escape(label)}\b", case=False, na=False)
        ]
        for _, o in cand.iterrows():
            n_o = o["n_test"] if pd.notna(o["n_test"]) else STANDARD_TEST_SIZES.get(o["dataset"])
            n_e = e["n_test"] if pd.notna(e["n_test"]) else STANDARD_TEST_SIZES.get(e["dataset"])
            if n_o is None or n_e is None:
                continue
            po, pe = o["robust_acc_compressed"] / 100, e["robust_acc_compressed"] / 100
            pairs.append({
                "method": label, "dataset": e["dataset"], "architecture": e["architecture"], "sparsity": e["sparsity"],
                "original_study": o["study_id"], "reevaluating_study": e["study_id"], "reported": o["robust_acc_compressed"],
                "reevaluated": e["robust_acc_compressed"], "gap": o["robust_acc_compressed"] - e["robust_acc_compressed"],
                "vi": 1e4 * float(binomial_variance(np.array([po]), np.array([float(n_o)]))[0][0] + binomial_variance(np.array([pe]), np.array([float(n_e)]))[0][0]),
                "n_assumed": pd.isna(o["n_test"]) or pd.isna(e["n_test"]), "original_uid": o.get("uid"), "reeval_uid": e.get("uid"),
            })
    df = pd.DataFrame(pairs)
    if len(df) < 2:
        return ReevaluationGaps(df, None, "fewer than 2 pairs: no pooled gap")
    fit = rma_uni(df["gap"], df["vi"], method="REML")
    note = "n_test assumed (dataset's standard test-set size) for some pairs" if df["n_assumed"].any() else ""
    note += ("; " if note else "") + "pairs of one method share models: read the CI as optimistic"
    return ReevaluationGaps(df, fit, note)
