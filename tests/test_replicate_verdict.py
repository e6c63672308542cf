"""verdict.decide: every branch, from paired counts (no training)."""

import math

import pandas as pd
import pytest

from replicate.jobs.verdict import EFFECT_COLUMNS, VerdictValue, decide, decide_family, equivalence_margin, level_effect

N = 1000


def _rows(effects_by_level: dict, *, family="unstructured_pruning", seeds=(0, 1, 2, 3, 4), jitter=(0, 1, -1, 2, -2), masking=(), n=N,
          discordant=20, strength=None):
    """Rows with the given effect (in images) per level; ``discordant`` images flip each way besides the effect."""
    rows = []
    for level, eff in effects_by_level.items():
        for s, j in zip(seeds, jitter):
            e = eff + j
            dense = 500
            comp = dense + e
            d_only = discordant + max(-e, 0)
            c_only = discordant + max(e, 0)
            rows.append({"family": family, "level": level, "strength": level if strength is None else strength[level], "seed": s, "eps": 0.1,
                         "n_test": n, "robust_dense": dense, "robust_compressed": comp, "dense_only": d_only, "compressed_only": c_only,
                         "clean_dense": 950, "clean_compressed": 940, "masking": level in masking})
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


def test_equivalence_margin_grows_for_small_test_sets():
    assert equivalence_margin(2.0, 10_000) == 2.0
    assert equivalence_margin(2.0, 500) == pytest.approx(2 * 100 * math.sqrt(0.25 / 500))  # 4.47 pp: the test set cannot resolve less
    v = _v(_rows({0.5: 0}, n=500), "neutral", margin=2.0)
    assert v.margin == pytest.approx(4.472, abs=1e-3)


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


def test_masking_flagged_rows_are_excluded_with_a_note():
    v = _v(_rows({0.5: -60, 0.8: -80, 0.9: 200}, masking=(0.9,)), "down")
    assert v.verdict == VerdictValue.supports and "excluded for possible gradient masking" in v.reason and v.excluded_rows == 5
    lv = next(lv for lv in v.families[0].levels if lv.level == 0.9)
    assert lv.estimate is None and "masking" in lv.excluded


def test_every_level_excluded_is_inconclusive():
    verdict, reason = decide_family([level_effect(_rows({0.5: -60}, masking=(0.5,)), 0.5, 0.5, 2.0)], "down", 2.0)
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
