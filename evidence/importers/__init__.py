"""Importers for formats the field already publishes; each turns a source into one pending
submission through :func:`evidence.submit.submit` and reports every entry it skipped and why.

One small class per format behind :class:`Importer` (registry :data:`IMPORTERS`):
:class:`~evidence.importers.robustbench.RobustBenchImporter` (RobustBench ``model_info`` JSON) and
:class:`~evidence.importers.bibtex.BibtexImporter` (BibTeX or a DOI list → study stubs).
"""

from __future__ import annotations

from .base import Importer
from .bibtex import BibtexImporter
from .robustbench import RobustBenchImporter

__all__ = ["Importer", "IMPORTERS", "RobustBenchImporter", "BibtexImporter"]

IMPORTERS: dict[str, type[Importer]] = {cls.name: cls for cls in (RobustBenchImporter, BibtexImporter)}
