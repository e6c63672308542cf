# Reference values for the cluster-robust Wald test of several coefficients at once
# (metaanalysis/models/wald.py), computed by R's metafor rma.mv and clubSandwich 0.5.8.
# Run from the repository root:   Rscript tests/data/metafor/htz_reference.R
# Writes data/<name>.csv (the effects the tests read back) and expected/htz_<name>.json.
# - bornmann2007: metadat's dat.bornmann2007, escalc("OR", ai = waward, n1i = wtotal, ci = maward,
#   n2i = mtotal); rma.mv(mods = ~ type + year_c, random = ~ 1 | study/obs); CR2 by study. The test of
#   the two moderators: naive F(2, J - p) p = .0065, HTZ p = .094 (issue 21). year_c = year - mean(year):
#   with raw year cond(X'WX) is about 1e12 and metafor's optimiser stops about 4e-6 (relative) short of
#   the REML optimum in sigma2; centring changes only the intercept, so it is the same test of (type, year).
# - assink2016: metadat's dat.assink2016, three levels study/esid, mods = ~ deltype + year (deltype
#   is a three-level factor, reference "covert"): HTZ of m = 3 coefficients, and of the m = 2
#   deltype contrast alone.
# - nested4: the four-level simulated data of nested_reference.R (study/lab/cluster/es), mods = ~ g + x.
# Each test: clubSandwich::Wald_test(fit, constraints = constrain_zero(idx), vcov = "CR2",
# cluster = study, test = c("HTZ", "Naive-Fp")) (Tipton & Pustejovsky 2015, J Educ Behav Stat 40:604-634).
# Fits use tight convergence (optim BFGS, reltol = 1e-14) so an exact solver is compared with the optimum.
suppressMessages({library(metafor); library(clubSandwich); library(jsonlite)})
out_dir <- "tests/data/metafor"
ctrl <- list(optimizer = "optim", optmethod = "BFGS", reltol = 1e-14, maxit = 10000)

data(dat.bornmann2007, package = "metadat")
born <- escalc(measure = "OR", ai = waward, n1i = wtotal, ci = maward, n2i = mtotal, data = dat.bornmann2007)
born <- data.frame(study = born$study, obs = born$obs, type = born$type, year = born$year, year_c = born$year - mean(born$year),
                   yi = c(born$yi), vi = c(born$vi))
data(dat.assink2016, package = "metadat")
assink <- dat.assink2016[, c("study", "esid", "yi", "vi", "year", "deltype")]
write.csv(born, file.path(out_dir, "data", "bornmann2007.csv"), row.names = FALSE)
write.csv(assink, file.path(out_dir, "data", "assink2016_deltype.csv"), row.names = FALSE)
born <- read.csv(file.path(out_dir, "data", "bornmann2007.csv"))
assink <- read.csv(file.path(out_dir, "data", "assink2016_deltype.csv"))
nested4 <- read.csv(file.path(out_dir, "data", "nested4.csv"))

wald_list <- function(fit, cluster, idx) {
  w <- Wald_test(fit, constraints = constrain_zero(idx), vcov = "CR2", cluster = cluster, test = c("HTZ", "Naive-Fp"))
  rows <- lapply(seq_len(nrow(w)), function(i) list(Fstat = w$Fstat[i], delta = w$delta[i], df_num = w$df_num[i],
                                                  df_denom = w$df_denom[i], p_val = w$p_val[i]))
  names(rows) <- as.character(w$test)
  c(list(coefficients = rownames(fit$beta)[idx]), rows)
}

run <- function(d, random, mods, cluster, tests) {
  fit <- rma.mv(yi, vi, mods = mods, random = random, data = d, method = "REML", control = ctrl)
  ct <- coef_test(fit, vcov = "CR2", cluster = d[[cluster]], test = "Satterthwaite")
  out <- list(names = rownames(fit$beta), beta = unname(c(fit$beta)), sigma2 = unname(fit$sigma2),
              CR2 = list(se = unname(ct$SE), df = unname(ct$df_Satt), pval = unname(ct$p_Satt)))
  out$tests <- lapply(tests, function(idx) wald_list(fit, d[[cluster]], idx))
  out
}

meta <- list(R = R.version.string, metafor = as.character(packageVersion("metafor")), clubSandwich = as.character(packageVersion("clubSandwich")))
refs <- list(
  bornmann2007 = run(born, ~ 1 | study/obs, ~ type + year_c, "study", list(2:3)),
  assink2016 = run(assink, ~ 1 | study/esid, ~ deltype + year, "study", list(2:4, 2:3)),
  nested4 = run(nested4, ~ 1 | study/lab/cluster/es, ~ g + x, "study", list(2:3))
)
for (name in names(refs)) {
  writeLines(toJSON(c(meta, refs[[name]]), auto_unbox = TRUE, digits = 15, na = "null", pretty = TRUE),
             file.path(out_dir, "expected", paste0("htz_", name, ".json")))
}
cat("wrote HTZ references\n")
