"""Add evidence: a study with its claims, a CSV of results (previewed before anything is written),
and a correction of an existing entry. Everything goes to the review queue.

An uploaded CSV is never copied whole in memory: it is streamed to a temporary file in chunks under
the cap of ``server.maxUploadSize`` (:mod:`ui.uploads`), read from there by the preview and the
import, and deleted straight after each."""

import pandas as pd
import streamlit as st

import evidence as ev
from ui import labels, state, uploads

st.title("Add evidence")
st.caption("Additions are checked completely first: nothing is written unless every field and row passes. "
           "What is written waits in the review queue until a curator approves it.")
_me = state.user_name()
if _me:
    st.info(f"Submitting as **{_me}** (who you are is set once, in the sidebar; sign out there to change it).")
else:
    st.warning("Sign in or give your name in the sidebar ('Sign in') first: it is recorded with what you submit.")
TEMPLATE = "results-template.csv"


def who() -> str | None:
    name = state.user_name()
    if not name:
        st.error("Sign in or give your name in the sidebar ('Sign in') first: it is recorded with the submission.")
    return name or None


def problems_table(exc: ev.ValidationFailed) -> None:
    """Every problem, with "header" for problems with the columns (not "row 0")."""
    st.error(f"{len(exc.problems)} problem(s); nothing was written. Compare the file with the template "
             f"('Download the template', {TEMPLATE}).")
    st.dataframe(pd.DataFrame([{"where": "header" if p.row in (None, 0) else f"row {p.row}", "column": p.column or labels.MISSING,
                                "reason": p.reason} for p in exc.problems[:500]]), hide_index=True, width="stretch")
    if len(exc.problems) > 500:
        st.caption(f"... and {len(exc.problems) - 500:,} more.")


# --- a study and its claims ------------------------------------------------------------------------------------------
st.subheader("A study and its claims")
QUESTIONS = [q.value for q in ev.Question]
with st.form("add_study"):
    c = st.columns(2)
    sid = c[0].text_input("Study id (slug, e.g. doe_2026_pruningrobustness)")
    title = c[1].text_input("Title")
    authors = c[0].text_input("Authors")
    year = c[1].text_input("Year (as written, e.g. 2024 or '2022 (arXiv Aug 2021)')")
    venue = c[0].text_input("Venue")
    identifier = c[1].text_input("DOI / arXiv id / URL")
    kind = c[0].selectbox("Compression kind", [k.value for k in ev.CompressionKind], format_func=labels.label)
    adv = c[1].selectbox("Adversarial training", [a.value for a in ev.AdvTraining], format_func=labels.label)
    main_claim = st.text_area("Main claim, in the study's words")
    direction = st.selectbox("Direction of the main claim", [d.value for d in ev.Direction], format_func=labels.label)
    source = st.text_input("Where this information comes from")
    st.markdown("Claims on the disputed questions (one row each; pick the question from the list):")
    claims = st.data_editor(
        pd.DataFrame({"question_id": pd.Series(dtype=str), "direction": pd.Series(dtype=str), "position": pd.Series(dtype=str)}),
        num_rows="dynamic", key="claims_editor", width="stretch",
        column_config={
            "question_id": st.column_config.SelectboxColumn("question", options=QUESTIONS, required=True, width="medium",
                                                            help="; ".join(f"{q.value}: {q.text}" for q in ev.Question)),
            "direction": st.column_config.SelectboxColumn("direction", options=[d.value for d in ev.Direction], required=True),
            "position": st.column_config.TextColumn("position (the study's words)", width="large"),
        })
    with st.expander("The questions"):
        st.markdown("\n".join(f"- `{q.value}`: {q.text}" for q in ev.Question))
    submitted = st.form_submit_button("Submit the study for review")
if submitted and (by := who()):
    payload = {"study": {"study_id": sid.strip(), "title": title, "authors": authors, "year": year, "venue": venue, "identifier": identifier,
                         "compression_kind": kind, "adversarial_training": adv, "main_claim": main_claim, "main_direction": direction,
                         "source_of_info": source},
               "claims": [r for r in claims.to_dict("records") if any(str(v or "").strip() for v in r.values())]}
    try:
        sub = ev.add_study(state.engine(), payload, by, file="form")
        st.success(f"Submission {sub.id}: the study and {sub.n_claims} claim(s) are in the review queue.")
    except ev.ValidationFailed as exc:
        st.error(f"{len(exc.problems)} problem(s); nothing was written:")
        st.dataframe(pd.DataFrame([{"field": p.column, "row": p.row if p.row is not None else labels.MISSING, "reason": p.reason}
                                   for p in exc.problems]), hide_index=True)

# --- results from a CSV: preview, then submit ----------------------------------------------------------------------------
st.subheader("Results from a CSV file")
st.download_button("Download the template (header + one documented example row)", ev.template_csv(), TEMPLATE, "text/csv")
LIMIT_MB = int(st.get_option("server.maxUploadSize"))  # .streamlit/config.toml: the server refuses larger bodies first
up = st.file_uploader(f"Results CSV (the template's columns; up to {LIMIT_MB} MB — larger files: `crev evidence import`)", type=["csv"],
                      key="upload")
if up is not None:
    prev = st.session_state.get("import_preview")
    if prev is None or prev[0] != up.file_id:  # one preview per upload, not per rerun
        st.session_state.pop("import_preview", None)
        try:
            with st.spinner("Checking every row (nothing is written)..."), \
                    uploads.spool(up, LIMIT_MB * uploads.MIB, name=up.name) as spooled, spooled.open() as fh:
                report = ev.preview_import(state.engine(), fh, name=up.name)
            st.session_state["import_preview"] = (up.file_id, report)
        except uploads.UploadTooLarge as exc:
            st.error(str(exc))
            st.stop()
        except ev.ValidationFailed as exc:
            problems_table(exc)
            st.stop()
    report = st.session_state["import_preview"][1]
    st.markdown(f"**Preview of {up.name}** (nothing written yet)")
    m = st.columns(4)
    m[0].metric("Rows read", report.rows_read)
    m[1].metric("Fully parsed", report.rows_fully_parsed, help="every field has a typed value")
    m[2].metric("With warnings", len(report.warnings), help="written and flagged on the row")
    m[3].metric("Skipped", len(report.skipped), help="not written (e.g. already in the database)")
    if report.rows_fully_parsed < report.rows_read:
        st.warning(f"{report.rows_read - report.rows_fully_parsed} of {report.rows_read} rows have values kept only as text: they are stored, "
                   "but filters and analyses cannot use those fields.")
    if report.unparsed:
        st.markdown("Values kept as text, with no typed value (per column):")
        st.dataframe(pd.DataFrame([{"column": col, "rows": sum(cnt.values()), "values": "; ".join(f"{t} (×{n})" for t, n in cnt.most_common(5))}
                                   for col, cnt in sorted(report.unparsed.items())]), hide_index=True, width="stretch")
    if report.annotated:
        st.markdown("Values read from an annotated cell (the whole text is kept beside the value):")
        st.dataframe(pd.DataFrame([{"column": col, "rows": sum(cnt.values()), "texts": "; ".join(f"{t} (×{n})" for t, n in cnt.most_common(5))}
                                   for col, cnt in sorted(report.annotated.items())]), hide_index=True, width="stretch")
    if report.warnings:
        with st.expander(f"{len(report.warnings)} warning(s): rows that cannot give an effect, non-adversarial rows, near-duplicates ..."):
            st.text("\n".join(report.warnings[:300]))
    if report.skipped:
        with st.expander(f"{len(report.skipped)} row(s) that would be skipped"):
            st.text("\n".join(report.skipped[:300]))
    if st.button(f"Submit {report.results or report.rows_read - len(report.skipped)} result(s) for review", type="primary", key="import_btn") \
            and (by := who()):
        try:
            with uploads.spool(up, LIMIT_MB * uploads.MIB, name=up.name) as spooled, spooled.open() as fh:
                rep = ev.import_results(state.engine(), fh, by, name=up.name)
            st.session_state.pop("import_preview", None)
            st.success(f"Submission {rep.submission_id}: {rep.results or rep.rows_read} results are in the review queue "
                       f"({rep.rows_fully_parsed} of {rep.rows_read} fully parsed).")
        except uploads.UploadTooLarge as exc:
            st.error(str(exc))
        except ev.ValidationFailed as exc:
            problems_table(exc)

# --- a correction ---------------------------------------------------------------------------------------------------------
st.subheader("Correct an existing entry")
st.caption("A corrected version of one study, claim or result: it copies the current version with your change and waits for review. "
           "Ids: a study's slug (Explore, study detail), a claim's or result's id (the 'id' column of Explore's tables).")
ENTITY_FIELDS = {
    "study": ["title", "authors", "year_text", "venue", "identifier", "main_claim", "main_direction", "adversarial_training", "compression_kind",
              "source_of_info"],
    "claim": ["direction", "position", "conditions_note", "question_id"],
    "result": ["clean_acc_dense", "robust_acc_dense", "clean_acc_compressed", "robust_acc_compressed", "n_test", "dataset", "architecture",
               "compression_level_text", "sparsity", "bits", "attack", "epsilon_text", "epsilon", "steps", "threat_model", "source_location",
               "url_or_path", "notes"],
}
entity = st.selectbox("Entry", list(ENTITY_FIELDS), key="corr_entity", format_func=str.capitalize)
with st.form("correction"):
    c = st.columns(2)
    key = c[0].text_input("Its id (study slug, claim or result id)", key="corr_key")
    field = c[1].selectbox("Field to correct", ENTITY_FIELDS[entity], key=f"corr_field_{entity}", format_func=labels.column)
    value = st.text_input("Corrected value", key="corr_value")
    why = st.text_input("Why (e.g. 'Table 3 says 47.1, not 41.7')", key="corr_reason")
    send = st.form_submit_button("Submit the correction for review")
if send and (by := who()):
    if not (key.strip() and field.strip() and why.strip()):
        st.error("A correction needs the entry's id, the field, and why.")
    else:
        try:
            sub = ev.propose_correction(state.engine(), entity, key.strip(), {field.strip(): value}, by=by, reason=why.strip())
            st.success(f"Submission {sub.id}: the correction of {entity} {key.strip()} ({field.strip()}) is in the review queue.")
        except ev.ValidationFailed as exc:
            problems_table(exc)
        except ev.EvidenceError as exc:
            st.error(f"Not submitted: {exc}")
