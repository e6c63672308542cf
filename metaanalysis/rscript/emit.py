"""Write a fit as a runnable R script: ``effects.csv`` + ``analysis.R`` (+ ``crev_results.json``).

``analysis.R`` refits the same model with metafor (``rma.uni`` / ``rma.mv`` with the same random
structure, estimator, moderators coded as crev coded them, ``test`` / ``dfs``), then the same
inference: clubSandwich's ``coef_test`` / ``conf_int`` (CR2, Satterthwaite df) and ``Wald_test(test =
"HTZ")`` for the omnibus test, or metafor's ``robust()`` for CR1/CR0; the prediction interval and the
profile-likelihood CIs of the σ² where crev has them. It writes ``r_results.json`` with the field
names of crev's ``--json`` (``estimate``, ``se``, ``ci_low``, ``ci_high``, ``sigma2``, ``coefficients``,
``qm``, ``qm_df``, ``qm_pval``, ``pi_low``, ``pi_high`` ...), so comparing it with ``crev_results.json``
is the check. Writing needs no R.

References: Viechtbauer W (2010), J Stat Softw 36(3) (metafor); Pustejovsky JE, Tipton E (2018),
J Bus Econ Stat 36:672-683 (clubSandwich CR2); Tipton E, Pustejovsky JE (2015), J Educ Behav Stat
40:604-634 (HTZ).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..models.results import clean
from ..models.robust import CHOLESKY_CR2_MAX
from .recipe import FitRecipe, Provenance

__all__ = ["EmittedScript", "R_RESULT_FIELDS", "crev_r_fields", "emit_r", "render_r", "script_files"]

R_SCRIPT, DATA_FILE, CREV_RESULTS, R_RESULTS = "analysis.R", "effects.csv", "crev_results.json", "r_results.json"
# the fields of crev's --json that the script reproduces (the same names in r_results.json)
R_RESULT_FIELDS = ("model", "method", "test", "k", "estimate", "se", "ci_low", "ci_high", "pval", "df", "tau2", "sigma2", "q", "q_pval", "coefficients",
                   "qm", "qm_df", "qm_pval", "qm_test", "pi_low", "pi_high", "sigma2_ci", "n_clusters")
_CTRL = 'list(optimizer = "optim", optmethod = "BFGS", reltol = 1e-14, maxit = 10000)'


@dataclass(frozen=True)
class EmittedScript:
    """The files one emission wrote."""

    script: Path
    data: Path
    crev_results: Path

    @property
    def r_results(self) -> Path:
        return self.script.parent / R_RESULTS


def _s(text) -> str:
    """An R string literal."""
    return json.dumps(str(text))


def _q(name: str) -> str:
    """An R name (back-quoted)."""
    return "`" + name.replace("`", "") + "`"


def _vec(values, quote: bool = True) -> str:
    return "c(" + ", ".join(_s(v) if quote else repr(v) for v in values) + ")"


def crev_r_fields(fit) -> dict:
    """crev's own ``--json`` fields of ``fit`` that ``r_results.json`` holds (what the check compares)."""
    d = fit.to_dict()
    return clean({k: d[k] for k in R_RESULT_FIELDS if k in d})


def _formula(r: FitRecipe) -> str | None:
    if not r.coding:
        return None
    return "~ " + " + ".join(f"I({_q(t.column)}^2)" if t.kind == "square" else _q(t.column) for t in r.coding)


def _read_data(r: FitRecipe) -> list[str]:
    numeric = {r.yi, r.vi} | {t.column for t in r.coding if t.kind != "factor"}
    classes = ", ".join(f"{_q(c)} = {_s('numeric' if c in numeric else 'character')}" for c in r.columns())
    lines = [f"dat <- read.csv(file.path(here, {_s(DATA_FILE)}), check.names = FALSE, colClasses = c({classes}))"]
    for t in r.coding:
        if t.kind == "factor":
            lines.append(f"dat${_q(t.column)} <- factor(dat${_q(t.column)}, levels = {_vec(t.levels)})  # reference level {_s(t.levels[0])}, as crev")
    return lines


def _fit_call(r: FitRecipe) -> list[str]:
    mods = _formula(r)
    args = [_q(r.yi), _q(r.vi)]
    if mods:
        args.append(f"mods = {mods}")
    test = "z" if r.robust else r.test
    if r.model == "rma.mv":
        args += [f"random = ~ 1 | {'/'.join(_q(c) for c in r.levels)}", "data = dat", f"method = {_s(r.method)}", f"test = {_s(test)}"]
        if test == "t":
            args.append('dfs = "contain"')
        args += ["level = level", "control = ctrl"]
        return [f"ctrl <- {_CTRL}  # tight convergence: the REML/ML optimum, not metafor's default stopping point",
                f"fit <- rma.mv({', '.join(args)})"]
    args += ["data = dat", f"method = {_s(r.method)}", f"test = {_s(test)}", "level = level"]
    # iterative tau^2 estimators: metafor's default stops about 1e-6 short of the root (the others ignore it)
    args.append("control = list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)")
    return [f"fit <- rma({', '.join(args)})"]


def _inference(r: FitRecipe) -> list[str]:
    idx = [i + 1 for i, n in enumerate(r.coef_names) if not (i == 0 and n == "intrcpt")]
    many = not r.fit.intercept_only
    if r.robust == "CR2":
        lines = [f"cl <- dat${_q(r.robust_cluster)}",
                 'ct <- coef_test(fit, vcov = "CR2", cluster = cl, test = "Satterthwaite")',
                 'ci <- conf_int(fit, vcov = "CR2", cluster = cl, level = level)',
                 "coefs <- data.frame(name = crev_names, estimate = ct$beta, se = ct$SE, df = ct$df_Satt, pval = ct$p_Satt, "
                 "ci_low = ci$CI_L, ci_high = ci$CI_U)"]
        if many:
            test = "HTZ" if r.omnibus == "HTZ" else "Naive-Fp"
            lines += [f"wt <- Wald_test(fit, constraints = constrain_zero({_vec(idx, quote=False)}), vcov = \"CR2\", cluster = cl, test = {_s(test)})",
                      f"qm <- list(qm = wt$Fstat, qm_df = c(wt$df_num, wt$df_denom), qm_pval = wt$p_val, qm_test = {_s(r.omnibus)})"]
        return lines
    if r.robust in ("CR1", "CR0"):
        lines = [f"cl <- dat${_q(r.robust_cluster)}",
                 f"rb <- robust(fit, cluster = cl, adjust = {'TRUE' if r.robust == 'CR1' else 'FALSE'})  # {r.robust}: df = clusters - p",
                 "coefs <- data.frame(name = crev_names, estimate = c(rb$beta), se = rb$se, df = rb$ddf, pval = rb$pval, "
                 "ci_low = rb$ci.lb, ci_high = rb$ci.ub)"]
        if many:
            lines.append('qm <- list(qm = rb$QM, qm_df = rb$QMdf, qm_pval = rb$QMp, qm_test = "naive-F")')
        return lines
    lines = ["ddf <- if (is.null(fit$ddf) || all(is.na(fit$ddf))) NA else fit$ddf",
             "coefs <- data.frame(name = crev_names, estimate = c(fit$beta), se = fit$se, df = ddf, pval = fit$pval, "
             "ci_low = fit$ci.lb, ci_high = fit$ci.ub)"]
    if many:
        lines.append("qm <- list(qm = fit$QM, qm_df = fit$QMdf, qm_pval = fit$QMp)")
    return lines


def _results(r: FitRecipe) -> list[str]:
    f = r.fit
    lines = [f"res <- list(model = {_s(f.model)}, method = {_s(f.method)}, test = {_s(f.test)}, k = fit$k, estimate = coefs$estimate[1], "
             "se = coefs$se[1], ci_low = coefs$ci_low[1], ci_high = coefs$ci_high[1], pval = coefs$pval[1])",
             "if (!is.na(coefs$df[1])) res$df <- coefs$df[1]", "res$q <- fit$QE", "res$q_pval <- fit$QEp"]
    lines.append("res$sigma2 <- I(unname(fit$sigma2))" if f.model == "rma.mv" else "res$tau2 <- fit$tau2")
    if not f.intercept_only:
        lines += ["res$coefficients <- coefs", "res <- c(res, qm)"]
    if f.pi_low is not None:
        if r.robust:
            total = "sum(fit$sigma2)" if f.model == "rma.mv" else "fit$tau2"
            lines += ["# prediction interval with the robust SE and its t reference, as crev: est +- t(df) sqrt(total variance + SE^2)",
                      "crit <- qt(1 - (1 - level) / 2, coefs$df[1])",
                      f"half <- crit * sqrt({total} + coefs$se[1]^2)",
                      "res$pi_low <- coefs$estimate[1] - half", "res$pi_high <- coefs$estimate[1] + half"]
        else:
            lines += ["pr <- predict(fit, level = level)", "res$pi_low <- pr$pi.lb", "res$pi_high <- pr$pi.ub"]
    if f.sigma2_ci:
        lines += ["pc <- confint(fit, level = level, control = list(tol = 1e-12))  # profile-likelihood CI of each sigma^2",
                  "if (length(fit$sigma2) == 1) pc <- list(pc)",
                  "res$sigma2_ci <- setNames(lapply(pc[seq_along(fit$sigma2)], function(x) unname(x$random[1, c(\"ci.lb\", \"ci.ub\")])), "
                  f"{_vec(f.sigma2_ci)})"]
    if r.robust:
        lines.append("res$n_clusters <- length(unique(cl))")
    return lines


def _header(r: FitRecipe, prov: Provenance) -> list[str]:
    f = r.fit
    model = (f"rma.mv(random = ~ 1 | {'/'.join(r.levels)}, method = {r.method})" if f.model == "rma.mv" else f"rma.uni(method = {r.method})")
    inference = f"{r.robust} by {r.robust_cluster}" + (f", omnibus {r.omnibus}" if r.robust == "CR2" and not f.intercept_only else "") \
        if r.robust else {"z": "z tests", "knha": "Knapp-Hartung t tests", "t": 't tests, dfs = "contain"'}[r.test]
    lines = ["crev analysis, reproduced with R's metafor" + (" and clubSandwich" if r.robust == "CR2" else ""), *prov.lines(),
             f"model: {model}; moderators: {' + '.join(t.term for t in r.coding) or 'none'}; inference: {inference}; k = {f.k}",
             f"Run: Rscript {R_SCRIPT}  (R >= 4 with metafor, jsonlite" + (", clubSandwich" if r.robust == "CR2" else "") + ")",
             f"It writes {R_RESULTS} with crev's --json field names; compare it with {CREV_RESULTS} (crev's numbers for the same fit)."]
    big = r.large_clusters
    if big:
        lines += [f"NOTE: the largest {r.robust_cluster} cluster has {big:,} effects (> {CHOLESKY_CR2_MAX:,}): crev used its O(k) symmetric-root",
                  "CR2 (Bell & McCaffrey), which R lacks. This script uses clubSandwich's exact form: CR2 SEs and df differ slightly",
                  "(same unbiasedness condition, different small-sample terms), and not to 1e-6."]
    return ["# " + x for x in lines]


def render_r(recipe: FitRecipe, provenance: Provenance) -> str:
    """The text of ``analysis.R`` for ``recipe``."""
    libs = ["metafor", "jsonlite"] + (["clubSandwich"] if recipe.robust == "CR2" else [])
    body = [
        *_header(recipe, provenance),
        "",
        "suppressMessages({" + "; ".join(f"library({lib})" for lib in libs) + "})",
        'here <- local({a <- grep("^--file=", commandArgs(FALSE), value = TRUE); if (length(a)) dirname(normalizePath(sub("^--file=", "", a[1]))) else getwd()})',
        f"level <- {recipe.level!r}",
        *_read_data(recipe),
        *_fit_call(recipe),
        f"crev_names <- {_vec(recipe.coef_names)}  # crev's names of the coefficients, in metafor's column order",
        "stopifnot(length(crev_names) == length(coef(fit)))",
        *_inference(recipe),
        *_results(recipe),
        f'write_json(res, file.path(here, {_s(R_RESULTS)}), auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE, dataframe = "rows")',
        f'cat("wrote", file.path(here, {_s(R_RESULTS)}), "\\n")',
    ]
    return "\n".join(body) + "\n"


def script_files(recipe: FitRecipe, provenance: Provenance) -> dict[str, bytes]:
    """The files of one emission by name: ``effects.csv``, ``analysis.R``, ``crev_results.json`` (what the CLI
    writes into its DIR and the app zips for download: the same bytes)."""
    data = recipe.data[recipe.columns()].copy()
    for t in recipe.coding:
        if t.kind == "factor":
            data[t.column] = data[t.column].astype(str)  # the labels crev's design compared
    return {DATA_FILE: data.to_csv(index=False).encode(), R_SCRIPT: render_r(recipe, provenance).encode(),
            CREV_RESULTS: json.dumps(crev_r_fields(recipe.fit), indent=1).encode()}


def emit_r(recipe: FitRecipe, provenance: Provenance, out_dir: str | Path) -> EmittedScript:
    """Write ``effects.csv``, ``analysis.R`` and ``crev_results.json`` for ``recipe`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, content in script_files(recipe, provenance).items():
        (out / name).write_bytes(content)
    return EmittedScript(out / R_SCRIPT, out / DATA_FILE, out / CREV_RESULTS)
