"""crev meta answer: one answer per question and evaluation kind, never one number for
incomparable evaluations; below 3 studies or on a leave-one-out sign flip, per-study estimates."""

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


def test_each_evaluation_kind_is_pooled_apart():
    pgd = _effects({"a": -5, "b": -6, "c": -4, "d": -5.5})
    uap = _effects({"a": 3, "b": 2}, attack="uap", seed=1)
    ans = answer(_table(pd.concat([pgd, uap])), questions=[Question.pruning_without_at])
    kinds = _kinds(ans, Question.pruning_without_at)
    assert set(kinds) == {("white_box", "iterative gradient"), ("white_box", "universal perturbation")}
    k = kinds[("white_box", "iterative gradient")]
    assert k.estimable and k.n_studies == 4 and k.k == 24
    assert k.ci_low < k.estimate < k.ci_high and k.pi_low <= k.ci_low and k.ci_high <= k.pi_high
    assert k.test == "CR2" and k.df < 4  # df from the 4 studies, not from 24 effects
    assert k.loo_low <= k.estimate <= k.loo_high and "4 studies" in k.verdict and "lower" in k.verdict
    u = kinds[("white_box", "universal perturbation")]
    assert not u.estimable and u.estimate is None and "not estimable as one number: 2 studies" in u.verdict
    assert [s.study for s in u.per_study] == ["a", "b"] and all(s.estimate > 0 for s in u.per_study)


def test_a_leave_one_out_sign_flip_is_not_one_number():
    df = _effects({"a": 0.5, "b": 0.4, "c": 0.6, "big": -40})
    k = _kinds(answer(_table(df), questions=[Question.pruning_without_at]), Question.pruning_without_at)[("white_box", "iterative gradient")]
    assert k.loo_sign_flip and not k.estimable
    assert "leaving out big flips the sign" in k.verdict and len(k.per_study) == 4


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
