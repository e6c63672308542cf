"""Overview: what the database holds, the answer to each disputed question, and the evidence map."""

import pandas as pd
import streamlit as st

import metaanalysis as ma
from metaanalysis.plots import evidence_map_figure
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
short = "pp" if unit.startswith("perc") else "log OR"
st.header("The disputed questions")
st.caption(f"Each question over all approved evidence in its scope (the sidebar's filters do not apply here), as the change in robust "
           f"accuracy from the dense to the compressed model ({unit}; negative = less robust after compression), pooled by the default "
           "multilevel model. The share resting on one study and on high-risk evaluations says how far to trust each number.")
cards = state.answers(settings, wait=False)
ans_key = (state.settings_key(settings), state.evidence_version())
err = state.report_error("answers", ans_key)
if err is not None:
    st.error(f"The answers could not be computed ({type(err).__name__}: {err}); the rest of the page still shows the evidence.")
elif cards is None and state.PRECOMPUTE:
    st.info("The answers are being computed from the evidence (once per data change, about 10 s); they appear here when ready.")

    @st.fragment(run_every=1.5)
    def _poll():
        if state.answers(settings, wait=False) is not None or state.report_error("answers", ans_key) is not None:
            st.rerun()
    _poll()
elif cards is None:
    st.info("The answers are computed on request on this server (CREV_APP_PRECOMPUTE=0).")
    if st.button("Compute the answers", key="ov_answers"):
        cards = state.answers(settings)
rep = state.contradictions(settings, wait=False)
for card in cards or []:
    with st.container(border=True):
        st.markdown(f"**{card.text}**")
        claims = ", ".join(f"{n} {labels.label(d)}" for d, n in sorted(card.claims.items(), key=lambda kv: -kv[1])) or "none coded"
        if card.estimate is not None:
            cols = st.columns([1, 1.7, 1, 0.8])
            cols[0].metric("Pooled change", f"{card.estimate:+.1f} {short}", help=f"95% CI; model: {card.model}")
            cols[1].metric("95% CI", f"{card.ci_low:+.1f} to {card.ci_high:+.1f} {short}")
            cols[2].metric("Studies / effects", f"{card.n_studies} / {card.k:,}")
            cols[3].metric("p-value", labels.pval(card.pval).removeprefix("p = ").removeprefix("p "))
        parts = []
        if card.k:
            parts.append(f"{card.top_study_effects:,} of {card.k:,} effects ({labels.share(card.top_study_effects, card.k)}) come from one study "
                         f"({card.top_study})")
            parts.append(f"{card.high_risk_effects:,} ({labels.share(card.high_risk_effects, card.k)}) are high-risk evaluations")
        if card.pi_low is not None and card.estimate is not None:
            if short == "pp" and (card.pi_low < -100 or card.pi_high > 100):
                parts.append(f"a new setting: anywhere in the possible range (the 95% prediction interval, {card.pi_low:+.0f} to "
                             f"{card.pi_high:+.0f} pp, is wider than -100 to +100 pp)")
            else:
                parts.append(f"a new setting: {card.pi_low:+.1f} to {card.pi_high:+.1f} {short} (95% prediction interval)")
        st.markdown(f"{card.verdict}")
        if parts:
            st.caption("; ".join(parts) + ".")
        if rep is not None:
            deps = [f.label for f in rep.fits if str(f.question) == card.question_id and f.testable and f.pval_adjusted is not None
                    and f.pval_adjusted < rep.alpha]
            if deps:
                st.caption("It depends on: " + ", ".join(deps) + " (moderators significant after the contradiction analysis's multiple-testing correction).")
        st.caption(f"Studies' claims: {claims}.")
        if card.per_study is not None and len(card.per_study):
            ps = card.per_study
            st.dataframe(pd.DataFrame({"study": ps["study"], "effects": ps["k"],
                                       f"estimate ({short})": ps["estimate"].round(2),
                                       "95% CI": [f"{lo:+.2f} to {hi:+.2f}" for lo, hi in zip(ps["ci_low"], ps["ci_high"])]}),
                         hide_index=True, width="stretch")
if rep is None:
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
if h["ok"]:
    st.markdown(f"**{h['text']}**")
    if h.get("pi_low") is not None:
        st.caption(f"95% prediction interval for a new setting: {h['pi_low']:+.2f} to {h['pi_high']:+.2f} {unit}. "
                   "These filters may pool incomparable evaluations: the per-question answers above are the ones to read.")
else:
    st.info(h["text"] + " Widen the filters in the sidebar, or allow an assumed number of test images under 'Missing n_test'.")
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
