"""verdict.decide: every branch, from paired counts (no training)."""

import math

import pandas as pd
import pytest

from replicate.jobs.verdict import CONTRAST_COLUMNS, EFFECT_COLUMNS, VerdictValue, decide, decide_family, level_effect

N = 1000


def _rows(effects_by_level: dict, *, family="unstructured_pruning", seeds=(0, 1, 2, 3, 4), jitter=(0, 1, -1, 2, -2), masking=(), n=N,
          discordant=20, strength=None, arm=None, attack="pgd", clean_compressed=940):
    """Rows with the given effect (in images) per level; ``discordant`` images flip each way besides the effect."""
    rows = []
    for level, eff in effects_by_level.items():
        for s, j in zip(seeds, jitter):
            e = eff + j
            dense = 500
            comp = dense + e
            d_only = discordant + max(-e, 0)
            c_only = discordant + max(e, 0)
            rows.append({"family": family, "arm": arm or family, "attack": attack, "level": level, "strength": level if strength is None else strength[level], "seed": s, "eps": 0.1,
                         "n_test": n, "robust_dense": dense, "robust_compressed": comp, "dense_only": d_only, "compressed_only": c_only,
                         "clean_dense": 950, "clean_compressed": clean_compressed, "masking": level in masking})
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


def _v(df, direction, **kw):
    return decide(df, "study_x", direction, **kw)


def test_quick_run_never_decides():
    v = _v(_rows({0.5: -100}), "down", quick=True)
    assert v.verdict == VerdictValue.inconclusive and "quick" in v.reason


def test_no_effects_is_inconclusive():
    assert _v(pd.DataFrame(columns=EFFECT_COLUMNS), "down").verdict == VerdictValue.inconclusive


def test_one_seed_gives_no_verdict():
    v = _v(_rows({0.5: -100}, seeds=(0,), jitter=(0,)), "down")
    assert v.verdict == VerdictValue.inconclusive and "one seed" in v.reason


@pytest.mark.parametrize("direction,effects,expected", [
    ("down", {0.5: -60, 0.8: -80, 0.9: -100}, VerdictValue.supports),
    ("down", {0.5: 60, 0.8: 80, 0.9: 100}, VerdictValue.contradicts),
    ("down", {0.5: 0, 0.8: 0, 0.9: -100}, VerdictValue.inconclusive),  # one level alone does not decide
    ("down", {0.5: -60, 0.8: -80, 0.9: 100}, VerdictValue.inconclusive),  # levels disagree
    ("up", {2: 60, 4: 80, 8: 70}, VerdictValue.supports),
    ("up", {2: -60, 4: -80, 8: -70}, VerdictValue.contradicts),
    ("up", {2: 0, 4: 1, 8: -1}, VerdictValue.inconclusive),
])
def test_directional_claims_need_most_levels_and_none_against(direction, effects, expected):
    assert _v(_rows(effects), direction).verdict == expected


def test_neutral_claim_supported_by_equivalence_within_the_stated_margin():
    v = _v(_rows({0.5: 0, 0.8: 2, 0.9: -2}, discordant=5), "neutral", margin=5.0)
    assert v.verdict == VerdictValue.supports and "TOST" in v.reason and "±5.0 pp" in v.reason


def test_neutral_claim_contradicted_when_a_level_clearly_differs():
    v = _v(_rows({0.5: 0, 0.9: -150}), "neutral", margin=2.0)
    assert v.verdict == VerdictValue.contradicts


def test_neutral_claim_inconclusive_when_equivalence_is_not_shown():
    v = _v(_rows({0.5: 25, 0.9: 0}, discordant=60, jitter=(0, 15, -15, 20, -20)), "neutral", margin=2.0)
    assert v.verdict == VerdictValue.inconclusive


def test_the_margin_is_the_claims_and_does_not_change_with_the_test_set_size():
    small = _v(_rows({0.5: 0}, n=500, discordant=5), "neutral", margin=2.0)
    large = _v(_rows({0.5: 0}, n=20_000, discordant=5), "neutral", margin=2.0)
    assert small.margin == large.margin == 2.0 and "±2.0 pp" in small.reason


def test_a_level_whose_interval_cannot_fit_inside_the_margin_is_underpowered_not_equivalent():
    # 100 test images, a wide spread over seeds: the 90 % interval is wider than ±2 pp wherever it lies
    v = _v(_rows({0.5: 0}, n=100, discordant=10, jitter=(0, 3, -3, 4, -4)), "neutral", margin=2.0)
    lv = v.families[0].levels[0]
    assert lv.underpowered and not lv.equivalent
    assert v.verdict == VerdictValue.inconclusive and "underpowered" in v.reason


@pytest.mark.parametrize("effects,expected", [
    ({0.3: 60, 0.5: 50, 0.9: -80, 0.95: -120}, VerdictValue.supports),  # helps, then hurts: inverted U
    ({0.3: -60, 0.5: -50, 0.9: 80, 0.95: 120}, VerdictValue.contradicts),  # the reverse order
    ({0.3: -60, 0.5: -50, 0.9: -80, 0.95: -120}, VerdictValue.contradicts),  # monotone
    ({0.3: 60, 0.5: -50, 0.9: 80, 0.95: -120}, VerdictValue.inconclusive),  # interleaved
    ({0.3: 0, 0.5: 0, 0.9: -80, 0.95: 0}, VerdictValue.inconclusive),
])
def test_inverted_u_rule_respects_the_order_of_levels(effects, expected):
    assert _v(_rows(effects), "mixed").verdict == expected


def test_inverted_u_orders_quantization_by_compression_strength_not_bit_width():
    # 8 bits mild, 2 bits strong: helps at 8/4 bits, hurts at 2 bits is an inverted U
    df = _rows({8: 60, 4: 50, 2: -90}, family="quantization", strength={8: 24, 4: 28, 2: 30})
    assert _v(df, "mixed").verdict == VerdictValue.supports


def test_families_are_decided_separately_not_pooled():
    prune = _rows({0.5: 0, 0.8: 1, 0.9: -1})
    quant = _rows({2: -400}, family="quantization", strength={2: 30})  # a 2-bit collapse
    v = _v(pd.concat([prune, quant], ignore_index=True), "down")
    assert v.family.value == "unstructured_pruning" and v.verdict == VerdictValue.inconclusive
    fams = {f.family.value: f.verdict for f in v.families}
    # the collapse decides the quantization family's verdict, not the pruning claim's
    assert fams == {"unstructured_pruning": VerdictValue.inconclusive, "quantization": VerdictValue.supports}
    v_q = _v(pd.concat([prune, quant], ignore_index=True), "down", family="quantization")
    assert v_q.family.value == "quantization" and v_q.verdict == VerdictValue.supports


def test_masking_flagged_level_where_compression_raised_robustness_is_excluded_with_its_reason():
    v = _v(_rows({0.5: -60, 0.8: -80, 0.9: 200}, masking=(0.9,)), "down")
    assert v.verdict == VerdictValue.supports and "excluded" in v.reason and v.excluded_rows == 5
    lv = next(lv for lv in v.families[0].levels if lv.level == 0.9)
    assert lv.estimate is None and "masking" in lv.excluded and "raised" in lv.excluded
    assert "0.9: excluded (" in v.reason  # the excluded level is named in the text, with its reason


def test_masking_flag_on_a_level_that_lost_robustness_does_not_exclude_it():
    # masking can only inflate robust accuracy: a flagged level that lost 28 / 65 pp counts, flag shown
    v = _v(_rows({0.5: -60, 0.9: -280, 0.98: -650}, masking=(0.9, 0.98)), "down")
    lv = {lv.level: lv for lv in v.families[0].levels}
    assert not lv[0.9].excluded and not lv[0.98].excluded and lv[0.9].masking_flag and lv[0.98].estimate == pytest.approx(-65.0)
    assert v.verdict == VerdictValue.supports and "significant in the claimed direction at 3 of 3" in v.reason
    assert "flagged possible gradient masking; counted" in v.reason


def test_every_grid_level_appears_even_without_rows():
    v = _v(_rows({0.5: -60, 0.9: -100}), "down", grid={"unstructured_pruning": [(0.5, 0.5), (0.9, 0.9), (0.95, 0.95)]})
    lv = {lv.level: lv for lv in v.families[0].levels}
    assert set(lv) == {0.5, 0.9, 0.95} and "no result rows" in lv[0.95].excluded and "0.95: excluded (no result rows" in v.reason


def test_two_compressions_at_one_family_and_level_give_two_estimates_not_pooled():
    # binary weights alone lose 5 pp; the real binary network (weights + 1-bit activations) is flagged and gained:
    # each arm has its own estimate; pooling would have mixed them
    weights = _rows({1: -50}, family="quantization", strength={1: 31}, arm="quantize", clean_compressed=947)
    binary = _rows({1: 150}, family="quantization", strength={1: 31}, arm="quantize act_bits=1", masking=(1,), clean_compressed=762)
    v = _v(pd.concat([weights, binary], ignore_index=True), "down")
    arms = {f.arm: f for f in v.families}
    assert set(arms) == {"quantize", "quantize act_bits=1"}
    assert arms["quantize"].levels[0].estimate == pytest.approx(-5.0) and arms["quantize"].levels[0].clean_loss == pytest.approx(0.3)
    assert arms["quantize act_bits=1"].levels[0].excluded
    # the arms disagree (one supports, one has no level that counts): no supported verdict from one arm alone
    assert v.verdict == VerdictValue.inconclusive and "disagree" in v.reason
    # the printed clean loss is the used arm's (0.3 pp), not one pooled with the dropped rows (9.6 pp)
    assert "clean loss 0.3 pp" in v.reason and "9.6" not in v.reason


def test_each_attack_is_decided_separately_and_the_claims_attack_decides():
    pgdpp = _rows({1: -60}, family="quantization", strength={1: 31}, attack="pgd_pp")
    pgd = _rows({1: 40}, family="quantization", strength={1: 31}, attack="pgd")
    v = _v(pd.concat([pgdpp, pgd], ignore_index=True), "down", attack="pgd_pp")
    assert {(f.attack, f.verdict) for f in v.families} == {("pgd_pp", VerdictValue.supports), ("pgd", VerdictValue.contradicts)}
    assert v.verdict == VerdictValue.supports and v.attack == "pgd_pp"


def test_the_attack_contrast_compares_pgd_with_pgd_pp_on_the_same_models():
    rows = []
    for s, j in zip(range(5), (0, 1, -1, 2, -2)):
        # on the binary model plain PGD leaves 80 more images of 1000 correct than PGD++ (8 pp overstated)
        rows.append({"family": "quantization", "arm": "quantize", "level": 1.0, "strength": 31.0, "seed": s, "eps": 0.1, "n_test": N,
                     "reference": "pgd_pp", "attack": "pgd", "correct_reference": 400, "correct_attack": 480 + j,
                     "reference_only": 5, "attack_only": 85 + j})
    con = pd.DataFrame(rows, columns=CONTRAST_COLUMNS)
    v = _v(_rows({1: -60}, family="quantization", strength={1: 31}, arm="quantize", attack="pgd_pp"), "down", contrasts=con)
    (c,) = v.contrasts
    assert c.reference == "pgd_pp" and c.attack == "pgd" and c.levels[0].estimate == pytest.approx(8.0) and c.levels[0].sign == 1
    assert "contrast pgd minus pgd_pp on quantize: 1: +8.0 pp" in v.reason


def test_every_level_excluded_is_inconclusive():
    verdict, reason = decide_family([level_effect(_rows({0.5: 60}, masking=(0.5,)), 0.5, 0.5, 2.0)], "down", 2.0)
    assert verdict == VerdictValue.inconclusive and "excluded" in reason


def test_level_interval_includes_the_test_set_sampling_error():
    df = _rows({0.5: -30}, jitter=(0, 0, 0, 0, 0), discordant=100)  # identical seeds: spread over seeds is zero
    lv = level_effect(df, 0.5, 0.5, 2.0)
    assert lv.se_seeds == 0 and lv.se_test > 0 and lv.ci_low < lv.estimate < lv.ci_high
    # McNemar variance of the paired difference: (b + c - (c - b)^2 / n) / n^2, in pp
    b, c = 130, 100
    assert lv.se_test == pytest.approx(100 * math.sqrt((b + c - (c - b) ** 2 / N) / N ** 2))
    assert lv.estimate == pytest.approx(-3.0) and lv.clean_loss == pytest.approx(1.0)


def test_a_level_effect_that_rounds_to_zero_prints_without_a_sign_of_minus():
    from evidence.vocab import Direction
    from replicate.jobs.verdict import LevelEffect

    lv = LevelEffect(level=0.3, strength=0.3, estimate=-0.04, ci_low=-4.4, ci_high=4.36, ci90_low=-3.6, ci90_high=3.5, n_seeds=5,
                     clean_loss=-0.03)
    _, reason = decide_family([lv], Direction.up, 2.0)
    assert "-0.0" not in reason and "0.3: +0.0 pp [-4.4, +4.4], clean loss 0.0 pp" in reason


def test_the_claims_named_arm_decides_and_a_comparison_arm_does_not():
    hydra = _rows({0.5: 0, 0.9: 1}, arm="hydra", discordant=5)
    l1 = _rows({0.5: -60, 0.9: -200}, arm="prune")
    both = pd.concat([hydra, l1], ignore_index=True)
    pooled_rule = _v(both, "neutral", margin=5.0)  # default: every arm of the family must agree; here they do not
    assert pooled_rule.verdict == VerdictValue.inconclusive and "disagree" in pooled_rule.reason
    v = _v(both, "neutral", margin=5.0, arms=["hydra"])
    assert v.verdict == VerdictValue.supports and {f.arm for f in v.families} == {"hydra", "prune"}


def test_hydra_is_run_where_the_claim_names_importance_scores_with_its_own_score_epochs():
    from replicate import SpecError, catalogue
    from replicate.compress import CompressorKind, compressor_for
    from replicate.jobs.spec import load_spec

    spec = catalogue()["pruning_with_at"]
    assert "importance" in spec.claim.statement and spec.claim.compressions == [0]
    named = spec.compression[0]
    assert named.kind == CompressorKind.hydra and named.score_epochs == 2
    longer = named.model_copy(update={"finetune_epochs": 7})  # the score budget is not tied to the fine-tuning epochs
    pruner = compressor_for(longer, 0.8, spec.train)
    assert pruner.score_epochs == 2 and pruner.finetune_epochs == 7 and pruner.adversarial
    raw = spec.model_dump(mode="json")
    raw["compression"][0].pop("score_epochs")
    with pytest.raises(SpecError, match=r"compression\.0.*score_epochs"):
        load_spec(raw)
    raw = spec.model_dump(mode="json")
    raw["claim"]["compressions"] = [5]
    with pytest.raises(SpecError, match="claim.compressions: index 5"):
        load_spec(raw)
