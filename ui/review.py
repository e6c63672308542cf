"""Review (curators): pending submissions with a diff against the current version; approve or reject."""

import hmac

import streamlit as st

import evidence as ev
from ui import state

st.title("Review queue")
secret = state.curator_secret()
pending = ev.pending_submissions(state.engine())
if secret is None:
    st.warning("Read-only: no curator secret is configured. Set `curator_secret` in .streamlit/secrets.toml "
               "or the environment variable CREV_CURATOR_SECRET to enable approving and rejecting.")
    curator = False
else:
    given = st.text_input("Curator secret", type="password", key="curator_input")
    curator = bool(given) and hmac.compare_digest(given, secret)
    if given and not curator:
        st.error("That secret is not the configured one: the page stays read-only.")
if pending.empty:
    st.info("No submissions wait for review. New ones arrive from 'Add evidence', `crev evidence import` and replication jobs.")
    st.stop()
st.dataframe(pending, hide_index=True, width="stretch")
sub_id = st.selectbox("Submission", pending["id"].tolist(), key="review_sub")
diff = ev.submission_diff(state.engine(), int(sub_id))
st.caption("Changes against the current approved version (new entries list every field).")
st.dataframe(diff.astype(str), hide_index=True, width="stretch")
if curator:
    c = st.columns(2)
    if c[0].button("Approve", type="primary", key="approve_btn"):
        ev.approve(state.engine(), int(sub_id), state.user_name())
        st.success(f"Submission {sub_id} approved: it counts in analyses now.")
        st.rerun()
    reason = c[1].text_input("Reason for rejecting", key="reject_reason")
    if c[1].button("Reject", key="reject_btn"):
        if not reason.strip():
            st.error("A rejection needs a reason.")
        else:
            ev.reject(state.engine(), int(sub_id), reason, state.user_name())
            st.success(f"Submission {sub_id} rejected; it stays visible with the reason.")
            st.rerun()
