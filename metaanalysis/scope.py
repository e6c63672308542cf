"""A question's scope as a row filter: the one place that turns :class:`evidence.vocab.QuestionScope`
into the effects (or results) that bear on a question. The answers, the contradiction report and the
app all read a question's rows through :func:`question_rows`."""

from __future__ import annotations

import pandas as pd

from evidence.vocab import Question

__all__ = ["question_rows"]


def question_rows(frame: pd.DataFrame, q: Question, *, baseline: bool = True) -> pd.DataFrame:
    """The rows of ``frame`` (effects or results) within ``q``'s scope: its compression families,
    adversarial-training conditions and threat models (an empty condition means any). ``baseline``
    also keeps the comparison results the scope names (white-box attacks beside transfer ones);
    ``baseline=False`` keeps the question's own threat models only. The index is kept."""
    sc = q.scope
    mask = pd.Series(True, index=frame.index)
    threats = sc.result_threat_models() if baseline else sc.threat_models
    for col, values in (("compression_family", sc.families), ("adversarial_training", sc.adversarial_training), ("threat_model", threats)):
        if values:
            mask &= frame[col].astype(str).isin([str(v) for v in values])
    return frame[mask]
