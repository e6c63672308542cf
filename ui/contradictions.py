"""Contradictions: each pair of contradicting claims, side by side, with the tested explanations."""

import streamlit as st

import metaanalysis as ma
from ui import state

st.title("Contradictions")
st.caption("Pairs of studies whose claims on the same question point opposite ways, each candidate explanation "
           "tested with a three-level meta-regression on the results under that question.")


@st.cache_data(show_spinner="Testing the candidate explanations...", max_entries=8)
def report(url, skey, ver):
    settings = ma.EffectSettings(**dict(skey))
    table = ma.compute_effects(state._results(url, state._fkey(state.ev.ResultFilter()), ver), settings)
    return ma.contradiction_report(table, state._studies(url, ver), state._claims(url, ver))


s = state.effect_settings()
rep = report(state.db_url(), (("measure", s.measure.value), ("assume_n", s.assume_n)), state.version())
st.markdown(f"**{rep.summary()}**")
for n in rep.effect_notes:
    st.caption(n)
questions = sorted({p.question_id for p in rep.pairs})
q = st.selectbox("Question", questions, key="contra_q")
st.dataframe(rep.tests_frame().query("question == @q").drop(columns=["question"]), hide_index=True, width="stretch")
kinds = st.multiselect("Kinds", ["opposite", "direction vs no change"], default=["opposite", "direction vs no change"], key="contra_kinds")
for p in [p for p in rep.pairs if p.question_id == q and p.kind in kinds]:
    with st.expander(f"{p.study_a} ({p.direction_a}) vs {p.study_b} ({p.direction_b}) — {p.verdict}"):
        a, b = st.columns(2)
        for col, sid, d, pos, est in ((a, p.study_a, p.direction_a, p.position_a, p.estimate_a), (b, p.study_b, p.direction_b, p.position_b, p.estimate_b)):
            col.markdown(f"**{sid}** — claims *{d}*: “{pos}”")
            col.write(f"pooled effect {est['estimate']:+.2f} [{est['ci_low']:+.2f}, {est['ci_high']:+.2f}] from {est['k']} effects" if est
                      else "no numbers in the database")
        if p.differences:
            st.table({"condition": list(p.differences), p.study_a: [v[0] for v in p.differences.values()], p.study_b: [v[1] for v in p.differences.values()]})
        st.dataframe(p.explanations, hide_index=True, width="stretch")
st.download_button("Report (Markdown)", rep.to_markdown(), "crev-contradictions.md", "text/markdown")
st.download_button("Report (JSON)", rep.to_json(), "crev-contradictions.json", "application/json")
