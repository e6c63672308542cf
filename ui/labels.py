"""What the app shows for stored values: one mapping from each vocabulary value (the enums of
:mod:`evidence.vocab` and :mod:`metaanalysis`) and column name to a human label, and number
formats with units ("p < 0.001", never "p = 0"; "–" for a missing value, never "None").

Pages never print a snake_case value: they pass it through :func:`label` or :func:`frame`.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pandas as pd

import evidence as ev

__all__ = ["VALUE_LABELS", "COLUMN_LABELS", "label", "question", "column", "frame", "pval", "num", "share", "pp", "epsilon", "MISSING"]

MISSING = "–"

# Vocabulary values (evidence.vocab, metaanalysis.EffectMeasure, question ids) -> label. Values not
# listed are shown with underscores turned into spaces, so a new enum member never shows raw.
VALUE_LABELS: dict[str, str] = {
    # compression family / kind
    "unstructured_pruning": "unstructured pruning", "structured_pruning": "structured pruning", "quantization": "quantization",
    "binarization": "binarization", "ensemble": "ensemble of low-precision models", "pruning": "pruning", "both": "both",
    # adversarial training
    "yes": "with adversarial training", "no": "without adversarial training", "unknown": "not stated",
    # attacks
    "fgsm": "FGSM", "pgd": "PGD", "cw": "Carlini–Wagner", "autoattack": "AutoAttack", "uap": "universal perturbation",
    "square": "Square (query attack)", "certified": "certified (verified bound)", "apgd": "APGD", "autoattack_fast": "AutoAttack (fast)",
    "autoattack_standard": "AutoAttack (standard)", "pgd_pp": "PGD++ (temperature-scaled)", "eot_pgd": "EOT-PGD", "bpda": "BPDA",
    "other": "other",
    # norms
    "linf": "L∞", "l2": "L2", "l0": "L0",
    # threat model
    "white_box": "white-box", "transfer": "transfer (black-box)", "black_box_query": "black-box (queries)",
    "common_corruptions": "common corruptions (not adversarial)",
    # directions of claims
    "up": "more robust", "down": "less robust", "neutral": "no change", "mixed": "mixed",
    # review
    "pending": "pending", "approved": "approved", "rejected": "rejected",
    "seed": "seed", "add_study": "new study", "import_results": "results import", "correction": "correction", "replication": "replication",
    "release": "curated release", "robustbench": "RobustBench import",
    # provenance / source
    "verbatim": "copied from the source", "derived": "computed from the source", "literature": "literature",
    # effect measures
    "delta_robust": "robust-accuracy change (pp)", "log_odds_ratio": "log odds ratio of robust accuracy",
    "delta_retention": "change in robust/clean retention (pp)",
}
# the disputed questions' text, from their one declaration (evidence.Question); see question()
_QUESTIONS: dict[str, str] = {q.value: q.text for q in ev.Question}

COLUMN_LABELS: dict[str, str] = {
    "study_id": "study", "study": "study", "dataset": "dataset", "architecture": "architecture",
    "compression_family": "compression", "compression_level_text": "level (as written)", "compression_method": "method",
    "sparsity": "sparsity", "bits": "bits", "adversarial_training": "adversarial training", "attack": "attack", "norm": "norm",
    "epsilon": "epsilon", "epsilon_text": "epsilon (as written)", "steps": "attack steps", "threat_model": "threat model",
    "clean_acc_dense": "clean acc. dense (%)", "robust_acc_dense": "robust acc. dense (%)",
    "clean_acc_compressed": "clean acc. compressed (%)", "robust_acc_compressed": "robust acc. compressed (%)",
    "robust_change": "robust change (pp)", "clean_change": "clean change (pp)", "n_test": "test images",
    "provenance": "numbers", "gradient_masking": "possible gradient masking", "warnings": "flags", "url_or_path": "source",
    "source_location": "where in the source", "review_status": "review", "source_kind": "source kind", "quick": "quick run",
    "release": "release", "question_id": "question", "direction": "direction", "position": "position (in the study's words)",
    "conditions_note": "conditions", "submitted_by": "submitted by", "submitted_at": "submitted at", "kind": "kind",
    "status": "status", "n_studies": "studies", "n_claims": "claims", "n_results": "results", "reviewed_by": "reviewed by",
    "reason": "reason", "source_file": "file", "id": "id", "entity": "entry", "key": "id", "field": "field",
    "current": "current", "proposed": "proposed",
}


def label(value) -> str:
    """The label of a vocabulary value (an enum member or its string)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return MISSING
    v = getattr(value, "value", value)
    if isinstance(v, bool):
        return "yes" if v else "no"
    s = str(v)
    return VALUE_LABELS.get(s) or _QUESTIONS.get(s) or s.replace("_", " ")


def question(qid) -> str:
    """A disputed question's text (``quantization`` is both a family and a question id)."""
    q = str(getattr(qid, "value", qid))
    return _QUESTIONS.get(q, label(q))


def column(name: str) -> str:
    return COLUMN_LABELS.get(name, name.replace("_", " "))


VOCAB_COLUMNS = ("compression_family", "adversarial_training", "attack", "norm", "threat_model", "direction", "main_direction",
                 "review_status", "provenance", "source_kind", "kind", "status", "question_id", "compression_kind", "measure")


def frame(df: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """``df`` for display: vocabulary values as labels, columns renamed, missing values shown as "–"
    (numbers stay numbers so the table sorts them; Streamlit shows a missing number as empty)."""
    out = df[columns].copy() if columns else df.copy()
    for c in out.columns:
        if c in VOCAB_COLUMNS:
            out[c] = out[c].map(label)
        elif out[c].dtype == object:
            out[c] = out[c].map(lambda v: MISSING if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA else v)
    return out.rename(columns={c: column(c) for c in out.columns})


def pval(p) -> str:
    """"p < 0.001" below 0.001, else 2 significant digits; never "p = 0"."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "p not available"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.2g}" if p < 0.1 else f"p = {p:.2f}"


def num(x, digits: int = 1, unit: str = "", signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)) or x is pd.NA:
        return MISSING
    s = f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"
    return f"{s} {unit}".rstrip()


def share(n: int, total: int) -> str:
    """``n`` of ``total`` as a whole percentage that never rounds to 0 % or 100 % unless it is
    (:func:`metaanalysis.answers.share`); "–" when there is no total."""
    if not total:
        return MISSING
    from metaanalysis.answers import share as whole_percent

    return whole_percent(n, total)


def pp(x, signed: bool = True) -> str:
    """A change in percentage points."""
    return num(x, 1, "pp", signed)


def epsilon(v) -> str:
    """An Linf epsilon on the [0, 1] scale as k/255 where it is one (8/255), else its value."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    if v == 0:
        return "0"
    k = Fraction(float(v) * 255).limit_denominator(2)
    if abs(float(k) / 255 - v) < 1e-9 and (k.denominator == 1 or k < 1):
        return f"{k.numerator}/255" if k.denominator == 1 else f"{float(k):g}/255"
    return f"{v:.4g}"
