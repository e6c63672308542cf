# Reference values for nested multilevel models (metaanalysis/multilevel.py, robust.py), computed by
# R's metafor rma.mv and clubSandwich (r-cran-clubsandwich 0.5.8). Run from the repository root:
#   Rscript tests/data/metafor/nested_reference.R
# Writes data/<name>.csv (the effects the tests read back) and expected/nested_<name>.json.
# - assink2016: metadat's dat.assink2016, three levels study/esid (an effect level), moderator year.
# - nested4: a simulated four-level structure study/lab/cluster/es (set.seed(2026)): 14 studies,
#   a study-level moderator g and an effect-level moderator x; some labs with one cluster and
#   clusters with one effect, as real evidence has.
# Fits use tight convergence (optim BFGS, reltol = 1e-14) so an exact solver is compared with the optimum.
# Likelihood-ratio tests: anova(full, reduced) with that component's sigma2 fixed at 0.
# CR2: clubSandwich::coef_test(fit, vcov = "CR2", cluster = study, test = "Satterthwaite") and conf_int().
suppressMessages({library(metafor); library(clubSandwich); library(jsonlite)})
out_dir <- "tests/data/metafor"
ctrl <- list(optimizer = "optim", optmethod = "BFGS", reltol = 1e-14, maxit = 10000)

set.seed(2026)
mk <- function() {
  rows <- list()
  for (s in 1:14) {
    n_lab <- sample(1:3, 1)
    g <- as.integer(s %% 2 == 0)
    u_s <- rnorm(1, 0, 0.5)
    for (l in 1:n_lab) {
      u_l <- rnorm(1, 0, 0.3)
      for (cl in 1:sample(1:3, 1)) {
        u_c <- rnorm(1, 0, 0.25)
        for (e in 1:sample(1:4, 1)) {
          x <- runif(1, 0, 1)
          vi <- runif(1, 0.01, 0.08)
          yi <- 0.2 + 0.3 * g - 0.4 * x + u_s + u_l + u_c + rnorm(1, 0, 0.2) + rnorm(1, 0, sqrt(vi))
          rows[[length(rows) + 1]] <- data.frame(study = s, lab = l, cluster = cl, g = g, x = x, yi = yi, vi = vi)
        }
      }
    }
  }
  d <- do.call(rbind, rows)
  d$es <- seq_len(nrow(d))
  d
}
nested4 <- mk()
data(dat.assink2016, package = "metadat")
assink <- dat.assink2016[, c("study", "esid", "yi", "vi", "year")]

fit_list <- function(fit) {
  ddf <- if (is.null(fit$ddf) || all(is.na(fit$ddf))) NA else unname(fit$ddf)
  out <- list(beta = unname(c(fit$beta)), se = unname(fit$se), zval = unname(fit$zval), pval = unname(fit$pval),
              ci.lb = unname(fit$ci.lb), ci.ub = unname(fit$ci.ub), ddf = ddf,
              sigma2 = unname(fit$sigma2), s.names = fit$s.names, s.nlevels = unname(fit$s.nlevels),
              logLik = as.numeric(logLik(fit)), QE = fit$QE, QM = fit$QM, QMp = fit$QMp, QMdf = unname(fit$QMdf))
  if (fit$p == 1) {
    pr <- predict(fit)
    out$pi.lb <- pr$pi.lb
    out$pi.ub <- pr$pi.ub
  }
  out
}

lrt_list <- function(fit, data, random, mods = ~ 1) {
  n <- length(fit$sigma2)
  lapply(seq_len(n), function(i) {
    fx <- rep(NA, n); fx[i] <- 0
    red <- rma.mv(yi, vi, mods = mods, random = random, data = data, method = fit$method,
                  sigma2 = fx, control = ctrl)
    a <- anova(fit, red)
    list(component = fit$s.names[i], LRT = a$LRT, pval = a$pval)
  })
}

cr2_list <- function(fit, cluster) {
  ct <- coef_test(fit, vcov = "CR2", cluster = cluster, test = "Satterthwaite")
  ci <- conf_int(fit, vcov = "CR2", cluster = cluster, level = 0.95)
  list(beta = unname(ct$beta), se = unname(ct$SE), tstat = unname(ct$tstat), df = unname(ct$df_Satt), pval = unname(ct$p_Satt),
       ci.lb = unname(ci$CI_L), ci.ub = unname(ci$CI_U))
}

run <- function(d, random, mods, cluster) {
  res <- list()
  for (method in c("REML", "ML")) {
    f0 <- rma.mv(yi, vi, random = random, data = d, method = method, control = ctrl)
    res[[paste0("intercept_", method)]] <- c(fit_list(f0), list(lrt = lrt_list(f0, d, random)))
    f1 <- rma.mv(yi, vi, mods = mods, random = random, data = d, method = method, control = ctrl)
    res[[paste0("metareg_", method)]] <- c(fit_list(f1), list(lrt = lrt_list(f1, d, random, mods)))
  }
  f0t <- rma.mv(yi, vi, random = random, data = d, method = "REML", test = "t", dfs = "contain", control = ctrl)
  res$intercept_REML_contain <- fit_list(f0t)
  f1t <- rma.mv(yi, vi, mods = mods, random = random, data = d, method = "REML", test = "t", dfs = "contain", control = ctrl)
  res$metareg_REML_contain <- fit_list(f1t)
  f0 <- rma.mv(yi, vi, random = random, data = d, method = "REML", control = ctrl)
  f1 <- rma.mv(yi, vi, mods = mods, random = random, data = d, method = "REML", control = ctrl)
  res$intercept_REML_CR2 <- cr2_list(f0, d[[cluster]])
  res$metareg_REML_CR2 <- cr2_list(f1, d[[cluster]])
  res
}

write.csv(nested4, file.path(out_dir, "data", "nested4.csv"), row.names = FALSE)
write.csv(assink, file.path(out_dir, "data", "assink2016.csv"), row.names = FALSE)
nested4 <- read.csv(file.path(out_dir, "data", "nested4.csv"))
assink <- read.csv(file.path(out_dir, "data", "assink2016.csv"))

exp4 <- run(nested4, ~ 1 | study/lab/cluster/es, ~ g + x, "study")
exp3 <- run(assink, ~ 1 | study/esid, ~ year, "study")
meta <- list(R = R.version.string, metafor = as.character(packageVersion("metafor")), clubSandwich = as.character(packageVersion("clubSandwich")))
writeLines(toJSON(c(meta, exp4), auto_unbox = TRUE, digits = 15, na = "null", pretty = TRUE), file.path(out_dir, "expected", "nested_nested4.json"))
writeLines(toJSON(c(meta, exp3), auto_unbox = TRUE, digits = 15, na = "null", pretty = TRUE), file.path(out_dir, "expected", "nested_assink2016.json"))
cat("wrote nested references\n")

# Profile-likelihood CIs of each sigma2 (confint.rma.mv) on konstantopoulos2011, with a tight root
# finder (metafor's default uniroot tolerance is about 1e-4 on the sigma2 scale).
k11 <- read.csv(file.path(out_dir, "data", "konstantopoulos2011.csv"))
fk <- rma.mv(yi, vi, random = ~ 1 | district/school, data = k11, control = ctrl)
ck <- confint(fk, control = list(tol = 1e-12))
prof <- lapply(ck[1:2], function(x) list(estimate = x$random[1, "estimate"], ci.lb = x$random[1, "ci.lb"], ci.ub = x$random[1, "ci.ub"]))
names(prof) <- fk$s.names
writeLines(toJSON(c(meta, list(profile = prof)), auto_unbox = TRUE, digits = 15, pretty = TRUE),
           file.path(out_dir, "expected", "nested_confint_konstantopoulos2011.json"))
