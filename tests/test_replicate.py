"""Replication engine: compression, attacks, rigour checks, jobs (resume, Dask equality)."""

import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
import torch
from torch import nn

from evidence import JobCell, ResultFilter, get_engine, init_database, query_results
from replicate import (
    CHECKS, AttackSpec, Measurements, Pruner, Quantizer, Int8PTQ, SpecError, TrainConfig, accuracy, build_model, catalogue,
    distinct_weight_values, evaluate_attack, fit, load_spec, load_split, measured_sparsity, run_checks, run_job,
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


def test_trained_model_is_accurate(trained, digits):
    assert accuracy(trained, digits.x_test, digits.y_test) > 90


@pytest.mark.parametrize("method", ["global_l1", "layer_l1", "random", "ln_structured"])
def test_pruning_reaches_requested_sparsity(trained, digits, method):
    comp = Pruner(method=method, amount=0.6).compress(trained, digits, seed=0)
    if method == "ln_structured":
        # whole output units of all but the classifier layer: the measured share is recorded
        assert 0.3 < comp.info["sparsity"] < 0.6
    else:
        assert comp.info["sparsity"] == pytest.approx(0.6, abs=0.01)
    assert comp.info["sparsity"] == measured_sparsity(comp.model) and comp.info["target_sparsity"] == 0.6


def test_iterative_pruning_compounds_to_target(trained, digits):
    comp = Pruner(method="global_l1", amount=0.9, iterations=3, finetune="standard", finetune_epochs=1).compress(trained, digits, seed=0)
    assert comp.info["sparsity"] == pytest.approx(0.9, abs=0.01)
    assert "iterative (3 steps)" in comp.info["method"]


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_k_bit_quantization_has_at_most_2k_values_per_tensor(trained, digits, bits):
    comp = Quantizer(bits=bits).compress(trained, digits, seed=0)
    counts = distinct_weight_values(comp.model)
    assert counts and max(counts) <= 2 ** bits
    assert comp.info["family"] == ("binarization" if bits == 1 else "quantization")


def test_quantized_model_keeps_gradients_through_ste(trained, digits):
    comp = Quantizer(bits=2, act_bits=4).compress(trained, digits, seed=0)
    g = input_gradient_stats(comp.attacked, digits.x_test[:64], digits.y_test[:64])
    assert g["grad_mean_abs"] > 0


def test_pgd_at_large_epsilon_is_at_chance(trained, digits):
    acc = evaluate_attack(trained, AttackSpec("pgd", LARGE_EPS, 10), digits.x_test, digits.y_test, n_classes=10)
    assert acc <= 100 / 10 + 5
    small = evaluate_attack(trained, AttackSpec("pgd", 0.02, 10), digits.x_test, digits.y_test, n_classes=10)
    assert small > acc


def test_int8_model_is_attacked_through_its_twin(trained, digits):
    comp = Int8PTQ().compress(trained, digits, seed=0)
    assert comp.info["non_differentiable"] and comp.info["twin_agreement"] > 0.9
    assert "twin" in comp.info["attacked_model"]
    with pytest.raises(RuntimeError):  # the converted model has no gradients for a white-box attack
        x = digits.x_test[:4].clone().requires_grad_(True)
        comp.model(x).sum().backward()
    acc = evaluate_attack(comp.model, AttackSpec("pgd", 0.2, 10), digits.x_test, digits.y_test, n_classes=10, attacked=comp.attacked)
    assert acc < accuracy(comp.model, digits.x_test, digits.y_test) - 20


class RoundsInput(nn.Module):
    """Masks gradients: rounds its input to 0/1 before a trained model (zero gradient almost everywhere)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x))


def _measure(model, digits, dense=None):
    x, y = digits.x_test, digits.y_test
    m = Measurements(n=len(y), n_classes=10, clean=accuracy(model, x, y))
    for spec in (AttackSpec("pgd", 0.1, 10), AttackSpec("pgd", 0.2, 10), AttackSpec("pgd", LARGE_EPS, 10), AttackSpec("fgsm", 0.2),
                 AttackSpec("pgd", 0.2, 20), AttackSpec("square", 0.2, queries=300)):
        m.acc[(spec.name, spec.eps, spec.steps)] = evaluate_attack(model, spec, x, y, n_classes=10)
    if dense is not None:
        m.acc[("transfer", 0.2, 10)] = evaluate_attack(model, AttackSpec("transfer", 0.2, 10), x, y, n_classes=10, source=dense)
    g = input_gradient_stats(model, x[:128], y[:128])
    m.grad_mean_abs, m.grad_zero_fraction = g["grad_mean_abs"], g["grad_zero_fraction"]
    return m


def test_checks_stay_quiet_on_a_normal_model(trained, digits):
    outcomes, masking = run_checks(_measure(trained, digits, dense=trained))
    assert not masking, [o for o in outcomes if not o["passed"]]
    assert {o["name"] for o in outcomes} >= {"chance_at_large_epsilon", "iterative_beats_single_step", "more_steps_do_not_raise_accuracy",
                                              "query_attack_not_better_than_white_box", "transfer_not_better_than_white_box",
                                              "accuracy_does_not_rise_with_epsilon", "no_vanishing_input_gradients"}


def test_checks_fire_on_a_gradient_masking_model(trained, digits):
    outcomes, masking = run_checks(_measure(RoundsInput(trained), digits, dense=trained))
    failed = {o["name"] for o in outcomes if not o["passed"]}
    assert masking
    assert {"chance_at_large_epsilon", "no_vanishing_input_gradients", "query_attack_not_better_than_white_box",
            "transfer_not_better_than_white_box"} <= failed


def _violating(check_name: str) -> Measurements:
    """Measurements that break exactly the named check (every check has one)."""
    m = Measurements(n=500, n_classes=10, clean=95.0, grad_mean_abs=1e-3, grad_zero_fraction=0.0)
    base = {("pgd", 0.1, 10): 40.0, ("pgd", 0.2, 10): 20.0, (("pgd", LARGE_EPS, 10)): 5.0, ("fgsm", 0.2, 10): 30.0, ("pgd", 0.2, 20): 19.0,
            ("square", 0.2, 10): 35.0, ("transfer", 0.2, 10): 50.0}
    m.acc.update(base)
    if check_name == "chance_at_large_epsilon":
        m.acc[("pgd", LARGE_EPS, 10)] = 60.0
        m.acc[("pgd", 0.2, 10)] = 60.0
        m.acc[("pgd", 0.1, 10)] = 60.0
        m.acc[("pgd", 0.2, 20)] = 60.0
    elif check_name == "iterative_beats_single_step":
        m.acc[("pgd", 0.2, 10)] = m.acc[("pgd", 0.2, 20)] = 29.0
        m.acc[("fgsm", 0.2, 10)] = 10.0
    elif check_name == "more_steps_do_not_raise_accuracy":
        m.acc[("pgd", 0.2, 20)] = 35.0
    elif check_name == "query_attack_not_better_than_white_box":
        m.acc[("square", 0.2, 10)] = 5.0
    elif check_name == "transfer_not_better_than_white_box":
        m.acc[("transfer", 0.2, 10)] = 5.0
    elif check_name == "score_attack_not_above_transfer_non_differentiable":
        m.non_differentiable = True
        m.acc[("square", 0.2, 10)] = 91.0
        m.acc[("transfer", 0.2, 10)] = 20.0
    elif check_name == "accuracy_does_not_rise_with_epsilon":
        m.acc[("pgd", 0.1, 10)] = 10.0
        m.acc[("pgd", 0.2, 10)] = m.acc[("pgd", 0.2, 20)] = 40.0
        m.acc[("fgsm", 0.2, 10)] = 45.0
    elif check_name == "no_vanishing_input_gradients":
        m.grad_mean_abs, m.grad_zero_fraction = 0.0, 1.0
    return m


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
def test_each_check_fires_on_its_violation_and_is_quiet_otherwise(check):
    out = check.evaluate(_violating(check.name))
    assert out is not None and not out.passed, out
    quiet = _violating("none")
    quiet.non_differentiable = check.name == "score_attack_not_above_transfer_non_differentiable"
    if quiet.non_differentiable:
        quiet.acc[("square", 0.2, 10)] = 21.0
        quiet.acc[("transfer", 0.2, 10)] = 20.0
    out = check.evaluate(quiet)
    assert out is not None and out.passed, out


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


def test_killed_job_resumes_without_duplicates(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    engine, _ = init_database(url)
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
    assert _count(engine) == 0  # killed mid-run: no result was written
    out = run_job(engine, load_spec(spec_path), show_progress=False)
    assert out.status == "done" and out.cells_skipped >= 2 and out.cells_skipped + out.cells_run == 8
    df = query_results(engine, ResultFilter(status="all", study_ids=["crev_replications"]))
    assert len(df) == 2 * 3 * 2 == out.n_results
    assert df["fingerprint"].is_unique
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(JobCell)).scalar_one() == 8


def test_local_cluster_gives_the_same_numbers_as_local(tmp_path, monkeypatch):
    spec = load_spec(__import__("tomllib").loads(TINY))
    spec = spec.model_copy(update={"id": "tiny-dask"})
    ea = get_engine(f"sqlite:///{tmp_path / 'a.db'}")
    eb = get_engine(f"sqlite:///{tmp_path / 'b.db'}")
    for e in (ea, eb):
        init_database(str(e.url))
    a = run_job(ea, spec, show_progress=False, threads=1)  # the same thread count as each Dask worker
    b = run_job(eb, spec, executor="dask", workers=2, show_progress=False)
    cols = ["source_location", "clean_acc_dense", "robust_acc_dense", "clean_acc_compressed", "robust_acc_compressed", "sparsity"]
    da = query_results(ea, ResultFilter(status="all", study_ids=["crev_replications"]))[cols].sort_values("source_location").reset_index(drop=True)
    db = query_results(eb, ResultFilter(status="all", study_ids=["crev_replications"]))[cols].sort_values("source_location").reset_index(drop=True)
    assert a.n_results == b.n_results == 12
    assert da.equals(db)
    assert [v["verdict"] for v in a.verdicts] == [v["verdict"] for v in b.verdicts]
