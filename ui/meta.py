"""Meta-analysis: pooled estimate, heterogeneity, forest, funnel with Egger's test, bubble,
dose-response and the evaluation-rigour sensitivity analysis, with downloads."""

import json

import streamlit as st

import metaanalysis as ma
from metaanalysis.plots import bubble_figure, dose_figure, forest_figure, funnel_figure
from ui import state

st.title("Meta-analysis")
table = state.effects()
with st.expander(f"{len(table)} effects; {len(table.excluded)} results excluded — why", expanded=False):
    st.text(table.summary())
    st.dataframe(table.excluded, hide_index=True, width="stretch")
if len(table) < 2:
    st.info("Too few effects to pool. Widen the filters, or allow an assumed n_test in the sidebar.")
    st.stop()

c = st.columns(4)
model = c[0].selectbox("Model", ["multilevel", "random", "common"], key="ma_model",
                       help="multilevel = effects within clusters within studies (the default: rows of one study are not independent)")
methods = ["REML", "ML"] if model == "multilevel" else ["REML", "DL", "ML", "PM", "HE", "SJ"] if model == "random" else ["FE"]
method = c[1].selectbox("Estimator", methods, key="ma_method")
knha = c[2].checkbox("Knapp-Hartung / t tests", key="ma_knha")
robust = c[3].selectbox("Cluster-robust", ["none", "CR2", "CR1"], key="ma_robust", help="CR2 by study (clubSandwich); large clusters need CR1")
mods = st.multiselect("Moderators (meta-regression)", ["compression_family", "sparsity", "bits", "adversarial_training", "epsilon", "threat_model",
                                                       "attack", "dataset", "high_risk"], key="ma_mods")
spec = ma.AnalysisSpec(model=model, method=method, mods=" + ".join(mods) or None, knha=knha, robust=None if robust == "none" else robust)


@st.cache_data(show_spinner="Fitting the model...", max_entries=32)
def fit(_table, key, spec):
    an = ma.run_analysis(_table, spec)
    return an


try:
    an = fit(table, (state._fkey(state.current_filter()), state.effect_settings(), state.version()), spec)
except ma.MetaInputError as exc:
    st.error(f"The model cannot be fitted: {exc}")
    st.stop()
f = an.fit
c0 = f.coefficients[0]
m = st.columns(4)
m[0].metric("Pooled effect" if f.intercept_only else "Intercept", f"{c0.estimate:+.2f}", help=state.unit())
m[1].metric("95% CI", f"{c0.ci_low:+.2f} to {c0.ci_high:+.2f}")
m[2].metric("p-value", f"{c0.pval:.3g}")
m[3].metric("I²", f"{f.i2:.1f}%")
st.caption(" | ".join([f"Q({f.q_df}) = {f.q:.1f}, p = {f.q_pval:.3g}"] + [f"σ² {k} = {v:.3f}" for k, v in f.sigma2.items()]
                      + ([f"τ² = {f.tau2:.3f}"] if f.tau2 is not None else [])
                      + ([f"95% PI {f.pi_low:+.2f} to {f.pi_high:+.2f}"] if f.pi_low is not None else [])))
for n in an.notes:
    st.caption(f"note: {n}")
if not f.intercept_only:
    st.dataframe(f.to_frame(), width="stretch")
    st.caption(f"QM = {f.qm:.2f} (df {f.qm_df[0]}), p = {f.qm_pval:.3g}" + (f"; R² = {f.r2:.1f}%" if f.r2 is not None else ""))

tabs = st.tabs(["Forest", "Funnel & Egger", "Bubble", "Dose-response", "Rigour sensitivity", "Downloads"])
with tabs[0]:
    base = ma.AnalysisSpec(model=model, method=method)
    st.plotly_chart(forest_figure(ma.per_study(table, base), ma.run_analysis(table, base).fit, unit=state.unit()), width="stretch")
with tabs[1]:
    eg = ma.egger_test(table.effects["yi"], table.effects["vi"], model="lm")
    st.plotly_chart(funnel_figure(table.effects["yi"], table.effects["vi"], c0.estimate, egger=eg, unit=state.unit()), width="stretch")
    st.caption(eg.summary() + ". With several effects per study the test treats them as independent (anti-conservative).")
with tabs[2]:
    cont = [x for x in ("sparsity", "bits", "epsilon") if table.effects[x].notna().sum() >= 3 and table.effects[x].nunique() > 1]
    if not cont:
        st.info("No continuous moderator varies among the effects.")
    else:
        x = st.selectbox("Moderator", cont, key="bubble_x")
        try:
            st.plotly_chart(bubble_figure(ma.run_analysis(table, ma.AnalysisSpec(model=model, method=method, mods=x)), x, unit=state.unit()), width="stretch")
        except ma.MetaInputError as exc:
            st.info(f"Cannot fit the meta-regression on {x}: {exc}")
with tabs[3]:
    if table.effects["sparsity"].nunique() < 3:
        st.info("A dose-response fit needs at least three distinct sparsity levels among the effects.")
    else:
        try:
            dr = ma.dose_response(table, "sparsity", ma.AnalysisSpec(model=model, method=method))
            st.plotly_chart(dose_figure(dr, unit=state.unit()), width="stretch")
            st.markdown(f"**{dr.verdict}**")
        except ma.MetaInputError as exc:
            st.info(f"Cannot fit the dose-response model: {exc}")
with tabs[4]:
    sens = ma.rigour_sensitivity(table, ma.AnalysisSpec(model=model, method=method))
    st.dataframe(sens.to_frame(), hide_index=True, width="stretch")
    st.caption(f"{sens.n_high_risk} high-risk effects (weak or unknown attack, epsilon not stated, robust above clean, or possible gradient masking). {sens.note}")
with tabs[5]:
    st.download_button("Model results (JSON)", json.dumps(an.to_dict(), indent=1), "crev-meta.json", "application/json")
    st.download_button("Effect table (CSV, metafor-ready)", table.to_csv(), "crev-effects.csv", "text/csv")
