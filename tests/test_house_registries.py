"""Mutation-style tests over the plugin registries: every registered attack, rigour check and
compressor is exercised, and each test is shown to fail against a planted broken member (a no-op
attack, a ``passed=True`` check, a missing or no-op compressor), so removing a feature turns the
suite red (issue 20, item 4).

The model is LeNet on scikit-learn's 8x8 digits (trained once per module, a few seconds): it has
convolutions (channel pruning needs them) and is accurate enough that every attack has images to
turn. torchattacks' own rule is robust <= clean accuracy for any attack (Kim 2020,
arXiv:2010.01950); at the budgets below every attack must also strictly lower it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from replicate import TrainConfig, build_model, fit, load_split
from replicate.attacks import ATTACKS, AttackMethod, AttackName, AttackSpec, correct, evaluate_attack
from replicate.checks import CHECKS, LARGE_EPS, Check, CheckOutcome, Measurements, run_checks
from replicate.compress import COMPRESSORS, Compressed, CompressionInfo, Compressor, CompressorKind, LevelKind, build_compressor
from replicate.compress.quantize import FakeQuantWrapper

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

N_IMAGES = 96  # attacked test images (the attacks' cost scales with it)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CREV_CACHE", str(tmp_path_factory.getbasetemp() / "model-cache"))


@pytest.fixture(scope="module")
def digits():
    return load_split("digits", seed=0, n_test=300)


@pytest.fixture(scope="module")
def lenet(digits):
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = build_model("lenet", digits.shape, digits.n_classes)
    fit(model, digits, TrainConfig(epochs=8, lr=3e-3), seed=0)
    return model.eval()


# ---------------------------------------------------------------------------------------------- attacks

# Budgets at which every attack must turn some images of an undefended digits model (eps on [0, 1]).
ATTACK_SETTINGS: dict[AttackName, dict] = {
    AttackName.fgsm: dict(eps=0.3),
    AttackName.pgd: dict(eps=0.3, steps=10),
    AttackName.pgdl2: dict(eps=3.0, steps=10),
    AttackName.cw: dict(steps=30),
    AttackName.apgd: dict(eps=0.3, steps=10),
    AttackName.autoattack_fast: dict(eps=0.3, steps=10),
    AttackName.autoattack_standard: dict(eps=0.3),
    AttackName.square: dict(eps=0.3, queries=200),
    AttackName.transfer: dict(eps=0.3, steps=10),
    AttackName.noise: dict(eps=0.5, restarts=5),
    AttackName.noise_l2: dict(eps=6.0, restarts=5),
    AttackName.pgd_pp: dict(eps=0.3, steps=10),
    AttackName.eot_pgd: dict(eps=0.3, steps=5, eot_samples=2),
    AttackName.bpda: dict(eps=0.3, steps=10),
}


def robust_and_clean(model: nn.Module, name: AttackName, digits) -> tuple[float, float]:
    x, y = digits.x_test[:N_IMAGES], digits.y_test[:N_IMAGES]
    spec = AttackSpec(name=name, **ATTACK_SETTINGS[name])
    robust = evaluate_attack(model, spec, x, y, n_classes=digits.n_classes, seed=0, source=model)
    return 100.0 * float(robust.float().mean()), 100.0 * float(correct(model, x, y).float().mean())


def assert_attack_works(model: nn.Module, name: AttackName, digits) -> None:
    """Robust <= clean accuracy, and strictly lower (the budgets above turn images of this model)."""
    robust, clean = robust_and_clean(model, name, digits)
    assert robust <= clean, f"{name.value}: robust {robust:.1f}% above clean {clean:.1f}%"
    assert robust < clean, f"{name.value}: robust {robust:.1f}% equals clean {clean:.1f}%: the attack changed nothing"


def test_every_declared_attack_name_is_registered_and_has_a_test_budget():
    assert set(ATTACKS) == set(AttackName)
    assert set(ATTACK_SETTINGS) == set(ATTACKS), "a registered attack has no budget in this test: add one"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(AttackName), ids=str)
def test_every_registered_attack_lowers_accuracy_below_clean(lenet, digits, name):
    assert_attack_works(lenet, name, digits)


class _NoOp(AttackMethod):
    """A planted broken attack: returns its input unchanged."""

    name = AttackName.pgd

    def build(self, model, spec, n_classes, seed):
        return lambda x, y: x.clone()

    def label(self, spec):
        return "no-op"


@pytest.mark.slow
def test_the_attack_test_fails_on_a_planted_no_op_attack(lenet, digits, monkeypatch):
    monkeypatch.setitem(ATTACKS, AttackName.pgd, _NoOp())
    with pytest.raises(AssertionError, match="changed nothing"):
        assert_attack_works(lenet, AttackName.pgd, digits)


# ---------------------------------------------------------------------------------------------- checks

N = 200


def _vec(share: float) -> np.ndarray:
    """A per-image correctness vector with ``share`` of the N images correct (a fixed subset, nested)."""
    v = np.zeros(N, bool)
    v[: int(round(share * N))] = True
    return v


def _m(**kw) -> Measurements:
    return Measurements(n_classes=10, clean=_vec(0.95), **kw)


def _add(m: Measurements, name: AttackName, share: float, **kw) -> AttackSpec:
    spec = AttackSpec(name=name, **kw)
    m.add(spec, _vec(share))
    return spec


def _sound(m: Measurements) -> Measurements:
    """Measurements of a sound evaluation: PGD at chance at eps 0.5, stronger than every baseline,
    converged, monotone in epsilon, useful gradients."""
    m.reference["linf"] = _add(m, AttackName.pgd, 0.30, eps=0.1, steps=10)
    m.reference["l2"] = _add(m, AttackName.pgdl2, 0.40, eps=1.0, steps=10)
    _add(m, AttackName.pgd, 0.10, eps=LARGE_EPS, steps=10)
    _add(m, AttackName.pgd, 0.60, eps=0.05, steps=10)
    _add(m, AttackName.pgd, 0.29, eps=0.1, steps=50)
    _add(m, AttackName.pgdl2, 0.60, eps=0.5, steps=10)
    _add(m, AttackName.pgdl2, 0.39, eps=1.0, steps=50)
    _add(m, AttackName.fgsm, 0.45, eps=0.1)
    _add(m, AttackName.noise, 0.90, eps=0.1)
    _add(m, AttackName.noise, 0.70, eps=LARGE_EPS)
    _add(m, AttackName.noise_l2, 0.90, eps=1.0)
    _add(m, AttackName.transfer, 0.60, eps=0.1, steps=10)
    _add(m, AttackName.square, 0.50, eps=0.1)
    m.grad_mean_abs, m.grad_zero_fraction, m.grad_consistency = 0.01, 0.0, 0.9
    return m


def _masked_weaker_than(name: AttackName, eps: float, **kw):
    """PGD (Linf, eps 0.1) leaves 60 % correct where ``name`` leaves 30 %: PGD is the weaker."""
    def plant():
        m = _m()
        m.reference["linf"] = _add(m, AttackName.pgd, 0.60, eps=0.1, steps=10)
        _add(m, name, 0.30, eps=eps, **kw)
        return m
    return plant


def _plant_chance():
    m = _m()
    _add(m, AttackName.pgd, 0.50, eps=LARGE_EPS, steps=10)  # half the images survive eps 0.5: not at chance
    _add(m, AttackName.noise, 0.90, eps=LARGE_EPS)
    return m


def _plant_sweep(norm: str, name: AttackName, eps: float):
    def plant():
        m = _m()
        m.reference[norm] = _add(m, name, 0.60, eps=eps, steps=10)
        _add(m, name, 0.20, eps=eps, steps=100)  # 40 pp stronger with more steps: not converged
        return m
    return plant


def _plant_rising(norm: str, name: AttackName, small: float, large: float):
    def plant():
        m = _m()
        m.reference[norm] = _add(m, name, 0.20, eps=small, steps=10)
        _add(m, name, 0.70, eps=large, steps=10)  # accuracy rises with epsilon
        return m
    return plant


def _plant_vanishing():
    m = _m()
    m.grad_mean_abs, m.grad_zero_fraction, m.grad_consistency = 0.0, 1.0, 0.9
    return m


def _plant_shattered():
    m = _m()
    m.grad_mean_abs, m.grad_zero_fraction, m.grad_consistency = 0.01, 0.0, 0.05
    return m


# A planted evaluation that each registered check must fail (informative, not passed).
PLANTS = {
    "chance_at_large_epsilon": _plant_chance,
    "iterative_beats_single_step": _masked_weaker_than(AttackName.fgsm, 0.1),
    "pgd_linf_converged_under_step_and_restart_sweep": _plant_sweep("linf", AttackName.pgd, 0.1),
    "pgd_l2_converged_under_step_and_restart_sweep": _plant_sweep("l2", AttackName.pgdl2, 1.0),
    "noise_not_stronger_than_white_box": _masked_weaker_than(AttackName.noise, 0.1),
    "noise_l2_not_stronger_than_white_box": lambda: _plant_l2_noise(),
    "transfer_not_stronger_than_white_box": _masked_weaker_than(AttackName.transfer, 0.1, steps=10),
    "query_attack_not_stronger_than_white_box": _masked_weaker_than(AttackName.square, 0.1),
    "accuracy_does_not_rise_with_epsilon_linf": _plant_rising("linf", AttackName.pgd, 0.05, 0.1),
    "accuracy_does_not_rise_with_epsilon_l2": _plant_rising("l2", AttackName.pgdl2, 0.5, 1.0),
    "no_vanishing_input_gradients": _plant_vanishing,
    "input_gradients_are_consistent": _plant_shattered,
}


def _plant_l2_noise():
    m = _m()
    m.reference["l2"] = _add(m, AttackName.pgdl2, 0.60, eps=1.0, steps=10)
    _add(m, AttackName.noise_l2, 0.30, eps=1.0)
    return m


def assert_check_catches(check: Check, planted: Measurements) -> CheckOutcome:
    out = check.evaluate(planted)
    assert out is not None, f"{check.name}: did not apply to its planted evaluation"
    assert out.informative and not out.passed, f"{check.name} passed a planted broken evaluation: {out.detail}"
    return out


def test_every_registered_check_has_a_planted_failure():
    assert {c.name for c in CHECKS} == set(PLANTS), "a registered rigour check has no planted failure in this test: add one"


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
def test_every_registered_check_fails_on_its_planted_evaluation(check):
    assert_check_catches(check, PLANTS[check.name]())
    _, flagged = run_checks(PLANTS[check.name]())
    assert flagged, f"{check.name}: run_checks did not flag possible gradient masking"


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
def test_every_registered_check_passes_a_sound_evaluation(check):
    out = check.evaluate(_sound(_m()))
    assert out is not None and out.passed and out.informative, f"{check.name} failed a sound evaluation: {out and out.detail}"


@pytest.mark.parametrize("name", ["iterative_beats_single_step", "accuracy_does_not_rise_with_epsilon_linf"])
def test_the_check_test_fails_on_a_planted_always_passing_check(name, monkeypatch):
    check = next(c for c in CHECKS if c.name == name)
    monkeypatch.setattr(check, "evaluate", lambda m: CheckOutcome(name=name, passed=True, detail="planted"))
    with pytest.raises(AssertionError, match="passed a planted broken evaluation"):
        assert_check_catches(check, PLANTS[name]())


def test_a_planted_model_with_zero_gradients_fails_the_gradient_checks(digits):
    from replicate.attacks import input_gradient_stats

    class Flat(nn.Module):  # a step function of the input: the gradient is zero everywhere
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(64, 10)

        def forward(self, x):
            return self.lin(torch.round(x.flatten(1) * 2) / 2)

    stats = input_gradient_stats(Flat(), digits.x_test[:32], digits.y_test[:32])
    m = _m()
    m.grad_mean_abs, m.grad_zero_fraction, m.grad_consistency = stats["grad_mean_abs"], stats["grad_zero_fraction"], 0.9
    vanishing = next(c for c in CHECKS if c.name == "no_vanishing_input_gradients")
    assert_check_catches(vanishing, m)


# ---------------------------------------------------------------------------------------------- compressors

LEVEL = {LevelKind.sparsity: 0.6, LevelKind.bits: 2, LevelKind.none: None}
PARAMS = {
    CompressorKind.prune: dict(method="global_l1", amount=0.6),
    CompressorKind.channel_prune: dict(amount=0.5, finetune="none"),
    CompressorKind.hydra: dict(amount=0.6, score_epochs=1, finetune_epochs=0, adversarial=False),
    CompressorKind.quantize: dict(bits=2),
    CompressorKind.int8: dict(),
    CompressorKind.int8_ptq: dict(latency_batch=16, calibration_images=128),
    CompressorKind.random_precision: dict(choices=[2, 4], qat_epochs=0),
}


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight.detach().cpu() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _values_per_channel(model: nn.Module) -> list[int]:
    """Distinct quantized weight values of every output channel of every fake-quantized layer."""
    return [len(torch.unique(row)) for m in model.modules() if isinstance(m, FakeQuantWrapper) for row in m.quantized_weight().detach().flatten(1)]


def _int8_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if hasattr(m, "weight") and callable(m.weight) and m.weight().is_quantized]


def assert_reaches_level(kind: CompressorKind, comp: Compressed, dense: nn.Module, digits) -> None:
    """The compressed model is what ``kind`` promises at its level, measured on the model itself."""
    info = comp.info
    zeros = lambda m: float(torch.cat([w.flatten() for w in _weights(m)]).eq(0).double().mean())  # noqa: E731
    if kind in (CompressorKind.prune, CompressorKind.hydra):
        assert info.sparsity is not None and abs(info.sparsity - 0.6) < 0.02, f"{kind.value}: recorded sparsity {info.sparsity}"
        assert abs(zeros(comp.model) - 0.6) < 0.02, f"{kind.value}: measured zero share {zeros(comp.model):.3f}, target 0.6"
    elif kind is CompressorKind.channel_prune:
        from replicate.compress.structural import conv_channels

        assert conv_channels(comp.model) <= 0.55 * conv_channels(dense), f"{kind.value}: {conv_channels(comp.model)} of {conv_channels(dense)} channels kept"
        assert info.sparsity is not None and info.sparsity > 0.3, f"{kind.value}: parameters removed {info.sparsity}"
    elif kind is CompressorKind.quantize:
        per_channel = _values_per_channel(comp.model)
        assert len(per_channel) == sum(len(w) for w in _weights(dense)), f"{kind.value}: not every layer is quantized"
        assert info.bits == 2 and max(per_channel) <= 2 ** 2, f"{kind.value}: up to {max(per_channel)} values per output channel"
        assert len(info.zero_share_per_layer) == len(_weights(dense)), f"{kind.value}: zero share not recorded per layer"
    elif kind in (CompressorKind.int8, CompressorKind.int8_ptq):
        layers = _int8_layers(comp.model)
        assert layers, f"{kind.value}: no int8 weights in the evaluated model"
        assert all(m.weight().dtype == torch.qint8 for m in layers) and info.bits == 8
        assert info.non_differentiable and 0.8 <= (info.twin_agreement or 0) <= 1.0, f"{kind.value}: twin agreement {info.twin_agreement}"
    elif kind is CompressorKind.random_precision:
        wrappers = [m for m in comp.model.modules() if isinstance(m, FakeQuantWrapper)]
        assert len(wrappers) == len(_weights(dense)), f"{kind.value}: not every layer is quantized"
        seen = set()
        x = digits.x_test[:8]
        for _ in range(12):
            comp.model(x)
            bits = {w.bits for w in wrappers}
            assert len(bits) == 1 and bits <= {2, 4}
            seen |= bits
            assert max(_values_per_channel(comp.model)) <= 2 ** max(bits)
        assert seen == {2, 4}, f"{kind.value}: drew only {seen}"
    else:  # pragma: no cover - a new kind must say here what its level is
        raise AssertionError(f"{kind.value}: this test does not know what its level means: add it")


def test_every_declared_compression_kind_is_registered_and_has_test_parameters():
    assert set(COMPRESSORS) == set(CompressorKind)
    assert set(PARAMS) == set(COMPRESSORS)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(CompressorKind), ids=str)
def test_every_registered_compressor_reaches_its_level(lenet, digits, kind):
    comp = build_compressor(kind, **PARAMS[kind]).compress(lenet, digits, seed=0)
    assert_reaches_level(kind, comp, lenet, digits)


class _Identity(Compressor):
    kind = CompressorKind.prune

    @classmethod
    def from_spec(cls, c, level, train):
        return cls()

    def __init__(self, **_):
        pass

    def compress(self, dense, split, seed):
        return Compressed(dense, dense, CompressionInfo(method="planted no-op", sparsity=0.6, bits=8, twin_agreement=1.0))


@pytest.mark.slow
@pytest.mark.parametrize("kind", [CompressorKind.prune, CompressorKind.quantize, CompressorKind.int8])
def test_the_compressor_test_fails_on_a_planted_no_op_compressor(lenet, digits, kind, monkeypatch):
    monkeypatch.setitem(COMPRESSORS, kind, _Identity)
    with pytest.raises(AssertionError):
        assert_reaches_level(kind, build_compressor(kind).compress(lenet, digits, seed=0), lenet, digits)


def test_the_compressor_test_fails_on_a_missing_compressor(monkeypatch):
    monkeypatch.delitem(COMPRESSORS, CompressorKind.hydra)
    with pytest.raises(AssertionError):
        test_every_declared_compression_kind_is_registered_and_has_test_parameters()
    with pytest.raises(ValueError, match="unknown compression kind .*hydra.*; known: prune"):
        build_compressor(CompressorKind.hydra)
