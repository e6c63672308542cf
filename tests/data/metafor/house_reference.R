# Reference values for influence diagnostics and subgroup analyses (metaanalysis.influence and
# metaanalysis.subgroups, issue 13), computed by R's metafor and clubSandwich. Run from the
# repository root:  Rscript tests/data/metafor/house_reference.R
# Reads data/bcg_rr.csv, data/normand1999_md.csv and data/nested4.csv (written by the other reference
# scripts), writes data/bcg_rr_outlier.csv and expected/house_influence_subgroups.json. 15 significant digits; NA -> null.
# Fits use tight convergence, so an exact solver is compared with the optimum.
suppressMessages({library(metafor); library(clubSandwich); library(jsonlite)})
out_dir <- "tests/data/metafor"
tight <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)
ctrl_mv <- list(optimizer = "optim", optmethod = "BFGS", reltol = 1e-14, maxit = 10000)

bcg <- read.csv(file.path(out_dir, "data/bcg_rr.csv"))
normand <- read.csv(file.path(out_dir, "data/normand1999_md.csv"))
nested4 <- read.csv(file.path(out_dir, "data/nested4.csv"))

# influence.rma.uni: externally standardised residuals, DFFITS, Cook's distances, covariance ratios,
# tau2 and QE with each study left out, hat values, weights (%), DFBETAS and metafor's "inf" flag.
influence_list <- function(fit) {
  inf <- influence(fit)
  list(method = fit$method, rstudent = unname(inf$inf$rstudent), dffits = unname(inf$inf$dffits), cook.d = unname(inf$inf$cook.d),
       cov.r = unname(inf$inf$cov.r), tau2.del = unname(inf$inf$tau2.del), QE.del = unname(inf$inf$QE.del),
       hat = unname(inf$inf$hat), weight = unname(inf$inf$weight), dfbs = unname(inf$dfbs$intrcpt),
       inf = unname(as.logical(inf$is.infl)))
}

one_fit <- function(fit) {
  pr <- predict(fit)
  list(k = fit$k, estimate = unname(c(fit$beta)), se = unname(fit$se), pval = unname(fit$pval), ci.lb = unname(fit$ci.lb),
       ci.ub = unname(fit$ci.ub), pi.lb = unname(pr$pi.lb), pi.ub = unname(pr$pi.ub))
}

between_list <- function(fit) list(QM = fit$QM, QMdf = unname(fit$QMdf), QMp = fit$QMp)

res <- list(metafor_version = as.character(packageVersion("metafor")), R_version = R.version.string,
            clubSandwich_version = as.character(packageVersion("clubSandwich")))

for (m in c("REML", "DL")) {
  res$influence[[paste0("bcg_rr_", m)]] <- influence_list(rma(yi, vi, data = bcg, method = m, control = tight))
}
res$influence$normand1999_md_REML <- influence_list(rma(yi, vi, data = normand, method = "REML", control = tight))
# dat.bcg with trial 4's log risk ratio replaced by +2.5: one clear outlier, which metafor flags.
outlier <- bcg[, c("trial", "yi", "vi")]
outlier$yi[4] <- 2.5
write.csv(outlier, file.path(out_dir, "data/bcg_rr_outlier.csv"), row.names = FALSE)
outlier <- read.csv(file.path(out_dir, "data/bcg_rr_outlier.csv"))
res$influence$bcg_rr_outlier_REML <- influence_list(rma(yi, vi, data = outlier, method = "REML", control = tight))

# Subgroups, random-effects model (rma.uni): a separate fit per level (its own tau2) and the test
# of differences as the QM of the mixed-effects model on the factor (one tau2 shared by the levels).
sub_uni <- list()
for (lev in sort(unique(bcg$alloc))) {
  sub_uni$groups[[lev]] <- one_fit(rma(yi, vi, data = bcg, subset = alloc == lev, method = "REML", control = tight))
}
sub_uni$between <- between_list(rma(yi, vi, mods = ~ factor(alloc), data = bcg, method = "REML", control = tight))
sub_uni$between_knha <- between_list(rma(yi, vi, mods = ~ factor(alloc), data = bcg, method = "REML", test = "knha", control = tight))
res$subgroups$bcg_rr_alloc_REML <- sub_uni

# Subgroups, multilevel model (rma.mv, random = ~ 1 | study/cluster) on nested4, grouped by g.
# Clusters are numbered within study, so the cluster level is study/cluster.
nested4$clus <- paste(nested4$study, nested4$cluster, sep = "/")
sub_mv <- list()
for (lev in sort(unique(nested4$g))) {
  f <- rma.mv(yi, vi, random = ~ 1 | study / clus, data = nested4, subset = g == lev, method = "REML", control = ctrl_mv)
  sub_mv$groups[[as.character(lev)]] <- c(one_fit(f), list(sigma2 = unname(f$sigma2)))
}
full <- rma.mv(yi, vi, mods = ~ factor(g), random = ~ 1 | study / clus, data = nested4, method = "REML", control = ctrl_mv)
sub_mv$between <- c(between_list(full), list(sigma2 = unname(full$sigma2)))
ct <- coef_test(full, vcov = "CR2", cluster = nested4$study, test = "Satterthwaite")
wt <- Wald_test(full, constraints = constrain_zero(2), vcov = "CR2", cluster = nested4$study, test = "HTZ")
sub_mv$between_CR2 <- list(tstat = unname(ct$tstat[2]), df = unname(ct$df_Satt[2]), pval = unname(ct$p_Satt[2]),
                           HTZ_F = unname(wt$Fstat), HTZ_df_num = unname(wt$df_num), HTZ_df_denom = unname(wt$df_denom), HTZ_p = unname(wt$p_val))
res$subgroups$nested4_g_REML <- sub_mv

# The same with an effect level (random = ~ 1 | study/cluster/es), crev's default multilevel model.
sub_es <- list()
for (lev in sort(unique(nested4$g))) {
  f <- rma.mv(yi, vi, random = ~ 1 | study / clus / es, data = nested4, subset = g == lev, method = "REML", control = ctrl_mv)
  ctl <- coef_test(f, vcov = "CR2", cluster = nested4$study[nested4$g == lev], test = "Satterthwaite")
  cil <- conf_int(f, vcov = "CR2", cluster = nested4$study[nested4$g == lev], level = 0.95)
  sub_es$groups[[as.character(lev)]] <- c(one_fit(f), list(sigma2 = unname(f$sigma2)),
                                          list(CR2 = list(se = unname(ctl$SE), df = unname(ctl$df_Satt), pval = unname(ctl$p_Satt),
                                                          ci.lb = unname(cil$CI_L), ci.ub = unname(cil$CI_U))))
}
full <- rma.mv(yi, vi, mods = ~ factor(g), random = ~ 1 | study / clus / es, data = nested4, method = "REML", control = ctrl_mv)
sub_es$between <- c(between_list(full), list(sigma2 = unname(full$sigma2)))
ct <- coef_test(full, vcov = "CR2", cluster = nested4$study, test = "Satterthwaite")
wt <- Wald_test(full, constraints = constrain_zero(2), vcov = "CR2", cluster = nested4$study, test = "HTZ")
sub_es$between_CR2 <- list(tstat = unname(ct$tstat[2]), df = unname(ct$df_Satt[2]), pval = unname(ct$p_Satt[2]),
                           HTZ_F = unname(wt$Fstat), HTZ_df_num = unname(wt$df_num), HTZ_df_denom = unname(wt$df_denom), HTZ_p = unname(wt$p_val))
res$subgroups$nested4_g_REML_es <- sub_es

writeLines(toJSON(res, auto_unbox = TRUE, digits = 15, na = "null", null = "null", pretty = TRUE),
           file.path(out_dir, "expected/house_influence_subgroups.json"))
cat("wrote", file.path(out_dir, "expected/house_influence_subgroups.json"), "\n")
