"""Review (curators): the queue, each submission's changes as a table, approve or reject with a
reason under the curator's own name.

Safety: the curator signs in with their own account (``[curators]`` in .streamlit/secrets.toml,
see :mod:`ui.accounts`); nothing is selected after a decision (no auto-advance: the next click
cannot approve something nobody chose); each decision needs a reason and a tick that the table was
checked, and is confirmed on the page; results wait for their study's approval; quick-run
replication rows are flagged; :func:`evidence.approve` refuses a curator's own submission unless
self-approval is configured (four-eyes), and the page shows its refusal.
"""

import pandas as pd
import streamlit as st

import evidence as ev
from ui import identity, labels, state

st.title("Review queue")
eng = state.engine()
flash = st.session_state.pop("review_flash", None)
if flash:
    st.success(flash)

me = identity.current()
curator = me.name if me is not None and me.curator else None
if not identity.curator_accounts() and not identity.oidc_providers():
    st.warning("Read-only: no curator account is configured. Add per-user accounts under `[curators]` in .streamlit/secrets.toml "
               "(`alice = \"<hash>\"`, the hash from `python -m ui.accounts`), a shared `curator_secret` / CREV_CURATOR_SECRET, "
               "or an identity provider (`[auth]` and `oidc_curators`, docs/SECURITY.md).")
elif curator:
    st.info(f"Signed in as curator **{curator}**. Decisions are recorded under this name.")
elif me is not None:
    st.info(f"Signed in as **{me.name}** ({me.describe()}): only curators approve or reject; anyone may read the queue.")
else:
    st.caption("Curators sign in in the sidebar ('Sign in') to approve or reject; anyone may read the queue.")

show = st.radio("Show", ["pending", "all submissions"], horizontal=True, key="review_show")
queue = ev.pending_submissions(eng, status=ev.ReviewStatus.pending if show == "pending" else None)
if queue.empty:
    st.info("No submissions wait for review. New ones arrive from 'Add evidence', `crev evidence import` and replication jobs.")
    st.stop()
QCOLS = ["id", "kind", "submitted_by", "submitted_at", "status", "n_studies", "n_claims", "n_results", "reviewed_by", "reason", "source_file"]
st.dataframe(labels.frame(queue, QCOLS), hide_index=True, width="stretch")

pending_ids = queue.loc[queue["status"] == "pending", "id"].tolist() if show == "pending" else queue["id"].tolist()
sub_id = st.selectbox("Submission", pending_ids, index=None, key="review_sub", placeholder="Choose a submission to review",
                      format_func=lambda i: (lambda r: f"#{i} — {labels.label(r['kind'])} by {r['submitted_by']} "
                                                       f"({int(r['n_studies'] or 0)} studies, {int(r['n_claims'] or 0)} claims, "
                                                       f"{int(r['n_results'] or 0)} results) — {labels.label(r['status'])}")(
                          queue.set_index("id").loc[i]))
if sub_id is None:
    st.stop()
sub = queue.set_index("id").loc[sub_id]
rows = ev.submission_rows(eng, int(sub_id))
diff = ev.submission_diff(eng, int(sub_id))

# --- flags a curator must see before deciding ----------------------------------------------------------------------
blockers, flags = [], []
res_rows = rows.get("result", pd.DataFrame())
if len(res_rows):
    if "quick" in res_rows and res_rows["quick"].fillna(False).astype(bool).any():
        flags.append(f"{int(res_rows['quick'].fillna(False).astype(bool).sum())} result(s) come from a QUICK replication run "
                     "(reduced grid): they never count toward a verdict.")
    approved_studies = set(state.studies()["study_id"])
    own = set(rows["study"]["study_id"]) if len(rows.get("study", [])) else set()
    missing = sorted(set(res_rows["study_id"]) - approved_studies - own)
    if missing:
        blockers.append(f"These results belong to {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not approved yet: "
                        "approve the study's submission first (a study is approved before, or with, its results).")
if sub["status"] == "pending" and curator and ev.same_identity(str(sub["submitted_by"]), curator):
    flags.append(f"You ({curator}) submitted this: another curator must approve it, unless self-approval is configured "
                 "(CREV_ALLOW_SELF_APPROVAL=1).")
for f in flags:
    st.warning(f)
for b in blockers:
    st.error(b)

# --- what changes -------------------------------------------------------------------------------------------------
st.subheader(f"Submission #{sub_id}: what it changes")
if sub["kind"] == "correction":
    st.caption("A correction: each row shows the current approved value and the proposed one.")
    st.info(f"The submitter's reason: “{sub['submitter_reason']}”" if sub.get("submitter_reason")
            else "The submitter gave no reason for this correction.")
for entity in ("study", "claim", "result"):
    d = diff[diff["entity"] == entity]
    if d.empty:
        continue
    corrected = d["current"].notna().any()
    if corrected:  # a correction: current vs proposed per field
        st.markdown(f"**{entity.capitalize()} changes**")
        st.dataframe(labels.frame(d.astype({"current": str, "proposed": str}), ["key", "field", "current", "proposed"]), hide_index=True,
                     width="stretch")
    else:  # new entries: one row per entry, one column per field
        wide = d.pivot_table(index="key", columns="field", values="proposed", aggfunc="first").reset_index()
        first = [c for c in ("key", "study_id", "question_id", "dataset", "architecture", "compression_level_text", "attack",
                             "epsilon_text", "clean_acc_dense", "robust_acc_dense", "clean_acc_compressed", "robust_acc_compressed",
                             "n_test", "title", "direction", "position") if c in wide]
        wide = wide[first + [c for c in wide.columns if c not in first]]
        st.markdown(f"**New {entity} entries ({len(wide)})**")
        st.dataframe(labels.frame(wide.astype(str).replace({"None": labels.MISSING, "nan": labels.MISSING})), hide_index=True,
                     width="stretch")

if sub["status"] != "pending":
    st.info(f"Submission #{sub_id} is {labels.label(sub['status'])}" + (f" by {sub['reviewed_by']}" if sub["reviewed_by"] else "")
            + (f": {sub['reason']}" if sub["reason"] else "."))
    st.stop()
if not curator:
    st.caption("Sign in as a curator to approve or reject.")
    st.stop()

# --- decide ------------------------------------------------------------------------------------------------------
st.subheader("Decision")
with st.form(f"decide_{sub_id}"):
    reason = st.text_input("Reason (recorded with the decision)", key=f"review_reason_{sub_id}",
                           placeholder="e.g. numbers checked against Table 3 of the paper")
    checked = st.checkbox(f"I have checked the changes of submission #{sub_id} above", key=f"review_checked_{sub_id}")
    c = st.columns(2)
    approve = c[0].form_submit_button(f"Approve #{sub_id}", type="primary", disabled=bool(blockers))
    reject = c[1].form_submit_button(f"Reject #{sub_id}")
if approve or reject:
    verb = "approve" if approve else "reject"
    done = "approved" if approve else "rejected"
    if not reason.strip():
        st.error(f"To {verb} a submission, give a reason: it is recorded with the decision.")
    elif not checked:
        st.error(f"Tick that you have checked the changes of submission #{sub_id} before you {verb} it.")
    else:
        try:
            if approve:
                ev.approve(eng, int(sub_id), by=curator, reason=reason.strip())
            else:
                ev.reject(eng, int(sub_id), reason.strip(), by=curator)
        except ev.EvidenceError as exc:  # the four-eyes refusal, or a submission decided meanwhile
            st.error(f"Not {done}: {exc}")
        else:
            st.session_state["review_flash"] = (
                f"Submission #{sub_id} {done} by {curator}: “{reason.strip()}”. "
                + ("It counts in analyses now." if approve else "It stays visible with the reason.")
                + " Choose the next submission yourself: nothing is selected automatically.")
            st.session_state.pop("review_sub", None)
            st.rerun()
