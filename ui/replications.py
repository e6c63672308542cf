"""Replications: pick a catalogue claim or build a job, launch it, watch it, cancel it, compare."""

import pandas as pd
import streamlit as st

import evidence as ev
import replicate as rp
from ui import identity, labels, state

st.title("Replications")
st.caption("Controlled re-runs of the literature's claims (PyTorch pruning and quantization, torchattacks attacks, rigour checks). "
           "Results enter the database as replication evidence, pending review.")
cat = rp.catalogue()
# The chosen claim outlives the page: a widget's own state is dropped when another page runs, so the
# choice is also kept under a plain session key and restored (the selector reset to the first claim).
_ids = list(cat)
_kept = st.session_state.get("rep_claim_kept")
if "rep_claim" not in st.session_state and _kept in cat:
    st.session_state["rep_claim"] = _kept
cid = st.selectbox("Claim", _ids, format_func=lambda k: f"{k}: {cat[k].title}", key="rep_claim")
st.session_state["rep_claim_kept"] = cid
spec = cat[cid]
st.markdown(f"Checks **{spec.claim.study}** ({labels.label(str(spec.claim.direction))}): “{spec.claim.statement}”"
            + (f"; also speaks to {', '.join(spec.claim.compare)}." if spec.claim.compare else "."))
quick = st.toggle("Quick run: the reduced grid (3 epochs, 1,000/200 images, the extreme levels, one seed, two epsilons) — about a "
                  "minute on the small datasets (bench/replicate.py); quick results never count toward a verdict. Off: the full grid "
                  "(minutes on digits, longer on larger data).", value=True, key="rep_quick")
with st.expander("Build the job"):
    c = st.columns(3)
    dataset = c[0].selectbox("Dataset", ["(as in the spec: " + spec.data.name + ")", "digits", "mnist5k"], key="rep_dataset")
    models = [m.value for m in type(spec.model)]
    model = c[1].selectbox("Model", models, index=models.index(spec.model.value), key="rep_model")
    if quick:  # a quick run uses the spec's first seed only: the box says so instead of a count it ignores
        c[2].number_input("Seeds (number of)", 1, 5, 1, key="rep_seeds_quick", disabled=True,
                          help="A quick run uses one seed; turn Quick run off to choose how many.")
        seeds = len(spec.seeds)
    else:
        seeds = c[2].number_input("Seeds (number of)", 1, 5, len(spec.seeds), key="rep_seeds")
    update = {"model": type(spec.model)(model), "seeds": list(range(int(seeds)))}
    if not dataset.startswith("("):
        update["data"] = spec.data.model_copy(update={"name": dataset, "n_test": None if dataset == "digits" else spec.data.n_test})
    job_spec = spec.model_copy(update=update)
    job_spec = job_spec.quick() if quick else job_spec
    d = job_spec.model_dump(mode="json")
    st.dataframe(pd.DataFrame([
        ("data", f"{d['data']['name']} (train {d['data'].get('n_train') or 'all'}, test {d['data'].get('n_test') or 'the split'} images)"),
        ("model", str(d["model"])),
        ("training", f"{d['train']['epochs']} epochs" + (", adversarial" if d["train"].get("adversarial") else "")),
        *[(f"compression {i + 1}", f"{c['kind']} at {', '.join(f'{v:g}' for v in c['levels']) or 'its default'}")
          for i, c in enumerate(d["compression"])],
        *[(f"attack {i + 1}", f"{a['name']}, eps {', '.join(labels.epsilon(e) for e in a['eps'])}, {a['steps']} steps")
          for i, a in enumerate(d.get("attacks") or [])],
        ("seeds (as used)", f"{len(d['seeds'])}: " + ", ".join(f"seed {x}" for x in d["seeds"])),
    ], columns=["part", "setting"]), hide_index=True, width="stretch")
    with st.expander("The full spec (JSON)"):
        st.json(d, expanded=False)
    from replicate.evaluate.planning import detectable_drop, release_spread  # what this n and these seeds can detect (issue 26)

    try:
        spread = release_spread(cid)
    except LookupError:
        st.caption("What this run can detect: the shipped replication release has no rows of this claim to measure its spread from.")
    else:
        n_img = d["data"].get("n_test") or (450 if d["data"]["name"] == "digits" else None)  # digits: 25 % of 1,797
        by_img, by_seed = detectable_drop(n_img or 1, len(d["seeds"]), spread.discordant, spread.seed_sd)
        st.caption(f"What this run can detect (alpha 0.05, power 0.8; the release measured {100 * spread.discordant:.1f}% discordant images and a "
                   f"seed SD of {100 * spread.seed_sd:.2f} pp): "
                   + (f"{n_img} test images detect a drop of {100 * by_img:.1f} pp per seed (exact McNemar); " if n_img and by_img == by_img else "")
                   + f"{len(d['seeds'])} seed(s) "
                   + (f"detect a mean drop of {100 * by_seed:.1f} pp (t-test)" if by_seed == by_seed else "cannot test a mean drop across seeds (a t-test needs 2 or more)")
                   + f"; smaller drops cannot be told from noise. `crev replicate plan {cid} --detect PP` gives the n and seeds for a target.")
if st.button("Launch", type="primary", key="rep_launch"):
    if not state.user_name():
        st.error("Sign in or give your name in the sidebar ('Sign in') first: jobs are recorded under it.")
    else:
        try:
            jid = rp.launch_background(state.engine(), job_spec, by=state.user_name())
        except (ev.EvidenceError, rp.ReplicateError) as exc:  # the quota refusal (NotAuthorized) or a spec the machine cannot run
            st.error(f"Not launched: {exc}")
        else:
            st.session_state["rep_view"] = jid  # the selector below follows the new job
            st.success(f"Job {jid} started.")

jobs = rp.job_table(state.engine())
if jobs.empty:
    st.info("No job has run yet. Pick a claim and press Launch.")
    st.stop()


@st.fragment(run_every=2.0)
def progress():
    j = rp.job_table(state.engine())
    st.dataframe(j[["id", "claim_id", "status", "stage", "cells_done", "cells_total", "quick", "created_by", "created_at", "heartbeat_at", "stale"]]
                 .rename(columns={"heartbeat_at": "last heartbeat (UTC)", "stale": "stale (process gone)"}), hide_index=True, width="stretch")
    st.caption(f"A running job's process writes a heartbeat every {rp.jobs.HEARTBEAT_EVERY.total_seconds():g} s, through hours of training. "
               f"No heartbeat for {rp.jobs.HEARTBEAT_STALE_AFTER.total_seconds() / 60:g} minutes means its process is gone: the job is "
               f"stale, and is marked failed when the next job is launched. A job from before heartbeats (none recorded) is stale "
               f"{rp.jobs.STALE_AFTER.total_seconds() / 60:g} minutes after its start or its last finished cell.")
    running = j[j["status"] == "running"]
    for _, r in running.iterrows():
        if r["stale"]:
            st.warning(f"Job {r['id']} is stale: its process is gone (no heartbeat). Cancel marks it cancelled at once.")
        st.progress(float(r["progress"] or 0.0), text=f"job {r['id']}: {r['stage']} ({r['cells_done']}/{r['cells_total']} cells)")
        if st.button(f"Cancel job {r['id']}", key=f"cancel_{r['id']}"):
            me = identity.current()
            if me is None:
                st.error(f"Job {r['id']}: sign in first (sidebar): only its launcher or a curator can cancel it.")
            else:
                try:
                    rp.jobs.cancel_job(state.engine(), int(r["id"]), by=me.name, curator=me.curator)
                except (ev.EvidenceError, LookupError, ValueError) as exc:  # NotAuthorized (not the launcher), or the job ended meanwhile
                    st.error(f"Not cancelled: {exc}")
                else:
                    st.warning(f"Job {r['id']}: cancellation requested.")


progress()
jid = st.selectbox("Job", jobs["id"].tolist(), index=0, key="rep_view")
ACTIVE = {str(rp.JobStatus.queued), str(rp.JobStatus.running)}


def job_view(job_id: int, was_active: bool) -> None:
    """The chosen job's headline, verdict and rows; while the job runs this part re-runs every 2 s, so
    the headline turns to done and the verdict appears without leaving the page."""
    job = rp.get_job(state.engine(), job_id)
    st.markdown(f"Job {job.id} — **{job.status}**" + (f": {job.error}" if job.error else ""))
    verdicts = rp.job_verdicts(state.engine(), job_id)
    if verdicts:
        st.subheader("Compared with the claims")
        st.dataframe([v.summary_row() for v in verdicts], hide_index=True, width="stretch")
        st.dataframe(verdicts[0].to_frame(), hide_index=True, width="stretch")
    res = rp.job_results(state.engine(), job_id)
    if len(res):
        st.dataframe(res[["compression_level_text", "attack", "attack_text", "threat_model", "steps", "attack_queries", "epsilon", "clean_acc_dense", "robust_acc_dense", "clean_acc_compressed",
                          "robust_acc_compressed", "gradient_masking", "review_status", "quick"]], hide_index=True, width="stretch")
        st.caption("These rows appear in Explore once approved (set the sidebar's review status to 'pending' or 'all' to see them now).")
    if was_active and str(job.status) not in ACTIVE:
        st.rerun()  # the job ended: redraw the whole page once (the job table, and no more polling)


_active = str(rp.get_job(state.engine(), int(jid)).status) in ACTIVE
st.fragment(run_every=2.0 if _active else None)(job_view)(int(jid), _active)
_me = identity.current()
if _me is not None and _me.curator:
    with st.expander("Log (curators only: it names server paths and the process id)"):
        st.code(rp.get_job(state.engine(), int(jid)).log or "(empty)")
else:
    st.caption("The job's log (server paths, process id) is shown to curators only.")
