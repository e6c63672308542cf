import pytest

from evidence.parsing import (
    parse_adv_training, parse_attack, parse_epsilon, parse_family, parse_level, parse_norm, parse_threat_model, parse_year,
)
from evidence.vocab import AdvTraining, Attack, CompressionFamily, Norm, ThreatModel


def test_epsilon_fraction_is_on_pixel_scale():
    assert parse_epsilon("2/255") == pytest.approx(0.00784313725490196, abs=1e-15)
    assert parse_epsilon("0.125/255") == pytest.approx(0.125 / 255)


def test_epsilon_decimal_and_empty():
    assert parse_epsilon("0.031") == 0.031
    assert parse_epsilon("") is None
    assert parse_epsilon(None) is None


@pytest.mark.parametrize("text, reason", [("abc", "not a number"), ("-2/255", "negative"), ("8/0", "divides by zero")])
def test_epsilon_rejects_bad_text(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_epsilon(text)


def test_level_sparsity_bits_and_text():
    assert parse_level("0.90").sparsity == 0.9
    assert parse_level("90%").sparsity == 0.9
    assert parse_level("2-bit").bits == 2
    assert parse_level("4 bits").bits == 4
    lvl = parse_level("rate not stated in files read")
    assert not lvl.parsed and lvl.sparsity is None and lvl.bits is None


@pytest.mark.parametrize("text, sparsity, bits", [
    ("0.95; 1-bit weights", 0.95, 1), ("90% + 4-bit", 0.9, 4), ("2-bit and 50% sparsity", 0.5, 2), ("80% sparsity", 0.8, None),
    ("0.5 & 8 bits", 0.5, 8), ("1-bit weights and activations", None, 1)])
def test_combined_level_keeps_its_sparsity_and_its_bits(text, sparsity, bits):
    lvl = parse_level(text)
    assert (lvl.sparsity, lvl.bits) == (pytest.approx(sparsity), bits)


@pytest.mark.parametrize("text", ["4-bit + 8-bit", "0.5; 0.7", "0.9; pruned with care", "random precision (4~16-bit)"])
def test_ambiguous_or_partly_unparsed_combined_level_stays_text(text):
    assert not parse_level(text).parsed


@pytest.mark.parametrize("text", ["1.0", "1.5", "-0.1", "1.5; 2-bit"])
def test_level_rejects_sparsity_outside_unit_interval(text):
    with pytest.raises(ValueError, match=r"outside \[0, 1\)"):
        parse_level(text)


def test_level_rejects_zero_bits():
    with pytest.raises(ValueError, match="below 1"):
        parse_level("0-bit")


def test_year_takes_leading_year():
    assert parse_year("2022 (arXiv Aug 2021)") == 2022
    assert parse_year("2020") == 2020
    assert parse_year("not seen") is None


def test_vocabularies_map_seed_texts():
    assert parse_adv_training("both (AT, randomized smoothing, MixTrain, CROWN-IBP)") is AdvTraining.both
    assert parse_adv_training("no (robust training = randomized smoothing)") is AdvTraining.no
    assert parse_adv_training("not stated in README") is AdvTraining.unknown
    assert parse_attack("PGD (foolbox 3 LinfProjectedGradientDescentAttack, library defaults)") is Attack.pgd
    assert parse_attack("SGD-UAP universal adversarial perturbation (untargeted, 10 epochs)") is Attack.uap
    assert parse_attack("randomized-smoothing certification (verified robust accuracy, vra-s)") is Attack.certified
    assert parse_attack("AutoAttack (standard)") is Attack.autoattack
    assert parse_norm("Linf (per README Figure 1 caption for AT; table silent)") is Norm.linf
    assert parse_threat_model("transfer (UAP crafted on dense ResNet-18, applied to compressed model)") is ThreatModel.transfer
    assert parse_threat_model('white-box (README example commands: "White-Box CW attack")') is ThreatModel.white_box


def test_family_from_method_and_level():
    assert parse_family("magnitude local structured (kernel) pruning", parse_level("0.5")) is CompressionFamily.structured_pruning
    assert parse_family("random local unstructured pruning", parse_level("0.5")) is CompressionFamily.unstructured_pruning
    assert parse_family("quantization-aware trained ResNet-20", parse_level("2-bit")) is CompressionFamily.quantization
    assert parse_family("EMPIR mixed-precision ensemble", parse_level("EMPIR ensemble: ...")) is CompressionFamily.ensemble
    assert parse_family("binarized weights", parse_level("1-bit")) is CompressionFamily.binarization
