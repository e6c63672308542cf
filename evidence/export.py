"""Export of results (CSV, JSON, Parquet) in the import's columns, and the import template."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from .parsing import parse_adv_training, parse_attack, parse_norm, parse_threat_model
from .queries import ResultFilter, query_results
from .readers import FORMULA_PREFIXES
from .rows import RESULT_COLUMNS

__all__ = ["to_interchange", "export_results", "escape_for_spreadsheet", "FORMULA_PREFIXES", "write_template", "template_csv", "TEMPLATE_EXAMPLE", "FORMATS"]

FORMATS = ("csv", "json", "parquet")

_TEXT_SOURCE = {
    "compression_level": "compression_level_text",
    "adversarial_training": "adversarial_training_text",
    "attack": "attack_text",
    "norm": "norm_text",
    "epsilon": "epsilon_text",
    "attack_steps": "steps_text",
    "threat_model": "threat_model_text",
}
_VERBATIM = {"verbatim": "yes", "derived": "no", "replication": "replication"}


def _num(v) -> str:
    """A number as the shortest text that reads back to the same double; empty for missing."""
    if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and np.isnan(v)):
        return ""
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    return str(int(v)) if isinstance(v, (int, np.integer)) else str(v)


# Controlled columns whose original text must read back to the stored value (the parser and the enum column).
_PARSED = {
    "adversarial_training": (parse_adv_training, "adversarial_training"),
    "attack": (parse_attack, "attack"),
    "norm": (parse_norm, "norm"),
    "threat_model": (parse_threat_model, "threat_model"),
}


def _faithful_text(texts: pd.Series, values: pd.Series, parse) -> pd.Series:
    """The original text where it parses back to the stored value; else ``"value (text)"``.

    A row written by code (a replication's "standard training") or corrected by a curator can carry a
    text that the parser maps elsewhere; exporting that text alone would change the value on import.
    """

    def one(text, value):
        value = getattr(value, "value", value)
        text = "" if text is None or text is pd.NA or (isinstance(text, float) and np.isnan(text)) else str(text)
        if value is None or value is pd.NA or value == "" or parse(text) == value:
            return text
        return f"{value} ({text})" if text else str(value)

    return pd.Series([one(t, v) for t, v in zip(texts, values)], index=texts.index, dtype=object)


def to_interchange(df: pd.DataFrame) -> pd.DataFrame:
    """Results in the seed's CSV columns (original texts, numbers as written) plus ``cluster``.

    Controlled values are written so that importing the file gives the same value back (see
    :func:`_faithful_text`).
    """
    out = pd.DataFrame(index=df.index)
    for col in RESULT_COLUMNS:
        if col in _PARSED and _PARSED[col][1] in df:
            out[col] = _faithful_text(df[_TEXT_SOURCE[col]], df[_PARSED[col][1]], _PARSED[col][0])
        elif col in _TEXT_SOURCE:
            out[col] = df[_TEXT_SOURCE[col]]
        elif col == "verbatim_check":
            out[col] = df["provenance"].map(_VERBATIM)
        elif col in ("clean_acc_dense", "robust_acc_dense", "clean_acc_compressed", "robust_acc_compressed", "n_test"):
            out[col] = df[col].map(_num)
        else:
            out[col] = df[col]
    out["cluster"] = df["cluster"]
    return out.fillna("")


# A cell starting with one of these is run as a formula by Excel, LibreOffice and Google Sheets
# (OWASP, "CSV Injection"): "=HYPERLINK(...)" in a notes cell would act when the file is opened.


def escape_for_spreadsheet(df: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as a formula, prefixed with ``'`` (shown as text).

    Only text columns are touched: numbers keep their values. The escaped file is for reading in a
    spreadsheet; re-importing it undoes the escaping (:func:`evidence.readers.unescape_spreadsheet_cell`).
    """
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v)
    return out


def export_results(
    engine: Engine, fmt: str = "csv", filt: ResultFilter | None = None, *, full: bool = False, spreadsheet: bool = False
) -> bytes:
    """The filtered results as bytes in ``fmt``; ``full`` adds every stored column (not importable);
    ``spreadsheet`` escapes formula-like text cells in CSV (:func:`escape_for_spreadsheet`)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    df = query_results(engine, filt)
    if not full:
        df = to_interchange(df)
    else:
        df = df.copy()
        for c in df.columns:
            if df[c].dtype == object:
                df[c] = df[c].map(lambda v: v.isoformat() if hasattr(v, "isoformat") else v)
    if fmt == "csv":
        if spreadsheet:
            df = escape_for_spreadsheet(df)
        return df.to_csv(index=False).encode()
    if fmt == "json":
        records = json.loads(df.to_json(orient="records"))
        return json.dumps(records, indent=1, ensure_ascii=False).encode()
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


TEMPLATE_EXAMPLE = {
    "study_id": "your_study_id",
    "source_location": "Table 2 (CIFAR-10, VGG-16)",
    "dataset": "CIFAR-10",
    "architecture": "VGG-16",
    "compression_method": "magnitude unstructured pruning + adversarial fine-tuning",
    "compression_level": "0.90",
    "adversarial_training": "yes",
    "attack": "PGD",
    "norm": "Linf",
    "epsilon": "8/255",
    "attack_steps": "10",
    "threat_model": "white-box",
    "clean_acc_dense": "82.7",
    "robust_acc_dense": "51.9",
    "clean_acc_compressed": "80.5",
    "robust_acc_compressed": "49.1",
    "n_test": "10000",
    "verbatim_check": "yes",
    "url_or_path": "https://arxiv.org/abs/2002.10509",
    "notes": "EXAMPLE ROW: illustrative values; replace every cell (the study id must exist) before importing",
}

_COLUMN_DOCS = {
    "study_id": "id of an existing study (crev evidence stats --json lists them); add new studies with add-study",
    "compression_level": "sparsity fraction in [0,1) such as 0.90 or 90%, or a bit width such as 4-bit; other text is kept as text",
    "adversarial_training": "yes / no / both, optionally followed by details in parentheses",
    "attack": "FGSM, PGD, CW, AutoAttack, UAP, Square, certified, or a description",
    "norm": "Linf, L2 or L0",
    "epsilon": "on the [0,1] pixel scale: 8/255 or 0.031; empty if not stated",
    "threat_model": "white-box, transfer, black-box (query) or certified",
    "clean_acc_dense": "percent in [0,100]; empty = not reported (never write 0 for missing)",
    "n_test": "number of evaluated test images; empty if not stated",
    "verbatim_check": "yes = copied from the source, no = derived (computed) from it",
    "url_or_path": "where the number comes from (URL, DOI or repository path)",
}


def template_csv() -> bytes:
    """The import template as CSV bytes: the header and one documented example row."""
    return pd.DataFrame([TEMPLATE_EXAMPLE], columns=list(RESULT_COLUMNS)).to_csv(index=False).encode()


def write_template(path: str | Path) -> Path:
    """Write an import template: the header, one documented example row, and a column guide beside it."""
    path = Path(path)
    pd.DataFrame([TEMPLATE_EXAMPLE], columns=list(RESULT_COLUMNS)).to_csv(path, index=False)
    guide = path.with_suffix(".columns.txt")
    guide.write_text(
        "Columns of the results import (one row = one dense vs compressed comparison under one attack setting)\n"
        + "\n".join(f"{c}: {_COLUMN_DOCS.get(c, 'free text')}" for c in RESULT_COLUMNS)
        + "\n",
        encoding="utf-8",
    )
    return path
