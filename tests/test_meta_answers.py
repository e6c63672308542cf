"""crev meta answer: one answer per question and evaluation kind, never one number for
incomparable evaluations; below 3 studies, below 4 CR2 df, or where leaving one study out changes
whether the CI excludes 0 or moves the estimate by more than the CI half-width, per-study estimates
and what they can say; prediction intervals of a difference of percentages within +-100 pp."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crev_cli import app
from evidence.vocab import Question
from metaanalysis import EffectSettings, EffectTable, answer

runner = CliRunner()


def _effects(studies: dict[str, float], *, threat="white_box", attack="pgd", adv="no", family="unstructured_pruning", k=6, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s, mu in studies.items():
        for c in range(2):
            for i in range(k // 2):
                rows.append({"study": s, "cluster": f"{s}-{c}", "yi": mu + rng.normal(0, 1.0), "vi": 0.5, "threat_model": threat, "attack": attack,
                             "adversarial_training": adv, "compression_family": family})
    return pd.DataFrame(rows)


def _table(df):
    return EffectTable(df.reset_index(drop=True), pd.DataFrame(columns=["reason"]), EffectSettings())


def _kinds(ans, q):
    return {(k.kind.threat_model, k.kind.attack_family): k for k in next(a for a in ans.questions if a.question == q).kinds}


EIGHT = dict(zip("abcdefgh", [-5, -6, -4, -5.5, -4.5, -6.5, -5.2, -4.8]))


def _eight(*means):
    return dict(zip("abcdefgh", means))


def test_each_evaluation_kind_is_pooled_apart():
    pgd = _effects(EIGHT)
    uap = _effects({"a": 3, "b": 2}, attack="uap", seed=1)
    ans = answer(_table(pd.concat([pgd, uap])), questions=[Question.pruning_without_at])
    kinds = _kinds(ans, Question.pruning_without_at)
    assert set(kinds) == {("white_box", "iterative gradient"), ("white_box", "universal perturbation")}
    k = kinds[("white_box", "iterative gradient")]
    assert k.estimable and k.n_studies == 8 and k.k == 48
    assert k.ci_low < k.estimate < k.ci_high and k.pi_low <= k.ci_low and k.ci_high <= k.pi_high
    assert k.test == "CR2" and 4 <= k.df < 8  # df from the 8 studies, not from 48 effects
    assert k.loo_low <= k.estimate <= k.loo_high and "8 studies" in k.verdict and "lower" in k.verdict
    u = kinds[("white_box", "universal perturbation")]
    assert not u.estimable and u.estimate is None and "not estimable as one number: 2 studies" in u.verdict
    assert [s.study for s in u.per_study] == ["a", "b"] and all(s.estimate > 0 for s in u.per_study)


def test_no_pooled_number_below_4_cr2_df_even_with_enough_studies():
    k = _kind(answer(_table(_effects({"a": -5, "b": -6, "c": -4, "d": -5.5})), questions=[Question.pruning_without_at]))
    assert k.n_studies == 4 and k.test == "CR2" and k.df < 4
    assert not k.estimable and k.estimate is None and k.ci_low is None and k.pi_low is None
    assert "4 studies give 3.0 CR2 df (at least 4 needed" in k.verdict and "consistently" not in k.verdict
    # what can be said without a pooled number: how many studies find it lower
    lower = sum(e.ci_high < 0 for e in k.per_study)
    assert 0 < lower < 4 and k.can_say == f"{lower} of 4 studies find robust accuracy lower, {4 - lower} no clear change; no pooled number"
    assert k.can_say in k.verdict and len(k.per_study) == 4


def test_a_sign_flip_inside_the_ci_keeps_the_pooled_number():
    k = _kind(answer(_table(_effects(_eight(0.5, -0.6, 0.4, -0.3, 0.2, -0.1, 0.6, -0.4))), questions=[Question.pruning_without_at]))
    assert k.loo_low < 0 < k.estimate  # leaving one study out flips the sign (the old rule refused this kind)...
    assert k.estimable and k.loo_unstable == () and "no clear change on average" in k.verdict  # ...but stays inside its CI


def test_leaving_out_a_study_that_moves_the_estimate_beyond_the_ci_half_width_is_not_one_number():
    k = _kind(answer(_table(_effects(_eight(-5, -6, -4, -5.5, -4.5, -6.5, -5.2, -60))), questions=[Question.pruning_without_at]))
    assert not k.estimable and k.estimate is None and k.loo_unstable == ("h",) and k.df >= 4
    assert "leaving out h changes whether the CI excludes 0 or moves the estimate by more than the CI half-width" in k.verdict


def test_a_ci_that_flips_on_leaving_one_out_is_not_one_number():
    # without study h the CI excludes 0; with it, it does not
    k = _kind(answer(_table(_effects(_eight(-1.0, -1.2, -0.8, -1.1, -0.9, -1.3, -1.0, 6.0))), questions=[Question.pruning_without_at]))
    assert not k.estimable and "h" in k.loo_unstable


def test_what_can_be_said_where_every_study_ci_holds_zero():
    k = _kind(answer(_table(_effects({"a": 0.2, "b": -0.3})), questions=[Question.pruning_without_at]))
    assert not k.estimable and k.can_say.startswith("no clear change in any of the 2 studies: none shows a change larger than about \u00b1")
    bound = max(max(abs(s.ci_low), abs(s.ci_high)) for s in k.per_study)
    assert f"\u00b1{bound:.0f} pp" in k.can_say


def test_a_prediction_interval_passing_both_ends_of_100_pp_is_not_given():
    k = _kind(answer(_table(_effects(_eight(-90, 80, -70, 60, -85, 75, 10, -20))), questions=[Question.pruning_without_at]))
    assert k.estimable and k.df >= 4 and k.pi_low is None and k.pi_high is None
    assert k.pi_note.startswith("no prediction interval: heterogeneity too large to predict a new setting") and k.pi_note in k.verdict


def test_a_prediction_interval_of_a_difference_of_percentages_is_truncated_at_100_pp():
    k = _kind(answer(_table(_effects(_eight(-90, -10, -70, -30, -85, -45, -60, -20))), questions=[Question.pruning_without_at]))
    assert k.estimable and k.pi_low == -100.0 and -100 < k.pi_high <= 100
    assert k.pi_note.startswith("prediction interval truncated at \u00b1100 pp") and "untruncated -12" in k.pi_note


def test_questions_outside_their_scope_and_unmeasurable_ones():
    df = _effects({"a": -5, "b": -6, "c": -4}, adv="yes")
    ans = answer(_table(df))
    by_q = {q.question: q for q in ans.questions}
    assert by_q[Question.pruning_without_at].kinds == ()  # adversarially trained rows are out of its scope
    assert by_q[Question.robust_aware_pruning].kinds[0].n_studies == 3
    assert not by_q[Question.capacity].measurable and "not assessable" in by_q[Question.capacity].verdict
    frame = ans.to_frame()
    assert list(frame["question"].unique()) == [q.value for q in Question if by_q[q].kinds]
    d = ans.to_dict()
    assert [q["question"] for q in d["questions"]] == [q.value for q in Question]


def test_cli_answer_json_on_the_seed(seeded_url):
    r = runner.invoke(app, ["meta", "answer", "--db", seeded_url, "--assume-n", "dataset", "--json", "--question", "pruning_without_at"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    q = d["questions"][0]
    assert q["question"] == "pruning_without_at" and q["kinds"]
    for k in q["kinds"]:
        assert k["n_studies"] >= 1 and k["verdict"] and set(k["kind"]) >= {"threat_model", "adversarial_training", "attack_family", "label"}
        if k["n_studies"] < 3:
            assert not k["estimable"] and k["estimate"] is None and len(k["per_study"]) == k["n_studies"]


@pytest.mark.parametrize("bad", ["nonsense"])
def test_cli_answer_refuses_an_unknown_question(seeded_url, bad):
    r = runner.invoke(app, ["meta", "answer", "--db", seeded_url, "--question", bad])
    assert r.exit_code == 2 and "nonsense" in r.stderr


def _kind(ans, q=Question.pruning_without_at):
    return _kinds(ans, q)[("white_box", "iterative gradient")]


def test_high_risk_effects_are_counted_per_kind_and_question_and_refitted_without():
    df = _effects(EIGHT, k=8)
    df["high_risk"] = False
    df.loc[[0, 1, 2, 9, 20], "high_risk"] = True  # 5 of 64 rows: 3 of study a, 1 of b, 1 of c
    uap = _effects({"a": 3, "b": 2}, attack="uap", seed=1).assign(high_risk=True)  # 12 rows, all high-risk
    ans = answer(_table(pd.concat([df, uap])), questions=[Question.pruning_without_at])
    k = _kind(ans)
    assert (k.k, k.n_high_risk) == (64, 5) and k.share_high_risk == pytest.approx(5 / 64)
    assert k.high_risk_text.startswith("5 of 64 effects (8%) rest on high-risk evaluations (weak or unknown attack")
    qa = ans.questions[0]
    assert (qa.k, qa.n_high_risk) == (76, 17) and qa.high_risk_text.startswith("17 of 76 effects (22%) rest on high-risk")
    # the refit is the same model on the 59 low-risk rows alone
    alone = _kind(answer(_table(df[~df["high_risk"]].drop(columns="high_risk")), questions=[Question.pruning_without_at]))
    w = k.without_high_risk
    assert k.estimable and w is not None and k.without_high_risk_note is None
    assert (w.k, w.n_studies) == (59, 8) and alone.k == 59
    assert w.estimate == pytest.approx(alone.estimate, rel=1e-6) and w.ci_low == pytest.approx(alone.ci_low, rel=1e-6)
    assert w.estimate != pytest.approx(k.estimate, rel=1e-6)
    assert alone.n_high_risk is None and alone.high_risk_text is None  # no rigour column: unknown, not 0
    d = k.to_dict()
    assert d["n_high_risk"] == 5 and d["without_high_risk"]["k"] == 59 and "share_high_risk" not in d  # counts stored, share derived
    text = ans.summary()
    assert "17 of 76 effects (22%) rest on high-risk evaluations" in text
    assert f"high-risk: 5 of 64 effects (8%); without them: {w.estimate:+.1f} pp" in text
    assert "high-risk: 12 of 12 effects (100%)" in text


def test_no_refit_without_high_risk_rows_when_under_3_studies_keep_a_low_risk_effect():
    df = _effects(EIGHT)
    df["high_risk"] = ~df["study"].isin(["a", "b"])
    k = _kind(answer(_table(df), questions=[Question.pruning_without_at]))
    assert k.estimable and (k.n_high_risk, k.k) == (36, 48) and k.without_high_risk is None
    assert k.without_high_risk_note == "2 studies have a low-risk effect (at least 3 needed)"
    assert k.without_high_risk_text == "no pooled number without them: 2 studies have a low-risk effect (at least 3 needed)"
    every = _kind(answer(_table(df.assign(high_risk=True)), questions=[Question.pruning_without_at]))
    assert every.n_high_risk == every.k == 48 and every.without_high_risk is None and every.without_high_risk_note == "every effect is high-risk"
    none = _kind(answer(_table(df.assign(high_risk=False)), questions=[Question.pruning_without_at]))
    assert none.n_high_risk == 0 and none.without_high_risk is None and none.without_high_risk_note is None


def test_cli_answer_text_says_how_much_rests_on_high_risk_rows(seeded_url):
    args = ["meta", "answer", "--db", seeded_url, "--assume-n", "dataset", "--question", "sparsity_level"]
    d = json.loads(runner.invoke(app, [*args, "--json"]).stdout)["questions"][0]
    n_high, k = sum(x["n_high_risk"] for x in d["kinds"]), sum(x["k"] for x in d["kinds"])
    assert 0 < n_high < k
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert f"{n_high:,} of {k:,} effects ({n_high / k:.0%}) rest on high-risk evaluations" in r.stdout


def test_controlled_replications_are_reported_beside_the_literature_never_pooled():
    lit = _effects(EIGHT)
    rep = _effects({"crev_replications": -13.0}, k=10, seed=3)
    rep["cluster"] = [f"replication:abc:seed{i % 5}" for i in range(len(rep))]
    rep["replication_json"] = [json.dumps({"seed": i % 5}) for i in range(len(rep))]
    rep["n_test"], rep["claim_uid"], rep["verdict"] = 500.0, "seed-x", "contradicts"
    ans = answer(_table(lit), questions=[Question.pruning_without_at], replications=_table(rep))
    q = ans.questions[0]
    k = _kind(ans)
    assert "crev_replications" not in {s.study for s in k.per_study} and k.n_studies == 8  # not one of the literature's studies
    (line,) = q.replications
    assert (line.k, line.n_seeds, line.n_test_min, line.n_test_max, line.claims) == (10, 5, 500, 500, ("seed-x (contradicts)",))
    assert line.ci_low < line.estimate < line.ci_high and line.estimate < -5
    assert "controlled replication (white-box, iterative gradient, without adversarial training; k = 10, 5 seeds, n_test 500)" in ans.summary()
    assert q.to_dict()["controlled_replications"][0]["claims"] == ["seed-x (contradicts)"]


def test_cli_answer_keeps_the_replications_out_of_every_literature_pool(seeded_url):
    args = ["meta", "answer", "--db", seeded_url, "--assume-n", "dataset", "--json"]
    d = json.loads(runner.invoke(app, args).stdout)
    studies = {s["study"] for q in d["questions"] for k in q["kinds"] for s in k["per_study"]}
    assert "crev_replications" not in studies and any(q["controlled_replications"] for q in d["questions"])
    pooled = json.loads(runner.invoke(app, [*args, "--source", "all"]).stdout)
    assert "crev_replications" in {s["study"] for q in pooled["questions"] for k in q["kinds"] for s in k["per_study"]}
    assert not any(q["controlled_replications"] for q in pooled["questions"])


def test_the_transfer_question_is_answered_with_transfer_evaluations_only():
    white = _effects(EIGHT)  # eight white-box studies: the baseline, not the answer
    transfer = _effects({"a": 1.0}, threat="transfer", seed=2)
    q = answer(_table(pd.concat([white, transfer])), questions=[Question.transfer]).questions[0]
    assert [(k.kind.threat_model, k.n_studies) for k in q.kinds] == [("transfer", 1)]
    (k,) = q.kinds
    assert not k.estimable and [s.study for s in k.per_study] == ["a"] and k.can_say.startswith("one study:")
    assert q.scope_note == "only transfer evaluations answer this question; white-box results on the same models are its baseline, not pooled here"
    assert q.to_dict()["scope_note"] == q.scope_note
