"""Overview: what the database holds, the answer to each disputed question, and the evidence map."""

import pandas as pd
import streamlit as st

import metaanalysis as ma
from evidence import ResultFilter
from metaanalysis.answers import MIN_STUDIES
from metaanalysis.plots import evidence_map_figure
from metaanalysis.rscript import answers_bundle, app_provenance
from ui import answers as ans_ui
from ui import labels, state

st.title("Compression vs adversarial robustness")
st.caption("Does pruning or quantizing a network make it more or less robust to adversarial examples? "
           "Every number below comes from a public source or a controlled replication, with its provenance.")
s = state.stats()
c = st.columns(4)
c[0].metric("Studies", s.studies)
c[1].metric("Coded claims", s.claims)
c[2].metric("Results", s.results)
c[3].metric("Pending review", s.pending_submissions)

settings = state.effect_settings()
unit = state.unit()
st.header("The disputed questions")
assume = " --assume-n dataset" if settings.assume_n == "dataset" else ""
effect = "" if settings.measure.value == "delta_robust" else f" --effect {settings.measure.value}"
st.caption(f"Each question over all approved evidence in its scope (the sidebar's filters do not apply here), split by evaluation kind "
           f"(threat model, attack family, adversarial training), as the change in robust accuracy from the dense to the compressed model "
           f"({unit}; negative = less robust after compression), pooled by the default multilevel model where at least 3 studies give "
           f"numbers and leaving one study out does not flip the sign. Where a pooled number rests partly on high-risk evaluations, it is "
           f"refitted without them when at least {MIN_STUDIES} studies keep a low-risk effect. "
           f"The same answers as `crev meta answer{effect}{assume}`.")
answers = state.answers(settings, wait=False)
ans_key = (state.settings_key(settings), state.evidence_version())
err = state.report_error("answers", ans_key)
if err is not None:
    st.error(f"The answers could not be computed ({type(err).__name__}: {err}); the rest of the page still shows the evidence.")
elif answers is None and state.PRECOMPUTE:
    st.info("The answers are being computed from the evidence (once per data change, a few seconds); they appear here when ready.")

    @st.fragment(run_every=1.5)
    def _poll():
        if state.answers(settings, wait=False) is not None or state.report_error("answers", ans_key) is not None:
            st.rerun()
    _poll()
elif answers is None:
    st.info("The answers are computed on request on this server (CREV_APP_PRECOMPUTE=0).")
    if st.button("Compute the answers", key="ov_answers"):
        answers = state.answers(settings)
rep = state.contradictions(settings, wait=False)
for qa in answers.questions if answers is not None else ():
    with st.container(border=True):
        st.markdown(f"**{labels.question(qa.question)}**")
        if not qa.measurable:
            st.markdown("Not assessable: no result in the database measures what this question asks; only the studies' claims speak to it.")
            continue
        if not qa.kinds:
            st.markdown("No effect sizes bear on this question.")
            continue
        n_est = sum(k.estimable for k in qa.kinds)
        st.markdown(f"{len(qa.kinds)} evaluation kind{'s' if len(qa.kinds) != 1 else ''}; "
                    + (f"{n_est} with a pooled number." if n_est else "none estimable as one number: see each study's own estimate below."))
        st.table(ans_ui.kind_table(qa), hide_index=True)
        parts = []
        conc = ans_ui.concentration(qa)
        if conc is not None:
            parts.append(conc.text)
        if qa.high_risk_text:
            parts.append(qa.high_risk_text)
        if rep is not None:
            deps = [f.label for f in rep.fits if str(f.question) == qa.question.value and f.testable and f.pval_adjusted is not None
                    and f.pval_adjusted < rep.alpha]
            if deps:
                parts.append("it depends on " + ", ".join(deps) + " (moderators significant after the contradiction analysis's "
                             "multiple-testing correction)")
        if parts:
            st.caption("; ".join(parts) + ".")
        ps = ans_ui.per_study_table(qa)
        if len(ps):
            with st.expander(f"Per-study estimates where there is no pooled number ({len(ps)})"):
                st.table(ps, hide_index=True)
if answers is not None:  # every pooled answer as runnable R: the files `crev meta answer --emit-r DIR` writes (issue 25)
    aprov = app_provenance("answer", None, ResultFilter(), settings)
    st.download_button("Download R script", lambda: answers_bundle(state.effects(ResultFilter(), settings), answers, aprov),
                       file_name="crev_answers_R.zip", mime="application/zip", key="ov_rscript",
                       help=f"one analysis.R per pooled answer and an index: what `{aprov.command} --emit-r DIR` writes")
if answers is not None and rep is None:
    err = state.contradictions_failed(settings)
    st.caption(f"What each answer depends on comes from the contradiction analysis, which could not be computed ({err})." if err else
               "What each answer depends on comes from the contradiction analysis, still being computed: it appears on the next visit.")

st.header("Under the current filters")
f = state.current_filter()
ver = state.version()
key = (state.filter_key(f), state.settings_key(settings), ver)
res = state.results(f)
table = state.effects(f, settings)
h = state.memo("headline", key, lambda: ma.headline(table))
if h.ok:
    st.markdown(f"**{h.text}**")
    if h.pi_low is not None:
        st.caption(f"95% prediction interval for a new setting: {h.pi_low:+.2f} to {h.pi_high:+.2f} {unit}. "
                   "These filters may pool incomparable evaluations: the per-question answers above are the ones to read.")
else:
    st.info(h.text + " Widen the filters in the sidebar, or allow an assumed number of test images under 'Missing n_test'.")
st.caption(f"{len(table):,} effects; {len(table.excluded):,} results could not give an effect (the Meta-analysis page lists why).")
left, right = st.columns(2)
for col, title, counts, name in ((left, "Results by compression family", s.by_family, "compression"),
                                (right, "Results by threat model", s.by_threat_model, "threat model")):
    col.subheader(title)
    col.dataframe(pd.DataFrame({name: [labels.label(k) for k in counts], "results": list(counts.values())}), hide_index=True, width="stretch")

st.subheader("Evidence map")
if res.empty:
    st.info("No results match the filters. Clear some filters in the sidebar.")
else:
    def _map_fig():
        m = ma.evidence_map(res, table).copy()
        for c_ in ("compression_family", "threat_model"):  # adversarial training reads "AT yes/no" as it is
            m[c_] = m[c_].map(labels.label)
        return evidence_map_figure(m)
    st.plotly_chart(state.memo("evidence_map", key, _map_fig), width="stretch")
