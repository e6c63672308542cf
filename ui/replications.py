"""Replications: pick a catalogue claim or build a job, launch it, watch it, cancel it, compare."""

import streamlit as st

import replicate as rp
from ui import state

st.title("Replications")
st.caption("Controlled re-runs of the literature's claims (PyTorch pruning and quantization, torchattacks attacks, rigour checks). "
           "Results enter the database as replication evidence, pending review.")
cat = rp.catalogue()
cid = st.selectbox("Claim", list(cat), format_func=lambda k: f"{k}: {cat[k].title}", key="rep_claim")
spec = cat[cid]
st.markdown(f"Checks **{spec.claim.study}** ({spec.claim.direction}: “{spec.claim.statement}”); also speaks to {', '.join(spec.claim.compare)}.")
with st.expander("Build the job"):
    c = st.columns(3)
    dataset = c[0].selectbox("Dataset", ["(as in the spec: " + spec.data.name + ")", "digits", "mnist5k"], key="rep_dataset")
    model = c[1].selectbox("Model", ["lenet", "mlp", "resnet"], index=["lenet", "mlp", "resnet"].index(spec.model), key="rep_model")
    seeds = c[2].number_input("Seeds", 1, 5, len(spec.seeds), key="rep_seeds")
    quick = st.checkbox("Quick run (reduced grid, < 1 minute; never counts toward a verdict)", value=True, key="rep_quick")
    update = {"model": model, "seeds": list(range(int(seeds)))}
    if not dataset.startswith("("):
        update["data"] = spec.data.model_copy(update={"name": dataset, "n_test": None if dataset == "digits" else spec.data.n_test})
    job_spec = spec.model_copy(update=update)
    job_spec = job_spec.quick() if quick else job_spec
    st.json(job_spec.model_dump(mode="json"), expanded=False)
if st.button("Launch", type="primary", key="rep_launch"):
    jid = rp.launch_background(state.engine(), job_spec, by=state.user_name())
    st.session_state["rep_job"] = jid
    st.success(f"Job {jid} started.")

jobs = rp.job_table(state.engine())
if jobs.empty:
    st.info("No job has run yet. Pick a claim and press Launch.")
    st.stop()


@st.fragment(run_every=2.0)
def progress():
    j = rp.job_table(state.engine())
    st.dataframe(j[["id", "claim_id", "status", "stage", "cells_done", "cells_total", "quick", "created_by", "created_at"]], hide_index=True,
                 width="stretch")
    running = j[j["status"] == "running"]
    for _, r in running.iterrows():
        st.progress(float(r["progress"] or 0.0), text=f"job {r['id']}: {r['stage']} ({r['cells_done']}/{r['cells_total']} cells)")
        if st.button(f"Cancel job {r['id']}", key=f"cancel_{r['id']}"):
            rp.request_cancel(state.engine(), int(r["id"]))
            st.warning(f"Job {r['id']}: cancellation requested.")


progress()
jid = st.selectbox("Job", jobs["id"].tolist(), index=0, key="rep_view")
job = rp.get_job(state.engine(), int(jid))
st.markdown(f"Job {job.id} — **{job.status}**" + (f": {job.error}" if job.error else ""))
verdicts = rp.job_verdicts(state.engine(), int(jid))
if verdicts:
    st.subheader("Compared with the claims")
    st.dataframe([v.summary_row() for v in verdicts], hide_index=True, width="stretch")
    st.dataframe(verdicts[0].to_frame(), hide_index=True, width="stretch")
res = rp.job_results(state.engine(), int(jid))
if len(res):
    st.dataframe(res[["compression_level_text", "attack", "attack_text", "threat_model", "steps", "attack_queries", "epsilon", "clean_acc_dense", "robust_acc_dense", "clean_acc_compressed",
                      "robust_acc_compressed", "gradient_masking", "review_status", "quick"]], hide_index=True, width="stretch")
    st.caption("These rows appear in Explore once approved (set the sidebar's review status to 'pending' or 'all' to see them now).")
with st.expander("Log"):
    st.code(job.log or "(empty)")
