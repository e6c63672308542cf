"""The app's "Download R script": the same files the CLI's ``--emit-r`` writes, as one zip.

:func:`run_bundle` is ``crev meta run --emit-r`` for an analysis (Meta-analysis page);
:func:`answers_bundle` is ``crev meta answer --emit-r`` (Overview page). The header names the same
command, evidence and filters as the CLI would for the same analysis, so the scripts are identical.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

from .answers import emit_answers_r
from .command import command_for, describe_filters
from .emit import script_files
from .recipe import Provenance, evidence_text, recipe_from_analysis

__all__ = ["answers_bundle", "app_provenance", "run_bundle", "zip_files"]

_EPOCH = (2000, 1, 1, 0, 0, 0)  # a fixed time stamp: the same analysis gives the same zip


def zip_files(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(files):
            z.writestr(zipfile.ZipInfo(name, date_time=_EPOCH), files[name])
    return buf.getvalue()


def app_provenance(subcommand: str, spec, filt, settings, release: str | None = None, content_hash: str | None = None) -> Provenance:
    """The header the CLI writes for ``crev meta <subcommand>`` with this filter, settings and spec."""
    return Provenance(evidence_text(release, content_hash), command_for(subcommand, spec, filt, settings, release), describe_filters(filt, settings))


def run_bundle(an, provenance: Provenance) -> bytes:
    """``effects.csv``, ``analysis.R`` and ``crev_results.json`` of one analysis, zipped."""
    return zip_files(script_files(recipe_from_analysis(an), provenance))


def answers_bundle(table, answers, provenance: Provenance) -> bytes:
    """Every pooled answer's script and the index (``crev meta answer --emit-r``), zipped."""
    with tempfile.TemporaryDirectory() as tmp:
        emit_answers_r(table, answers, provenance, tmp)
        root = Path(tmp)
        return zip_files({str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()})
