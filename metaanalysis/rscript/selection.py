"""The step-function selection model as a runnable R script (``crev meta bias --emit-r``).

Writes the table the model was fitted to (one row per study aggregate, or the effects), and
``analysis.R`` calling metafor's ``selmodel(rma(yi, vi, method = "ML"), type = "stepfun", steps,
alternative)`` at tight convergence; ``r_results.json`` holds the fields of crev's
:class:`~metaanalysis.bias.selection.SelectionModelResult` (``beta``, ``se``, ``zval``, ``pval``,
``ci_low``, ``ci_high``, ``tau2``, ``delta``, ``lrt``, ``lrt_df``, ``lrt_pval``, ``loglik``, ...).

Reference: Vevea JL, Hedges LV (1995). A general linear model for estimating effect size in the
presence of publication bias. Psychometrika 60:419-435; Viechtbauer W (2010), metafor ``selmodel``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..bias.selection import SelectionModelResult
from ..models.results import clean
from .emit import CREV_RESULTS, DATA_FILE, R_RESULTS, R_SCRIPT, EmittedScript
from .recipe import Provenance

__all__ = ["SELECTION_FIELDS", "emit_selection_r", "render_selection_r"]

SELECTION_FIELDS = ("k", "beta", "se", "zval", "pval", "ci_low", "ci_high", "tau2", "se_tau2", "delta", "se_delta", "lrt", "lrt_df", "lrt_pval",
                    "loglik", "loglik_unadjusted", "beta_unadjusted", "k_per_interval")


def render_selection_r(result: SelectionModelResult, provenance: Provenance, what: str) -> str:
    steps = ", ".join(repr(s) for s in result.steps[:-1])
    header = ["crev step-function selection model, reproduced with R's metafor (Vevea & Hedges 1995)", *provenance.lines(),
              f"data: {what}; k = {result.k}; steps {steps}; one-sided p-values, alternative = {result.alternative!r}",
              f"Run: Rscript {R_SCRIPT}  (R >= 4 with metafor, jsonlite); compare {R_RESULTS} with {CREV_RESULTS}."]
    body = [
        *("# " + h for h in header), "",
        "suppressMessages({library(metafor); library(jsonlite)})",
        'here <- local({a <- grep("^--file=", commandArgs(FALSE), value = TRUE); if (length(a)) dirname(normalizePath(sub("^--file=", "", a[1]))) else getwd()})',
        f'dat <- read.csv(file.path(here, "{DATA_FILE}"), check.names = FALSE, colClasses = c(study = "character", yi = "numeric", vi = "numeric"))',
        "ml <- rma(yi, vi, data = dat, method = \"ML\", control = list(threshold = 1e-12, tol = 1e-12, maxiter = 10000))",
        f"sel <- selmodel(ml, type = \"stepfun\", steps = c({steps}), alternative = {json.dumps(result.alternative)}, "
        "control = list(optimizer = \"optim\", optmethod = \"BFGS\", reltol = 1e-14, maxit = 10000))",
        "res <- list(k = sel$k, beta = unname(c(sel$beta))[1], se = unname(sel$se)[1], zval = unname(sel$zval)[1], pval = unname(sel$pval)[1],",
        "            ci_low = unname(sel$ci.lb)[1], ci_high = unname(sel$ci.ub)[1], tau2 = sel$tau2, se_tau2 = sel$se.tau2,",
        "            delta = I(unname(sel$delta)), se_delta = I(unname(sel$se.delta)), lrt = unname(sel$LRT), lrt_df = unname(sel$LRTdf),",
        "            lrt_pval = unname(sel$LRTp), loglik = as.numeric(logLik(sel)), loglik_unadjusted = as.numeric(logLik(ml)),",
        "            beta_unadjusted = unname(c(ml$beta))[1], k_per_interval = I(unname(as.integer(sel$ptable$k))))",
        f'write_json(res, file.path(here, "{R_RESULTS}"), auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE)',
        f'cat("wrote", file.path(here, "{R_RESULTS}"), "\\n")',
    ]
    return "\n".join(body) + "\n"


def emit_selection_r(data: pd.DataFrame, result: SelectionModelResult, provenance: Provenance, out_dir: str | Path,
                     what: str = "one row per study: its pooled estimate and squared SE") -> EmittedScript:
    """Write the selection model's table (``study``, ``yi``, ``vi``), ``analysis.R`` and crev's numbers into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data[["study", "yi", "vi"]].to_csv(out / DATA_FILE, index=False)
    (out / R_SCRIPT).write_text(render_selection_r(result, provenance, what))
    d = result.to_dict()
    (out / CREV_RESULTS).write_text(json.dumps(clean({k: d[k] for k in SELECTION_FIELDS if k in d}), indent=1))
    return EmittedScript(out / R_SCRIPT, out / DATA_FILE, out / CREV_RESULTS)
