"""Replication engine: compression, attacks, rigour checks, jobs (resume, Dask equality)."""

import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
import torch

from evidence import JobCell, ResultFilter, get_engine, init_database, query_results
from replicate import (
    AttackSpec, Pruner, Quantizer, SpecError, TrainConfig, accuracy, build_model, catalogue, distinct_weight_values, evaluate_attack, fit,
    load_spec, load_split, measured_sparsity, run_job,
)
from replicate.attacks import input_gradient_stats
from replicate.checks import LARGE_EPS

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CREV_CACHE", str(tmp_path_factory.getbasetemp() / "model-cache"))


@pytest.fixture(scope="module")
def digits():
    return load_split("digits", seed=0, n_test=300)


@pytest.fixture(scope="module")
def trained(digits):
    torch.set_num_threads(2)
    model = build_model("mlp", digits.shape, digits.n_classes)
    fit(model, digits, TrainConfig(epochs=15, lr=3e-3), seed=0)
    return model


def test_split_is_stratified_seeded_and_recorded(digits):
    again = load_split("digits", seed=0, n_test=300)
    assert torch.equal(digits.y_test, again.y_test) and digits.test_hash == again.test_hash
    counts = torch.bincount(digits.y_test)
    assert counts.max() - counts.min() <= 2  # stratified
    assert digits.provenance()["n_test"] == 300 and 0.0 <= float(digits.x_train.max()) <= 1.0
    assert load_split("digits", seed=1, n_test=300).test_hash != digits.test_hash


@pytest.mark.slow
def test_trained_model_is_accurate(trained, digits):
    assert accuracy(trained, digits.x_test, digits.y_test) > 90


@pytest.mark.slow
@pytest.mark.parametrize("method", ["global_l1", "layer_l1", "random", "ln_structured"])
def test_pruning_reaches_requested_sparsity(trained, digits, method):
    comp = Pruner(method=method, amount=0.6).compress(trained, digits, seed=0)
    if method == "ln_structured":
        # whole output units of all but the classifier layer: the measured share is recorded
        assert 0.3 < comp.info.sparsity < 0.6
    else:
        assert comp.info.sparsity == pytest.approx(0.6, abs=0.01)
    assert comp.info.sparsity == measured_sparsity(comp.model) and comp.info.target_sparsity == 0.6


@pytest.mark.slow
def test_iterative_pruning_compounds_to_target(trained, digits):
    comp = Pruner(method="global_l1", amount=0.9, iterations=3, finetune="standard", finetune_epochs=1).compress(trained, digits, seed=0)
    assert comp.info.sparsity == pytest.approx(0.9, abs=0.01)
    assert "iterative (3 steps)" in comp.info.method


@pytest.mark.slow
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_per_tensor_k_bit_quantization_has_at_most_2k_values_per_tensor(trained, digits, bits):
    comp = Quantizer(bits=bits, granularity="per_tensor").compress(trained, digits, seed=0)
    counts = distinct_weight_values(comp.model)
    assert counts and max(counts) <= 2 ** bits
    assert comp.info.family == ("binarization" if bits == 1 else "quantization")


@pytest.mark.slow
def test_quantized_model_keeps_gradients_through_ste(trained, digits):
    comp = Quantizer(bits=2, act_bits=4).compress(trained, digits, seed=0)
    g = input_gradient_stats(comp.attacked, digits.x_test[:64], digits.y_test[:64])
    assert g["grad_mean_abs"] > 0


@pytest.mark.slow
def test_pgd_at_large_epsilon_is_at_chance(trained, digits):
    acc = 100 * evaluate_attack(trained, AttackSpec("pgd", LARGE_EPS, 10), digits.x_test, digits.y_test, n_classes=10).float().mean()
    assert acc <= 100 / 10 + 5
    small = 100 * evaluate_attack(trained, AttackSpec("pgd", 0.02, 10), digits.x_test, digits.y_test, n_classes=10).float().mean()
    assert small > acc


def test_spec_errors_name_the_field(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('id = "x"\nmodel = "vgg"\n[claim]\nquestion_id = "q"\nstudy = "s"\ndirection = "up"\n[[compression]]\nkind = "prune"\nlevels = [1.5]\n[[attacks]]\nname = "pgd"\neps = [2]\n')
    with pytest.raises(SpecError) as err:
        load_spec(p)
    msg = str(err.value)
    assert "field model" in msg and "field compression.0.levels" in msg and "sparsity 1.5 is outside [0, 1)" in msg and "field attacks.0.eps" in msg


def test_catalogue_covers_the_seed_contradictions():
    c = catalogue()
    assert set(c) >= {"pruning_without_at", "sparsity_level", "quantization", "transfer", "pruning_with_at"}
    assert c["pruning_without_at"].claim.compare == ["jordao_2021_pruning", "vora_2023_benchmark"]
    q = c["pruning_without_at"].quick()
    assert q.quick_mode and len(q.seeds) == 1 and q.train.epochs <= 3


TINY = """
id = "tiny"
model = "mlp"
seeds = [0, 1]
checks = false
[claim]
question_id = "pruning_without_at"
study = "wang_2018_prunedrobustness"
direction = "down"
[data]
name = "digits"
n_test = 120
[train]
epochs = 3
lr = 0.003
[[compression]]
kind = "prune"
levels = [0.5, 0.8, 0.9]
[[attacks]]
name = "pgd"
eps = [0.05, 0.1]
steps = 5
"""


def _count(engine, study="crev_replications"):
    return len(query_results(engine, ResultFilter(status="all", study_ids=[study], include_quick=True)))


@pytest.mark.slow
def test_killed_job_resumes_without_duplicates(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    engine, _ = init_database(url)
    shipped = _count(engine)  # the replication release shipped with the package
    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text(TINY)
    env = {**os.environ, "CREV_DB": url, "CREV_CACHE": os.environ["CREV_CACHE"]}
    proc = subprocess.Popen([sys.executable, "-m", "crev_cli", "replicate", "run", str(spec_path), "--json"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    n = 0
    while time.time() < deadline:
        with engine.connect() as c:
            n = c.execute(sa.select(sa.func.count()).select_from(JobCell)).scalar_one()
        if n >= 2 or proc.poll() is not None:
            break
        time.sleep(0.05)
    running = proc.poll() is None
    if running:
        os.killpg(proc.pid, signal.SIGSTOP)  # frozen at once: what is stored now is what the kill leaves
    with engine.connect() as c:
        stored = c.execute(sa.select(sa.func.count()).select_from(JobCell)).scalar_one()
    if running:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert running, f"the job exited (status {proc.returncode}) before it could be killed"
    assert n >= 2, "the job should have finished some cells before the kill"
    assert stored < 8, "the kill should land mid-run (6 cells were left when it was sent)"
    assert _count(engine) == shipped  # killed mid-run: no result was written
    out = run_job(engine, load_spec(spec_path), show_progress=False)
    assert out.status == "done" and out.cells_skipped >= 2 and out.cells_skipped + out.cells_run == 8
    df = query_results(engine, ResultFilter(status="all", study_ids=["crev_replications"]))
    assert len(df) - shipped == 2 * 3 * 2 == out.n_results
    assert df["fingerprint"].is_unique
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(JobCell)).scalar_one() == 8


@pytest.mark.slow
def test_local_cluster_gives_the_same_numbers_as_local(tmp_path, monkeypatch):
    spec = load_spec(__import__("tomllib").loads(TINY))
    spec = spec.model_copy(update={"id": "tiny-dask"})
    ea = get_engine(f"sqlite:///{tmp_path / 'a.db'}")
    eb = get_engine(f"sqlite:///{tmp_path / 'b.db'}")
    for e in (ea, eb):
        init_database(str(e.url))
    monkeypatch.setenv("CREV_CACHE", str(tmp_path / "cache-local"))
    a = run_job(ea, spec, show_progress=False, threads=1)  # the same thread count as each Dask worker
    monkeypatch.setenv("CREV_CACHE", str(tmp_path / "cache-dask"))  # nothing shared: the workers train their own dense models
    b = run_job(eb, spec, executor="dask", workers=2, show_progress=False)
    from replicate.jobs.store import get_job

    def weights(engine, job_id):
        return sorted(ln.split(" model seed ", 1)[1].split(":")[0] + ln.split("(weights ", 1)[1]
                      for ln in get_job(engine, job_id).log.splitlines() if " model seed " in ln)

    assert weights(ea, a.job_id) == weights(eb, b.job_id) and weights(eb, b.job_id)  # trained on the workers, same weights
    cols = ["source_location", "clean_acc_dense", "robust_acc_dense", "clean_acc_compressed", "robust_acc_compressed", "sparsity"]
    da = query_results(ea, ResultFilter(status="all", study_ids=["crev_replications"]))[cols].sort_values("source_location").reset_index(drop=True)
    db = query_results(eb, ResultFilter(status="all", study_ids=["crev_replications"]))[cols].sort_values("source_location").reset_index(drop=True)
    assert a.n_results == b.n_results == 12
    assert da.equals(db)
    assert [v.verdict for v in a.verdicts] == [v.verdict for v in b.verdicts]


@pytest.mark.slow
def test_local_cluster_at_two_threads_gives_the_same_numbers_and_trains_each_model_once(tmp_path, monkeypatch):
    spec = load_spec(__import__("tomllib").loads(TINY)).model_copy(update={"id": "tiny-dask-2"})
    ea, eb = get_engine(f"sqlite:///{tmp_path / 'a.db'}"), get_engine(f"sqlite:///{tmp_path / 'b.db'}")
    for e in (ea, eb):
        init_database(str(e.url))
    monkeypatch.setenv("CREV_CACHE", str(tmp_path / "cache-local"))
    a = run_job(ea, spec, show_progress=False, threads=2)
    monkeypatch.setenv("CREV_CACHE", str(tmp_path / "cache-dask"))
    b = run_job(eb, spec, executor="dask", workers=2, threads=2, show_progress=False)
    from replicate.jobs.store import get_job

    def models(engine, job_id):
        return sorted(ln.split(" model seed ", 1)[1].split(":")[0] + ln.split("(weights ", 1)[1]
                      for ln in get_job(engine, job_id).log.splitlines() if " model seed " in ln)

    assert len(models(eb, b.job_id)) == len(spec.seeds) == 2  # one dense model per seed, trained once for all its cells
    assert models(ea, a.job_id) == models(eb, b.job_id)  # at 2 threads the workers' weights are the local ones, bit for bit
    cols = ["source_location", "clean_acc_dense", "robust_acc_dense", "clean_acc_compressed", "robust_acc_compressed", "sparsity"]
    da = query_results(ea, ResultFilter(status="all", study_ids=["crev_replications"]))[cols].sort_values(cols).reset_index(drop=True)
    db = query_results(eb, ResultFilter(status="all", study_ids=["crev_replications"]))[cols].sort_values(cols).reset_index(drop=True)
    assert a.n_results == b.n_results == 12
    assert da.equals(db), da.compare(db) if da.shape == db.shape else (da.shape, db.shape)
