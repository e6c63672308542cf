"""Replication correctness (issue 11): quantization that is not pruning, reproducible seeds, exact
counts, honest attack labels, int8 as transfer, rigour checks that can fail, verdicts per family."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from evidence.vocab import Attack, ThreatModel
from replicate import ATTACKS, AttackName, AttackSpec, Granularity, Int8PTQ, Quantizer, TrainConfig, build_model, fit, load_split
from replicate.attacks import correct, evaluate_attack, gradient_consistency, input_gradient_stats
from replicate.checks import LARGE_EPS, Measurements, paired_less, run_checks
from replicate.train.training import seed_everything

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CREV_CACHE", str(tmp_path_factory.getbasetemp() / "model-cache-correctness"))


@pytest.fixture(scope="module")
def digits():
    return load_split("digits", seed=0, n_test=120)


def _train(split, seed, epochs=12):
    seed_everything(seed)
    m = build_model("mlp", split.shape, split.n_classes)
    fit(m, split, TrainConfig(epochs=epochs, lr=3e-3), seed=seed)
    return m


@pytest.fixture(scope="module")
def trained(digits):
    torch.set_num_threads(2)
    return _train(digits, 0)


@pytest.fixture(scope="module")
def surrogate(digits):
    return _train(digits, 1)


# ---------------------------------------------------------------------------------------- (1) quantization


@pytest.mark.slow
@pytest.mark.parametrize("qat_epochs", [0, 1])
def test_two_bit_quantization_by_default_is_not_mostly_zeros(trained, digits, qat_epochs):
    comp = Quantizer(bits=2, act_bits=4, qat_epochs=qat_epochs).compress(trained, digits, seed=0)
    assert comp.info.granularity == Granularity.per_channel
    assert len(comp.info.zero_share_per_layer) == 3
    assert max(comp.info.zero_share_per_layer) < 0.60, comp.info.zero_share_per_layer


@pytest.mark.slow
def test_per_tensor_max_scaling_option_shows_the_old_pruning_effect(trained, digits):
    comp = Quantizer(bits=2, granularity="per_tensor", rule="max").compress(trained, digits, seed=0)
    assert comp.info.granularity == Granularity.per_tensor and "per-tensor (max |w|)" in comp.info.method
    assert max(comp.info.zero_share_per_layer) > 0.60  # what the measured zero share exists to reveal


@pytest.mark.slow
def test_per_channel_quantization_has_at_most_2k_values_per_output_channel(trained, digits):
    comp = Quantizer(bits=3).compress(trained, digits, seed=0)
    for m in comp.model.modules():
        if hasattr(m, "quantized_weight"):
            w = m.quantized_weight()
            assert max(int(torch.unique(row).numel()) for row in w) <= 2 ** 3 - 1  # symmetric: 2^(k-1)-1 levels each side and 0


def test_finetune_lr_and_epochs_are_spec_fields_that_reach_the_compressor():
    from replicate.compress import compressor_for
    from replicate.jobs.spec import load_spec

    spec = load_spec({"id": "x", "claim": {"question_id": "q", "study": "s", "direction": "up"},
                      "compression": [{"kind": "quantize", "levels": [2], "finetune_epochs": 3, "finetune_lr": 1e-3},
                                      {"kind": "prune", "levels": [0.5], "finetune": "standard", "finetune_epochs": 2, "finetune_lr": 2e-3}],
                      "attacks": [{"name": "pgd", "eps": [0.1]}]})
    q = compressor_for(spec.compression[0], 2, spec.train)
    p = compressor_for(spec.compression[1], 0.5, spec.train)
    assert (q.qat_epochs, q.lr) == (3, 1e-3) and (p.finetune_epochs, p.finetune_lr) == (2, 2e-3)
    assert "at lr 0.001" in q.describe() and "at lr 0.002" in p.describe()


# ---------------------------------------------------------------------------------------- (2) reproducibility

_FRESH = """
import json, sys, torch
from replicate.jobs.cells import dense_model
from replicate.attacks import AttackSpec, evaluate_attack
from replicate.jobs.spec import load_spec
spec = load_spec(json.loads(sys.argv[1]))
from replicate.jobs.cells import split_for
split = split_for(spec)
model, rec = dense_model(spec, 0, split)
vec = evaluate_attack(model, AttackSpec("pgd", 0.1, 5), split.x_test, split.y_test, n_classes=10, seed=0)
clean = (model(split.x_test).argmax(1) == split.y_test).sum().item()
print(json.dumps({"weights": rec.weights_hash, "clean": clean, "robust": int(vec.sum())}))
"""


@pytest.mark.slow
def test_two_fresh_processes_train_identical_weights_and_accuracies(tmp_path):
    spec = {"id": "repro", "model": "mlp", "claim": {"question_id": "q", "study": "s", "direction": "up"}, "data": {"name": "digits", "n_test": 100},
            "train": {"epochs": 2}, "compression": [{"kind": "prune", "levels": [0.5]}], "attacks": [{"name": "pgd", "eps": [0.1]}]}
    outs = []
    for i in range(2):
        env = {**os.environ, "CREV_CACHE": str(tmp_path / f"cache{i}"), "PYTHONHASHSEED": str(i)}  # nothing shared between the two
        r = subprocess.run([sys.executable, "-c", _FRESH, json.dumps(spec)], env=env, capture_output=True, text=True, cwd=ROOT, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    assert outs[0] == outs[1]
    assert outs[0]["clean"] > 50


@pytest.mark.slow
def test_the_cpu_thread_count_is_part_of_a_trained_models_cache_key(tmp_path, monkeypatch):
    """On a CPU, 1 and 2 torch threads train different weights from the same seed; a model trained with
    one count must never be served from the cache for the other."""
    from replicate.train.training import train_model

    monkeypatch.setenv("CREV_CACHE", str(tmp_path))
    split = load_split("digits", seed=0, n_test=100)
    saved = torch.get_num_threads()
    try:
        keys = {}
        for n in (1, 2):
            torch.set_num_threads(n)
            _, rec = train_model(split, "lenet", TrainConfig(epochs=1, lr=2e-3, batch_size=32), 0)
            keys[n] = rec["cache_key"]
            assert rec["cache"] == "miss"  # the other count's model was not reused
    finally:
        torch.set_num_threads(saved)
    assert keys[1] != keys[2]


@pytest.mark.slow
def test_a_jobs_dense_models_do_not_depend_on_the_calling_processs_threads(tmp_path, monkeypatch):
    """run_job trains the dense models with the cells' thread count (1), whatever the caller set."""
    from evidence import init_database
    from replicate import run_job
    from replicate.jobs.spec import load_spec

    spec = load_spec({"id": "threads", "model": "lenet", "seeds": [0], "claim": {"question_id": "q", "study": "s", "direction": "up"},
                      "data": {"name": "digits", "n_test": 60}, "train": {"epochs": 1, "batch_size": 32}, "checks": False,
                      "compression": [{"kind": "prune", "levels": [0.5]}], "attacks": [{"name": "pgd", "eps": [0.1], "steps": 3}]})
    saved = torch.get_num_threads()
    logs = []
    try:
        for n in (2, 1):
            monkeypatch.setenv("CREV_CACHE", str(tmp_path / f"cache{n}"))
            torch.set_num_threads(n)
            engine, _ = init_database(f"sqlite:///{tmp_path / f'job{n}.db'}", load=False)
            out = run_job(engine, spec, show_progress=False)
            assert torch.get_num_threads() == n  # the caller's setting is restored
            from replicate.jobs.store import get_job

            logs.append([ln.split("(weights ")[1] for ln in get_job(engine, out.job_id).log.splitlines() if "dense model seed" in ln])
    finally:
        torch.set_num_threads(saved)
    assert logs[0] == logs[1] and logs[0]


# ---------------------------------------------------------------------------------------- (4) attack labels


@pytest.mark.parametrize("name", list(ATTACKS), ids=str)
def test_every_registered_attack_has_a_vocab_value_and_a_full_label(name):
    spec = AttackSpec(name, 0.1 if name not in (AttackName.pgdl2, AttackName.noise_l2, AttackName.cw) else 1.0, 7, queries=300)
    assert isinstance(spec.vocab, Attack)
    label = spec.label()
    assert len(label) > 15
    if spec.real_steps is not None and name not in (AttackName.fgsm,):
        assert str(spec.real_steps) in label


def test_autoattack_variants_are_labelled_with_the_settings_they_run():
    fast, std = AttackSpec("autoattack_fast", 0.1, 10), AttackSpec("autoattack_standard", 0.1, 10)
    assert fast.vocab == Attack.autoattack_fast and std.vocab == Attack.autoattack_standard
    assert fast.real_steps == 10 and fast.real_queries is None and "no FAB-T" in fast.label()
    assert std.real_steps == 100 and std.real_queries == 5000  # the paper's budget, whatever the spec says
    assert "FAB-T 100 iterations" in std.label() and "Square 5,000 queries" in std.label()
    assert AttackSpec("square", 0.1, queries=800).real_queries == 800


@pytest.mark.slow
def test_autoattack_standard_builds_the_paper_components(trained):
    atk = AttackSpec("autoattack_standard", 0.1).method.build(trained, AttackSpec("autoattack_standard", 0.1), 10, 0)
    parts = {type(a).__name__: a for a in atk.attacks}
    assert set(parts) == {"APGD", "APGDT", "FAB", "Square"}
    assert parts["APGD"].steps == parts["APGDT"].steps == parts["FAB"].steps == 100 and parts["Square"].n_queries == 5000


# ---------------------------------------------------------------------------------------- (5) int8


@pytest.mark.slow
def test_int8_model_is_attacked_through_its_twin_recorded_as_transfer(trained, digits):
    comp = Int8PTQ().compress(trained, digits, seed=0)
    assert comp.info.non_differentiable and comp.info.threat_model == ThreatModel.transfer
    assert comp.info.twin_agreement > 0.9 and "twin" in comp.info.attacked_model
    assert not hasattr(comp.info, "twin_faithful")
    with pytest.raises(RuntimeError):
        x = digits.x_test[:4].clone().requires_grad_(True)
        comp.model(x).sum().backward()
    vec = evaluate_attack(comp.model, AttackSpec("pgd", 0.2, 10), digits.x_test, digits.y_test, n_classes=10, attacked=comp.attacked)
    assert int(vec.sum()) < int(correct(comp.model, digits.x_test, digits.y_test).sum()) - 20


# ---------------------------------------------------------------------------------------- (6) rigour checks


class RoundsInput(nn.Module):
    """Masks gradients: rounds its input to 0/1 (zero gradient almost everywhere)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x))


class Shattered(nn.Module):
    """Shattered gradients (Athalye et al. 2018): x + 0.02 sin(1000 x) before a trained model."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x + 0.02 * torch.sin(1000 * x))


def _measure(model, digits, source) -> Measurements:
    x, y = digits.x_test, digits.y_test
    m = Measurements(n_classes=10, clean=correct(model, x, y).numpy())
    ref = AttackSpec("pgd", 0.2, 10)
    m.reference = {"linf": ref}
    for a in (AttackSpec("pgd", 0.1, 10), ref, AttackSpec("pgd", LARGE_EPS, 10), AttackSpec("noise", LARGE_EPS, restarts=10), AttackSpec("fgsm", 0.2, 1),
              AttackSpec("pgd", 0.2, 20, alpha=ref.step_size / 2), AttackSpec("pgd", 0.2, 10, alpha=2 * ref.step_size),
              AttackSpec("pgd", 0.2, 10, restarts=3), AttackSpec("noise", 0.2, restarts=10), AttackSpec("square", 0.2, queries=300)):
        m.add(a, evaluate_attack(model, a, x, y, n_classes=10).numpy())
    m.add(AttackSpec("transfer", 0.2, 10), evaluate_attack(model, AttackSpec("transfer", 0.2, 10), x, y, n_classes=10, source=source).numpy())
    g = input_gradient_stats(model, x, y)
    m.grad_mean_abs, m.grad_zero_fraction = g["grad_mean_abs"], g["grad_zero_fraction"]
    m.grad_consistency = gradient_consistency(model, x, y, radius=0.01)
    return m


@pytest.mark.slow
def test_checks_do_not_flag_an_ordinary_model(trained, surrogate, digits):
    outs, masking = run_checks(_measure(trained, digits, surrogate))
    assert not masking, [o for o in outs if not o.passed and o.informative]
    names = {o.name for o in outs}
    assert {"transfer_not_stronger_than_white_box", "noise_not_stronger_than_white_box", "pgd_linf_converged_under_step_and_restart_sweep",
            "input_gradients_are_consistent", "query_attack_not_stronger_than_white_box"} <= names


@pytest.mark.slow
def test_checks_flag_a_gradient_masking_model(trained, surrogate, digits):
    outs, masking = run_checks(_measure(RoundsInput(trained), digits, surrogate))
    failed = {o.name for o in outs if o.informative and not o.passed}
    assert masking and {"no_vanishing_input_gradients", "transfer_not_stronger_than_white_box", "noise_not_stronger_than_white_box"} <= failed


@pytest.mark.slow
def test_checks_flag_a_shattered_gradient_model(trained, surrogate, digits):
    outs, masking = run_checks(_measure(Shattered(trained), digits, surrogate))
    failed = {o.name for o in outs if o.informative and not o.passed}
    assert masking and {"transfer_not_stronger_than_white_box", "input_gradients_are_consistent"} <= failed


def test_large_epsilon_check_is_not_informative_when_noise_saturates():
    m = Measurements(n_classes=10, clean=np.ones(200, bool))
    m.add(AttackSpec("pgd", LARGE_EPS, 10), np.zeros(200, bool))
    m.add(AttackSpec("noise", LARGE_EPS, restarts=10), np.zeros(200, bool))
    outs, masking = run_checks(m)
    (o,) = [o for o in outs if o.name == "chance_at_large_epsilon"]
    assert not o.informative and not o.passed and not masking and "saturated" in o.detail
    m.vectors.clear(), m.specs.clear()
    m.add(AttackSpec("pgd", LARGE_EPS, 10), np.zeros(200, bool))
    m.add(AttackSpec("noise", LARGE_EPS, restarts=10), np.ones(200, bool))
    (o,) = [o for o in run_checks(m)[0] if o.name == "chance_at_large_epsilon"]
    assert o.informative and o.passed


def test_paired_comparison_uses_discordant_images_only():
    a = np.array([1] * 60 + [0] * 40, bool)
    b = np.array([1] * 50 + [0] * 50, bool)
    p = paired_less(a, b)
    assert (p.a_only, p.b_only, p.correct_a, p.correct_b) == (10, 0, 60, 50)
    assert p.p_value == pytest.approx(0.5 ** 10)  # exact binomial: all 10 discordant pairs favour A
    same_marginals = paired_less(np.array([1] * 60 + [0] * 40, bool), np.array([0] * 10 + [1] * 60 + [0] * 30, bool))
    assert same_marginals.p_value > 0.5  # equal accuracies, 10 vs 10 discordant: no evidence


def _vec(n_correct, n=200):
    return np.array([True] * n_correct + [False] * (n - n_correct))


def test_l2_checks_fire_on_an_unconverged_or_noise_beaten_l2_attack():
    m = Measurements(n_classes=10, clean=np.ones(200, bool))
    ref = AttackSpec("pgdl2", 1.5, 10)
    m.reference = {"l2": ref}
    m.add(ref, _vec(120))
    m.add(AttackSpec("pgdl2", 1.5, 20, alpha=ref.step_size / 2), _vec(80))  # twice the steps: 20 pp lower
    m.add(AttackSpec("noise_l2", 1.5, restarts=10), _vec(100))  # random noise beats the attack
    failed = {o.name for o in run_checks(m)[0] if o.informative and not o.passed}
    assert {"pgd_l2_converged_under_step_and_restart_sweep", "noise_l2_not_stronger_than_white_box"} <= failed
    m.add(AttackSpec("pgdl2", 1.5, 20, alpha=ref.step_size / 2), _vec(119))
    m.add(AttackSpec("noise_l2", 1.5, restarts=10), _vec(190))
    outs, masking = run_checks(m)
    assert not masking and {"pgd_l2_converged_under_step_and_restart_sweep", "noise_l2_not_stronger_than_white_box"} <= {o.name for o in outs}


def test_restart_sweep_needs_a_material_gain_not_only_a_significant_one():
    """An adversarially trained model where 3 restarts find 3 pp more (significant on 250 images) is
    ordinary PGD, not masking; a variant 8 pp stronger is flagged."""
    from replicate.checks import SWEEP_MIN_GAIN_PP

    ref = AttackSpec("pgd", 0.1, 10)
    m = Measurements(n_classes=10, clean=np.ones(250, bool))
    m.reference = {"linf": ref}
    m.add(ref, _vec(150, 250))
    m.add(AttackSpec("pgd", 0.1, 10, restarts=3), _vec(142, 250))  # 8 discordant images, all one way: p = 0.0039, 3.2 pp
    sweep = {o.name: o for o in run_checks(m)[0]}["pgd_linf_converged_under_step_and_restart_sweep"]
    assert sweep.passed and sweep.informative and "+3.2 pp" in sweep.detail
    assert 3.2 < SWEEP_MIN_GAIN_PP
    m.add(AttackSpec("pgd", 0.1, 10, restarts=3), _vec(130, 250))  # 20 images, 8 pp
    outs, masking = run_checks(m)
    sweep = {o.name: o for o in outs}["pgd_linf_converged_under_step_and_restart_sweep"]
    assert masking and not sweep.passed and "+8.0 pp" in sweep.detail


@pytest.mark.parametrize("check", __import__("replicate").CHECKS, ids=lambda c: c.name)
def test_every_check_is_silent_without_its_measurements(check):
    assert check.evaluate(Measurements(n_classes=10, clean=np.ones(50, bool))) is None
