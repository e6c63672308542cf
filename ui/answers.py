"""The per-question answers the Overview shows, as typed cards.

When :func:`metaanalysis.answer` is available (the meta issue's per-question, per-evaluation-kind
answers) the cards are read from it. Until then each card is computed here from the public API: the
question's scope (``evidence.Question.scope``) as a result filter, the default multilevel model of
:func:`metaanalysis.run_analysis` over it, the share of effects that rest on the largest study and
on high-risk rows. Below 3 studies a card says the question is not estimable as one number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy.engine import Engine

import evidence as ev
import metaanalysis as ma

__all__ = ["AnswerCard", "answer_cards", "MIN_STUDIES"]

MIN_STUDIES = 3


@dataclass
class AnswerCard:
    question_id: str
    text: str
    measurable: bool
    claims: dict[str, int] = field(default_factory=dict)  # direction -> number of coded claims
    k: int = 0
    n_studies: int = 0
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    pval: float | None = None
    pi_low: float | None = None
    pi_high: float | None = None
    top_study: str = ""
    top_study_effects: int = 0
    high_risk_effects: int = 0
    per_study: pd.DataFrame | None = None
    verdict: str = ""
    model: str = ""


def _scope_filter(q: ev.Question) -> ev.ResultFilter:
    s = q.scope
    return ev.ResultFilter(families=list(s.families), adversarial_training=list(s.adversarial_training),
                           threat_models=list(s.result_threat_models()))


def answer_cards(engine: Engine, settings: ma.EffectSettings, claims: pd.DataFrame) -> list[AnswerCard]:
    """One card per disputed question over the approved evidence ("it depends on" comes from the
    contradiction report, which the page reads when it is ready)."""
    cards = []
    for q in ev.Question:
        cl = claims[claims["question_id"] == q.value] if len(claims) else claims
        card = AnswerCard(q.value, q.text, q.scope.measurable, claims={str(k): int(v) for k, v in cl["direction"].value_counts().items()})
        if not q.scope.measurable:
            card.verdict = "No result in the database measures this; only the studies' claims speak to it."
            cards.append(card)
            continue
        table = ma.compute_effects(ev.query_results(engine, _scope_filter(q)), settings)
        eff = table.effects
        card.k = len(eff)
        card.n_studies = int(eff["study"].nunique()) if len(eff) else 0
        if len(eff):
            counts = eff["study"].value_counts()
            card.top_study, card.top_study_effects = str(counts.index[0]), int(counts.iloc[0])
            card.high_risk_effects = int(eff["high_risk"].sum()) if "high_risk" in eff else 0
        if card.n_studies < MIN_STUDIES:
            card.verdict = (f"Not estimable as one number: {card.n_studies} stud{'y' if card.n_studies == 1 else 'ies'} with numbers "
                            f"(at least {MIN_STUDIES} are needed); see each study's own estimate.")
            if len(eff) >= 1:
                try:
                    card.per_study = ma.per_study(table, ma.AnalysisSpec())
                except ma.MetaInputError:
                    card.per_study = None
            cards.append(card)
            continue
        try:
            an = ma.run_analysis(table, ma.AnalysisSpec())
        except ma.MetaInputError as exc:
            card.verdict = f"Not estimable as one number: {exc}."
            cards.append(card)
            continue
        c = an.fit.coefficients[0]
        card.estimate, card.ci_low, card.ci_high, card.pval = c.estimate, c.ci_low, c.ci_high, c.pval
        card.pi_low, card.pi_high = an.fit.pi_low, an.fit.pi_high
        card.model = f"{an.fit.model}, {an.fit.method}"
        word = "lower" if c.ci_high < 0 else "higher" if c.ci_low > 0 else "not clearly different"
        card.verdict = f"Robust accuracy after compression is {word} than before."
        if card.pi_low is not None and card.pi_low < 0 < card.pi_high:
            card.verdict += " A new setting could go either way (the prediction interval spans zero)."
        cards.append(card)
    return cards
