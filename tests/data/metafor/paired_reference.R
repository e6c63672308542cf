# Reference values for the paired variance of a difference of accuracies on the same images
# (metaanalysis/effects.py paired_variance), computed by metafor's escalc(measure = "MPRD").
# ai: both correct, bi: dense only, ci: compressed only, di: neither. metafor's yi = (ai+bi)/n - (ai+ci)/n
# is dense minus compressed; crev's effect is compressed minus dense (the sign flips, vi does not).
# Run from the repository root:  Rscript tests/data/metafor/paired_reference.R
suppressMessages({library(metafor); library(jsonlite)})
d <- data.frame(ai = c(400, 10, 950, 0, 123), bi = c(50, 0, 3, 7, 77), ci = c(30, 5, 2, 9, 0), di = c(520, 985, 45, 984, 800))
e <- escalc(measure = "MPRD", ai = ai, bi = bi, ci = ci, di = di, data = d)
out <- list(metafor = as.character(packageVersion("metafor")), ai = d$ai, bi = d$bi, ci = d$ci, di = d$di,
            yi = as.numeric(e$yi), vi = as.numeric(e$vi))
writeLines(toJSON(out, auto_unbox = TRUE, digits = 15, pretty = TRUE), "tests/data/metafor/expected/paired_mprd.json")
