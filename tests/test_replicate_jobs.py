"""Replication jobs end to end (issues 11-13): exact counts through evidence.submit, int8 rows as
transfer, zero share on quantized rows, no duplicate rows on a rerun, stale jobs, typed verdicts."""

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from evidence import Job, ResultFilter, init_database, query_results
from evidence.models import utcnow
from replicate import JobStatus, job_verdicts, load_spec, run_job
from replicate.jobs.store import create_job, is_stale, reap_stale_jobs, request_cancel

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SPEC = {
    "id": "counts", "model": "mlp", "seeds": [0, 1], "checks": False,
    "claim": {"question_id": "pruning_without_at", "study": "wang_2018_prunedrobustness", "direction": "down"},
    "data": {"name": "digits", "n_test": 100}, "train": {"epochs": 2, "lr": 0.003},
    "compression": [{"kind": "prune", "levels": [0.8]}, {"kind": "quantize", "levels": [2]}, {"kind": "int8"}],
    "attacks": [{"name": "pgd", "eps": [0.1], "steps": 5}, {"name": "square", "eps": [0.1], "queries": 50}],
}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CREV_CACHE", str(tmp_path_factory.getbasetemp() / "model-cache-jobs"))


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    import os

    os.environ["CREV_CACHE"] = str(tmp_path_factory.getbasetemp() / "model-cache-jobs")
    engine, _ = init_database(f"sqlite:///{tmp_path_factory.mktemp('jobs') / 'j.db'}")
    spec = load_spec(SPEC)
    first = run_job(engine, spec, show_progress=False)
    again = run_job(engine, spec, show_progress=False)
    # Only the rows these jobs wrote: the shipped replication release (loaded on first start) carries
    # its release name, job output carries none.
    df = query_results(engine, ResultFilter(status="all", study_ids=["crev_replications"], releases=[""], include_quick=True))
    return engine, first, again, df


@pytest.mark.slow
def test_rows_store_counts_and_exact_percentages(ran):
    _, first, _, df = ran
    assert first.status == JobStatus.done and len(df) == first.n_results == 2 * 3 * 2
    for r in df.itertuples():
        assert r.robust_acc_compressed == r.n_robust_correct_compressed / r.n_test * 100  # exact, not a float32 mean
        assert r.clean_acc_dense == r.n_clean_correct_dense / r.n_test * 100
        assert r.n_robust_correct_dense - r.n_robust_correct_compressed == r.n_robust_dense_only - r.n_robust_compressed_only


@pytest.mark.slow
def test_int8_rows_are_transfer_and_square_rows_carry_their_queries(ran):
    df = ran[3]
    int8 = df[df["compression_level_text"] == "8-bit (int8)"]
    assert set(int8[int8["attack"] == "pgd"]["threat_model"]) == {"transfer"}
    assert all("fake-quantized twin" in t for t in int8[int8["attack"] == "pgd"]["attack_text"])
    sq = df[df["attack"] == "square"]
    assert set(sq["attack_queries"]) == {50} and set(sq["threat_model"]) == {"black_box_query"} and sq["steps"].isna().all()
    assert set(df[df["attack"] == "pgd"]["steps"]) == {5}


@pytest.mark.slow
def test_quantized_rows_record_the_measured_zero_share(ran):
    df = ran[3]
    q = df[df["compression_level_text"] == "2-bit"]
    assert len(q) and all("zero share" in n for n in q["notes"])
    shares = [json.loads(j)["zero_share_per_layer"] for j in q["replication_json"]]
    assert all(s and max(s) < 0.6 for s in shares)
    prov = json.loads(q["replication_json"].iloc[0])
    assert prov["crev"] and prov["code_version"] and prov["torchattacks"]


@pytest.mark.slow
def test_rerun_of_a_finished_spec_writes_nothing_again(ran):
    engine, first, again, df = ran
    assert again.cells_run == 0 and again.n_skipped_existing == again.n_results == first.n_results
    assert again.submission_id is None and df["fingerprint"].is_unique and len(df) == first.n_results


@pytest.mark.slow
def test_verdicts_are_typed_and_read_back_through_one_model(ran):
    engine, first, _, _ = ran
    stored = job_verdicts(engine, first.job_id)
    assert [v.model_dump() for v in stored] == [v.model_dump() for v in first.verdicts]
    assert stored[0].families and stored[0].families[0].family.value == "unstructured_pruning"


def test_a_killed_job_becomes_stale_and_cancel_clears_it(tmp_path):
    engine, _ = init_database(f"sqlite:///{tmp_path / 's.db'}")
    job = create_job(engine, load_spec(SPEC), executor="local", by="t")
    assert not is_stale(engine, job)
    later = utcnow() + timedelta(hours=2)
    assert is_stale(engine, job, now=later)
    live = request_cancel(engine, job.id)  # a live job is only asked to stop
    assert live.status == JobStatus.running and live.cancel_requested
    with engine.begin() as c:  # the process died two hours ago
        c.execute(sa.update(Job.__table__).where(Job.__table__.c.id == job.id).values(started_at=utcnow() - timedelta(hours=2),
                                                                                       created_at=utcnow() - timedelta(hours=2)))
    j = request_cancel(engine, job.id)
    assert j.status == JobStatus.cancelled and "stale" in j.log
    job2 = create_job(engine, load_spec(SPEC), executor="local", by="t")
    assert reap_stale_jobs(engine, now=utcnow() + timedelta(hours=1)) == [job2.id]
    from replicate import get_job

    assert get_job(engine, job2.id).status == JobStatus.failed and "stale" in get_job(engine, job2.id).error
