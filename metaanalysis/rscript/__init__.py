"""Every analysis as a runnable R script (issue 25): the effect table the fit used, ``analysis.R``
refitting it with metafor / clubSandwich, and crev's own numbers beside it for the check.

- :mod:`metaanalysis.rscript.recipe`: :class:`FitRecipe` (what ran, read off the fit, its design and
  its data) and :class:`Provenance` (the header: crev version, evidence, filters, command).
- :mod:`metaanalysis.rscript.emit`: :func:`emit_r` writes ``effects.csv``, ``analysis.R`` and
  ``crev_results.json``; :func:`render_r` is the script's text.
- :mod:`metaanalysis.rscript.selection`: the step-function selection model (``meta bias``).
- :mod:`metaanalysis.rscript.command`: the ``crev meta ...`` command of an analysis (same for CLI and app).
- :mod:`metaanalysis.rscript.bundle`: the app's downloads (the same files, zipped).
- :mod:`metaanalysis.rscript.check`: :func:`compare_results` of ``r_results.json`` with crev's numbers.
"""

from .bundle import answers_bundle, app_provenance, run_bundle, zip_files
from .check import compare_results
from .command import command_for, describe_filters, filter_args
from .emit import R_RESULT_FIELDS, EmittedScript, crev_r_fields, emit_r, render_r, script_files
from .selection import SELECTION_FIELDS, emit_selection_r, render_selection_r
from .recipe import LIVE_DATABASE, FitRecipe, Provenance, crev_version, evidence_text, recipe_for, recipe_from_analysis

__all__ = ["answers_bundle", "app_provenance", "run_bundle", "zip_files", "script_files", "LIVE_DATABASE", "evidence_text", "SELECTION_FIELDS", "emit_selection_r", "render_selection_r", "compare_results", "command_for", "describe_filters", "filter_args", "R_RESULT_FIELDS", "EmittedScript", "crev_r_fields", "emit_r", "render_r", "FitRecipe", "Provenance", "crev_version",
           "recipe_for", "recipe_from_analysis"]
