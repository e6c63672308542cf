"""Add evidence: a study with its claims, and a CSV upload of results. Everything goes to review."""

import pandas as pd
import streamlit as st

import evidence as ev
from ui import state

st.title("Add evidence")
st.caption("Additions are checked completely first: nothing is written unless every field and row passes. "
           "What is written waits in the review queue until a curator approves it.")
st.text_input("Your name (recorded with the submission)", key="user_name", placeholder=ev.whoami(None))

st.subheader("A study and its claims")
with st.form("add_study"):
    c = st.columns(2)
    sid = c[0].text_input("Study id (slug, e.g. doe_2026_pruningrobustness)")
    title = c[1].text_input("Title")
    authors = c[0].text_input("Authors")
    year = c[1].text_input("Year (as written, e.g. 2024 or '2022 (arXiv Aug 2021)')")
    venue = c[0].text_input("Venue")
    identifier = c[1].text_input("DOI / arXiv id / URL")
    kind = c[0].selectbox("Compression kind", [k.value for k in ev.CompressionKind])
    adv = c[1].selectbox("Adversarial training", [a.value for a in ev.AdvTraining])
    main_claim = st.text_area("Main claim, in the study's words")
    direction = st.selectbox("Direction of the main claim", ["up", "down", "neutral", "mixed", "unknown"])
    source = st.text_input("Where this information comes from")
    st.markdown("Claims on the disputed questions (one row each):")
    claims = st.data_editor(pd.DataFrame({"question_id": pd.Series(dtype=str), "direction": pd.Series(dtype=str), "position": pd.Series(dtype=str)}),
                            num_rows="dynamic", key="claims_editor", width="stretch")
    submitted = st.form_submit_button("Submit the study for review")
if submitted:
    payload = {"study": {"study_id": sid.strip(), "title": title, "authors": authors, "year": year, "venue": venue, "identifier": identifier,
                         "compression_kind": kind, "adversarial_training": adv, "main_claim": main_claim, "main_direction": direction,
                         "source_of_info": source},
               "claims": [r for r in claims.to_dict("records") if any(str(v or "").strip() for v in r.values())]}
    try:
        sub = ev.add_study(state.engine(), payload, state.user_name(), file="form")
        st.success(f"Submission {sub.id}: the study and {sub.n_claims} claim(s) are in the review queue.")
    except ev.ValidationFailed as exc:
        st.error(f"{len(exc.problems)} problem(s); nothing was written:")
        st.dataframe(pd.DataFrame([{"field": p.column, "row": p.row, "reason": p.reason} for p in exc.problems]), hide_index=True)

st.subheader("Results from a CSV file")
st.download_button("Download the template (header + one documented example row)", ev.template_csv(), "results-template.csv", "text/csv")
up = st.file_uploader("Results CSV (the template's columns)", type=None, key="upload")
if up is not None and st.button("Import for review", key="import_btn"):
    try:
        rep = ev.import_results(state.engine(), up.getvalue(), state.user_name(), name=up.name)
        st.success(f"Submission {rep.submission_id}: {rep.rows_read} results are in the review queue.")
        if rep.warnings:
            st.warning("Written, and flagged on the rows:\n\n" + "\n".join(f"- {w}" for w in rep.warnings[:20]))
    except ev.ValidationFailed as exc:
        st.error(f"{len(exc.problems)} problem(s); nothing was written:")
        st.dataframe(pd.DataFrame([{"row": p.row, "column": p.column, "reason": p.reason} for p in exc.problems]), hide_index=True)
