"""Meta-analysis: pooled estimate, heterogeneity, forest, funnel with Egger's test, bubble,
dose-response and the evaluation-rigour sensitivity analysis, with downloads.

Every fit and figure is memoised by (filter, effect settings, model spec, data version) in
:mod:`ui.state`, and only the selected view is computed, so changing a control re-fits one model.
"""

import json

import streamlit as st

import metaanalysis as ma
from metaanalysis.methods import methods_text
from metaanalysis.plots import bubble_figure, dose_figure, forest_figure
from metaanalysis.rscript import app_provenance, run_bundle
from ui import labels, state
from ui.figures import funnel_density_figure

st.title("Meta-analysis")
f = state.current_filter()
settings = state.effect_settings()
ver = state.version()
base_key = (state.filter_key(f), state.settings_key(settings), ver)
table = state.effects(f, settings)
unit = state.unit()
with st.expander(f"{len(table):,} effects; {len(table.excluded):,} results could not give an effect — why", expanded=False):
    st.text(table.summary())
    st.dataframe(labels.frame(table.excluded), hide_index=True, width="stretch")
if len(table) < 2:
    st.info(f"{len(table)} effect(s) under the current filters: a model needs at least 2. Widen the filters in the sidebar, "
            "or allow an assumed number of test images under 'Missing n_test'.")
    st.stop()

MODS = {"compression_family": "compression family", "sparsity": "sparsity", "bits": "bit width", "adversarial_training": "adversarial training",
        "epsilon": "epsilon", "threat_model": "threat model", "attack": "attack", "dataset": "dataset", "high_risk": "high-risk evaluation"}
c = st.columns(4)
model = c[0].selectbox("Model", ["multilevel", "random", "common"], key="ma_model",
                       format_func={"multilevel": "multilevel (effects in clusters in studies)", "random": "random effects (independent effects)",
                                    "common": "common effect"}.get,
                       help="multilevel = effects within clusters within studies (the default: rows of one study are not independent)")
methods = ["REML", "ML"] if model == "multilevel" else ["REML", "DL", "ML", "PM", "HE", "SJ"] if model == "random" else ["FE"]
method = c[1].selectbox("Estimator", methods, key="ma_method")
knha = c[2].checkbox("Knapp-Hartung / t tests", key="ma_knha")
robust = c[3].selectbox("Cluster-robust", ["none", "CR2", "CR1"], key="ma_robust", help="CR2 by study (clubSandwich); large clusters need CR1")
mods = st.multiselect("Moderators (meta-regression)", list(MODS), key="ma_mods", format_func=MODS.get)
spec = ma.AnalysisSpec(model=model, method=method, mods=" + ".join(mods) or None, knha=knha, robust=None if robust == "none" else robust)
base = ma.AnalysisSpec(model=model, method=method, knha=knha, robust=spec.robust)  # the same model without moderators


def fit_of(s: ma.AnalysisSpec) -> ma.Analysis:
    return state.memo("fit", (*base_key, repr(s)), lambda: ma.run_analysis(table, s))


def why_not(exc: Exception) -> str:
    """The real cause when a moderator set leaves too few effects: which moderators the effects lack."""
    eff = table.effects
    present = [m for m in mods if m in eff]
    if present:
        has_all = eff[present].notna().all(axis=1)
        if has_all.sum() < 2:
            each = ", ".join(f"{MODS[m]}: {int(eff[m].notna().sum()):,}" for m in present)
            return (f"only {int(has_all.sum())} effect(s) state every chosen moderator at once ({each} effects state each one); "
                    "drop a moderator or widen the filters")
        n_st = eff.loc[has_all, "study"].nunique()
        if n_st < 2 and model == "multilevel":
            return f"the {int(has_all.sum()):,} effects that state every chosen moderator all come from one study ({exc})"
    return str(exc)


try:
    with st.spinner("Fitting the model..."):
        an = fit_of(spec)
except ma.MetaInputError as exc:
    st.error(f"The model cannot be fitted: {why_not(exc)}.")
    st.stop()
fit = an.fit
c0 = fit.coefficients[0]
m = st.columns([1.2, 1.6, 0.9, 0.8])
m[0].metric("Pooled effect" if fit.intercept_only else "Intercept (reference levels)", labels.num(c0.estimate, 2, "pp" if unit.startswith("perc") else "", True),
            help=f"in {unit}" + ("" if fit.intercept_only else "; with moderators this is the effect at the reference level of each (0 for a number)"))
m[1].metric("95% CI", f"{c0.ci_low:+.2f} to {c0.ci_high:+.2f}")
m[2].metric("p-value", labels.pval(c0.pval).removeprefix("p = ").removeprefix("p "))
m[3].metric("I²", labels.num(fit.i2, 1, "%") if fit.i2 is not None else labels.MISSING, help="share of the variance that is not sampling error")
bits = [f"k = {fit.k:,} effects from {an.effects['study'].nunique()} studies"]
if fit.q is not None:
    bits.append(f"Q({fit.q_df:,}) = {fit.q:,.1f}, {labels.pval(fit.q_pval)}")
bits += [f"σ² {k} = {v:.3g}" for k, v in fit.sigma2.items()] + ([f"τ² = {fit.tau2:.3g}"] if fit.tau2 is not None else [])
if fit.pi_low is not None:
    bits.append(f"95% prediction interval {fit.pi_low:+.2f} to {fit.pi_high:+.2f} {unit}")
st.caption(" | ".join(bits))
for n in dict.fromkeys(an.notes):
    st.caption(f"note: {n}")
if not fit.intercept_only:
    coef = fit.to_frame().reset_index()
    st.dataframe(coef, hide_index=True, width="stretch")
    st.caption(f"Test of the moderators: {fit.omnibus_label()} = {fit.qm:.2f}, {labels.pval(fit.qm_pval)}"
               + (f"; R² = {fit.r2:.1f}%" if fit.r2 is not None else ""))

# the same fit as runnable R (the files `crev meta run --emit-r` writes) and its methods paragraph (issue 25)
prov = app_provenance("run", spec, f, settings)
rcol = st.columns([1, 3])
rcol[0].download_button("Download R script", lambda: run_bundle(an, prov), file_name="crev_analysis_R.zip", mime="application/zip",
                        key="ma_rscript", help=f"analysis.R (metafor/clubSandwich), effects.csv and crev's numbers: what `{prov.command} --emit-r DIR` writes")
with rcol[1].expander("Copy methods text"):
    st.code(methods_text(an, prov, settings).text(), language=None, wrap_lines=True)

VIEWS = ["Forest", "Funnel & Egger", "Bubble", "Dose-response", "Rigour sensitivity", "Downloads"]
view = st.segmented_control("View", VIEWS, default="Forest", key="ma_view") or "Forest"
skey = (*base_key, repr(base))
if view == "Forest":
    pooled = an if fit.intercept_only else fit_of(base)
    rows = state.memo("per_study", skey, lambda: ma.per_study(table, base))
    title = (f"Forest plot: per-study estimates and the pooled {model} model ({method})" if fit.intercept_only
             else f"Forest plot: per-study estimates and the same model without moderators ({model}, {method})")
    fig = state.memo("forest_fig", (*skey, unit, title), lambda: forest_figure(rows, pooled.fit, unit=unit, title=title))
    st.plotly_chart(fig, width="stretch")
    if not fit.intercept_only:
        st.caption(f"With moderators there is no single pooled effect: the diamond is the model without them "
                   f"({pooled.fit.coefficients[0].estimate:+.2f}); the intercept above is the effect at the moderators' reference levels.")
elif view == "Funnel & Egger":
    eff = table.effects
    eg = state.memo("egger", base_key, lambda: ma.egger_test(eff["yi"], eff["vi"], model="lm"))
    rows = state.memo("per_study", skey, lambda: ma.per_study(table, base))
    est = fit_of(base).fit.coefficients[0].estimate
    sub = f"Egger's test: {'t' if eg.df else 'z'} = {eg.stat:.2f}, {labels.pval(eg.pval)}"
    fig = state.memo("funnel_fig", (*skey, unit), lambda: funnel_density_figure(eff["yi"], eff["vi"], est, rows, unit=unit, subtitle=sub))
    st.plotly_chart(fig, width="stretch")
    st.caption(f"{len(eff):,} effects binned (darker = more effects per cell) with the {len(rows)} study estimates as diamonds. "
               f"{sub}. With several effects per study the test treats them as independent (anti-conservative).")
elif view == "Bubble":
    cont = [x for x in ("sparsity", "bits", "epsilon") if table.effects[x].notna().sum() >= 3 and table.effects[x].nunique() > 1]
    if not cont:
        st.info("No continuous moderator (sparsity, bit width, epsilon) takes two or more values among the effects.")
    else:
        x = st.selectbox("Moderator", cont, key="bubble_x", format_func=MODS.get)
        try:
            bspec = ma.AnalysisSpec(model=model, method=method, mods=x)
            fig = state.memo("bubble_fig", (*base_key, repr(bspec), unit), lambda: bubble_figure(fit_of(bspec), x, unit=unit))
            st.plotly_chart(fig, width="stretch")
        except ma.MetaInputError as exc:
            st.info(f"Cannot fit the meta-regression on {MODS[x]}: {exc}")
elif view == "Dose-response":
    if table.effects["sparsity"].nunique() < 3:
        st.info("A dose-response fit needs at least three distinct sparsity levels among the effects.")
    else:
        try:
            dr = state.memo("dose", skey, lambda: ma.dose_response(table, "sparsity", ma.AnalysisSpec(model=model, method=method)))
            st.plotly_chart(state.memo("dose_fig", (*skey, unit), lambda: dose_figure(dr, unit=unit)), width="stretch")
            st.markdown(f"**{dr.verdict}**")
        except ma.MetaInputError as exc:
            st.info(f"Cannot fit the dose-response model: {exc}")
elif view == "Rigour sensitivity":
    sens = state.memo("sens", skey, lambda: ma.rigour_sensitivity(table, ma.AnalysisSpec(model=model, method=method)))
    st.dataframe(sens.to_frame(), hide_index=True, width="stretch")
    st.caption(f"{sens.n_high_risk:,} high-risk effects (weak or unknown attack, epsilon not stated, robust above clean, or possible "
               f"gradient masking). {sens.note}")
else:
    st.download_button("Model results (JSON)", json.dumps(an.to_dict(), indent=1), "crev-meta.json", "application/json")
    st.download_button("Effect table (CSV, metafor-ready)", table.to_csv(), "crev-effects.csv", "text/csv")
