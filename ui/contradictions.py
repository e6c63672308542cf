"""Contradictions: each pair of contradicting claims, side by side, with the tested explanations.

The report covers all approved evidence under each question's own scope (not the sidebar's
filters, which are hidden here); it is computed once per data change, in the background.
"""

import pandas as pd
import streamlit as st

from ui import labels, state

st.title("Contradictions")
st.caption("Pairs of studies whose claims on the same question point opposite ways, each candidate explanation "
           "tested with a three-level meta-regression on the approved results under that question. The sidebar's filters do not "
           "apply here: each question has its own scope (below).")
s = state.effect_settings()
rep = state.contradictions(s)
st.markdown(f"**{rep.summary()}**")
for n in rep.effect_notes:
    st.caption(n)

questions = sorted({str(p.question) for p in rep.pairs})
fits = rep.tests_frame()
has_data = {q for q in questions if len(fits) and bool(fits[(fits["question"].astype(str) == q) & fits["testable"]].shape[0])}
order = sorted(questions, key=lambda q: (q not in has_data, q))  # a question with numbers first
if not order:
    st.info("No two studies' claims contradict each other in the approved evidence.")
    st.stop()
q = st.selectbox("Question", order, key="contra_q",
                 format_func=lambda q: labels.question(q) + ("" if q in has_data else " (no results to test)"))
ft = fits[fits["question"].astype(str) == q]


def _p(v) -> str:
    return labels.MISSING if v is None or pd.isna(v) else labels.pval(v).removeprefix("p = ").removeprefix("p ")


st.markdown("**Candidate explanations, each tested on the question's results** (meta-regression, CR2 by study)")
st.dataframe(pd.DataFrame({
    "candidate explanation": ft["label"],
    "effects": ft["k"],
    "studies": ft["n_studies"],
    "studies where it varies": ft["n_studies_varying"],
    "p": [_p(v) for v in ft["pval"]],
    "p (corrected)": [_p(v) for v in ft["pval_adjusted"]],
    "why untestable": [r or labels.MISSING for r in ft["reason"]],
}), hide_index=True, width="stretch", column_config={"why untestable": st.column_config.TextColumn(width="large")})
c = st.columns(2)
kinds = c[0].multiselect("Kinds", ["opposite", "direction vs no change"], default=["opposite", "direction vs no change"], key="contra_kinds")
verdicts = sorted({p.verdict.value for p in rep.pairs})
chosen = c[1].multiselect("Verdicts", verdicts, default=verdicts, key="contra_verdicts")


def evidence_line(e) -> str:
    if not e.has_numbers:
        return f"{e.study}: no results of this study fall under this question; its claim is compared on its coding only."
    return (f"{e.study}: {labels.pp(e.estimate)} [{e.ci_low:+.2f}, {e.ci_high:+.2f}] pooled from its {e.k:,} effect(s) under this "
            f"question ({e.model}).")


pairs = [p for p in rep.pairs if str(p.question) == q and p.kind in kinds and p.verdict.value in chosen]
st.caption(f"{len(pairs)} pair(s) on this question.")
for p in pairs:
    with st.expander(f"{p.a.study} ({labels.label(p.a.direction)}) vs {p.b.study} ({labels.label(p.b.direction)}) — {p.verdict.value}"):
        st.markdown(f"**Verdict: {p.verdict.value}.**")
        st.text(p.verdict_text)
        a, b = st.columns(2)
        for col, e in ((a, p.a), (b, p.b)):
            col.markdown(f"**{e.study}** — {labels.label(e.direction)}")
            col.text(e.position or labels.MISSING)  # the study's own words, as plain text
        st.markdown("**Evidence used**")
        st.text("\n".join([evidence_line(p.a), evidence_line(p.b), *p.evidence_used]))
        if p.checks:
            st.dataframe(pd.DataFrame([{
                "candidate explanation": ch.label, p.a.study: ch.value_a or labels.MISSING, p.b.study: ch.value_b or labels.MISSING,
                "result": ch.status or (ch.reason if not ch.testable else labels.MISSING), "p (corrected)": _p(ch.pval_adjusted),
            } for ch in p.checks]), hide_index=True, width="stretch", column_config={"result": st.column_config.TextColumn(width="large")})
st.download_button("Report (Markdown)", rep.to_markdown(), "crev-contradictions.md", "text/markdown")
st.download_button("Report (JSON)", rep.to_json(), "crev-contradictions.json", "application/json")
