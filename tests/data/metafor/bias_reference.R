# Reference values for the publication-bias methods of crev's metaanalysis (bias.py, selection.py,
# pubsens.py), computed by R's metafor (and robumeta for the Mathur & VanderWeele sensitivity analysis).
# Run from the repository root:  Rscript tests/data/metafor/bias_reference.R
# Reads metafor's shipped data sets (dat.hackshaw1998, dat.bcg), writes data/<name>.csv (the effects
# read back by the tests) and expected/bias_<name>.json. 15 significant digits; NA -> null.
suppressMessages({library(metafor); library(robumeta); library(jsonlite)})
out_dir <- "tests/data/metafor"

tight <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)
sel_tight <- list(optimizer = "optim", optmethod = "BFGS", reltol = 1e-14, maxit = 10000)

regtest_list <- function(fit, ...) {
  r <- regtest(fit, ...)
  list(zval = unname(r$zval), pval = unname(r$pval), df = if (is.null(r$dfs)) NA else unname(r$dfs),
       est = unname(r$est), ci.lb = unname(r$ci.lb), ci.ub = unname(r$ci.ub))
}

selmodel_list <- function(fit, alternative, control = list()) {
  s <- selmodel(fit, type = "stepfun", steps = 0.025, alternative = alternative, control = control)
  list(alternative = alternative, beta = unname(c(s$beta)), se = unname(s$se), zval = unname(s$zval), pval = unname(s$pval),
       ci.lb = unname(s$ci.lb), ci.ub = unname(s$ci.ub), tau2 = unname(s$tau2), se.tau2 = unname(s$se.tau2),
       delta = unname(s$delta), se.delta = unname(s$se.delta), LRT = unname(s$LRT), LRTp = unname(s$LRTp),
       logLik = unname(as.numeric(logLik(s))), k_per_interval = unname(as.integer(s$ptable$k)))
}

# Mathur & VanderWeele (2020) corrected estimate with the "robust" model, exactly as the
# PublicationBias package's corrected_meta(model_type = "robust") (not installed here): weights
# eta for nonaffirmative, 1 for affirmative effects, divided by (vi + naive tau^2) from
# rma.uni(yi, vi) (REML); robumeta::robu(small = TRUE). Affirmative: two-sided p < .05 and yi > 0
# (after flipping the sign when the favoured direction is negative).
mv_corrected <- function(yi, vi, cluster, eta) {
  p <- 2 * (1 - pnorm(abs(yi) / sqrt(vi)))
  A <- (p < 0.05) & (yi > 0)
  t2 <- rma.uni(yi = yi, vi = vi)$tau2
  w <- ifelse(A, 1, eta)
  d <- data.frame(yi = yi, vi = vi, cluster = cluster, uw = w / (vi + t2))
  m <- robu(yi ~ 1, studynum = cluster, data = d, userweights = uw, var.eff.size = vi, small = TRUE)
  list(eta = eta, est = unname(m$b.r[1]), se = unname(m$reg_table$SE[1]), ci.lb = unname(m$reg_table$CI.L[1]),
       ci.ub = unname(m$reg_table$CI.U[1]), pval = unname(m$reg_table$prob[1]), df = unname(m$reg_table$dfs[1]),
       k_affirmative = sum(A), k_nonaffirmative = sum(!A), tau2_naive = t2)
}

mv_svalues <- function(yi, vi, cluster, q = 0) {
  f_est <- function(eta) mv_corrected(yi, vi, cluster, eta)$est - q
  f_lo <- function(eta) mv_corrected(yi, vi, cluster, eta)$ci.lb - q
  s_est <- if (f_est(1) * f_est(200) < 0) uniroot(f_est, c(1, 200), tol = 1e-12)$root else NA
  s_ci <- if (f_lo(1) <= 0) 1 else if (f_lo(1) * f_lo(200) < 0) uniroot(f_lo, c(1, 200), tol = 1e-12)$root else NA
  list(q = q, sval_est = s_est, sval_ci = s_ci)
}

mv_worst <- function(yi, vi, cluster) {
  # eta -> infinity: only the nonaffirmative effects keep weight 1 / (vi + naive tau^2)
  p <- 2 * (1 - pnorm(abs(yi) / sqrt(vi)))
  A <- (p < 0.05) & (yi > 0)
  t2 <- rma.uni(yi = yi, vi = vi)$tau2
  d <- data.frame(yi = yi, vi = vi, cluster = cluster, uw = 1 / (vi + t2))[!A, ]
  m <- robu(yi ~ 1, studynum = cluster, data = d, userweights = uw, var.eff.size = vi, small = TRUE)
  list(est = unname(m$b.r[1]), se = unname(m$reg_table$SE[1]), ci.lb = unname(m$reg_table$CI.L[1]), ci.ub = unname(m$reg_table$CI.U[1]))
}

one <- function(name, dat, favor_positive) {
  write.csv(dat, file.path(out_dir, "data", paste0(name, ".csv")), row.names = FALSE)
  dat <- read.csv(file.path(out_dir, "data", paste0(name, ".csv")))  # the values the tests read
  reml <- rma(yi, vi, data = dat, method = "REML", control = tight)
  ml <- rma(yi, vi, data = dat, method = "ML", control = tight)
  s <- if (favor_positive) 1 else -1
  alternative <- if (favor_positive) "greater" else "less"
  ys <- s * dat$yi
  res <- list(
    favor_positive = favor_positive,
    regtest = list(
      rma_sei = regtest_list(reml), rma_vi = regtest_list(reml, predictor = "vi"),
      lm_sei = regtest_list(reml, model = "lm"), lm_vi = regtest_list(reml, model = "lm", predictor = "vi")
    ),
    ml = list(beta = unname(c(ml$beta)), tau2 = ml$tau2, logLik = as.numeric(logLik(ml))),
    # one-sided p-values in the favoured direction (metafor's alternative = "greater" / "less")
    selmodel_stepfun_025 = selmodel_list(ml, alternative),
    selmodel_stepfun_025_tight = selmodel_list(ml, alternative, sel_tight),
    mathur_vanderweele = list(
      note = "effects multiplied by the favoured sign (favor_positive) before the analysis; cluster = row",
      eta_1 = mv_corrected(ys, dat$vi, seq_len(nrow(dat)), 1),
      eta_2 = mv_corrected(ys, dat$vi, seq_len(nrow(dat)), 2),
      eta_5 = mv_corrected(ys, dat$vi, seq_len(nrow(dat)), 5),
      worst_case = mv_worst(ys, dat$vi, seq_len(nrow(dat))),
      svalue = mv_svalues(ys, dat$vi, seq_len(nrow(dat)))
    )
  )
  writeLines(toJSON(res, auto_unbox = TRUE, digits = I(15), na = "null", null = "null", pretty = TRUE),
             file.path(out_dir, "expected", paste0("bias_", name, ".json")))
}

data(dat.hackshaw1998, package = "metadat")
one("hackshaw1998", dat.hackshaw1998[, c("study", "author", "year", "country", "design", "cases", "yi", "vi")], TRUE)
data(dat.bcg, package = "metadat")
bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
one("bcg_rr_bias", data.frame(trial = bcg$trial, author = bcg$author, year = bcg$year, yi = c(bcg$yi), vi = c(bcg$vi)), FALSE)

# Multilevel Egger: sqrt(vi) as a moderator of the three-level model, CR2 by the outer level
# (clubSandwich), on dat.konstantopoulos2011 as read by the tests (data/konstantopoulos2011.csv).
k11 <- read.csv(file.path(out_dir, "data", "konstantopoulos2011.csv"))
ml_egger <- function(pred) {
  k11$pred <- if (pred == "sei") sqrt(k11$vi) else k11$vi
  fit <- rma.mv(yi, vi, mods = ~ pred, random = ~ 1 | district/school, data = k11, control = list(rel.tol = 1e-12, iter.max = 10000))
  rb <- robust(fit, cluster = k11$district, clubSandwich = TRUE)
  list(sigma2 = unname(fit$sigma2), slope = unname(rb$beta[2]), se = unname(rb$se[2]), tval = unname(rb$zval[2]),
       df = unname(rb$ddf[2]), pval = unname(rb$pval[2]), limit = unname(rb$beta[1]), limit_se = unname(rb$se[1]),
       limit_ci.lb = unname(rb$ci.lb[1]), limit_ci.ub = unname(rb$ci.ub[1]))
}
writeLines(toJSON(list(sei = ml_egger("sei"), vi = ml_egger("vi")), auto_unbox = TRUE, digits = I(15), na = "null", pretty = TRUE),
           file.path(out_dir, "expected", "bias_konstantopoulos2011_multilevel_egger.json"))
# Mathur & VanderWeele with dependent effects: schools clustered in districts (robust variance by district)
k11mv <- list(
  note = "dat.konstantopoulos2011, cluster = district, favoured direction positive",
  eta_1 = mv_corrected(k11$yi, k11$vi, k11$district, 1), eta_3 = mv_corrected(k11$yi, k11$vi, k11$district, 3),
  worst_case = mv_worst(k11$yi, k11$vi, k11$district), svalue = mv_svalues(k11$yi, k11$vi, k11$district)
)
writeLines(toJSON(k11mv, auto_unbox = TRUE, digits = I(15), na = "null", pretty = TRUE),
           file.path(out_dir, "expected", "bias_konstantopoulos2011_mathur_vanderweele.json"))
cat("wrote bias references\n")
