"""Vote counting of claimed directions, with a sign test.

Vote counting ignores effect sizes, precision and study quality, and its power falls as studies are
added (Hedges & Olkin 1980): it is shown apart from the effect-size synthesis and labelled as the
weaker evidence it is. It is included because most studies in the seed report no numbers the
database holds, and their claims still deserve to be counted.

The sign test compares the number of "robustness up" with "robustness down" votes under a fair
coin (exact binomial test, two-sided); neutral and mixed votes are shown but do not enter it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from scipy import stats

__all__ = ["VoteCount", "vote_count", "VOTE_CAVEAT"]

VOTE_CAVEAT = ("Vote counting: counts claimed directions only, ignoring effect sizes, precision and rigour. "
               "Weaker evidence than the effect-size synthesis; shown for completeness.")


@dataclass
class VoteCount:
    table: pd.DataFrame  # one row per question (and 'all studies'): up, down, neutral, mixed, unknown, sign-test p
    caveat: str = VOTE_CAVEAT

    def to_frame(self) -> pd.DataFrame:
        return self.table

    def summary(self) -> str:
        return self.caveat + "\n" + self.table.to_string(index=False)


def _row(label: str, directions: pd.Series) -> dict:
    counts = directions.value_counts()
    up, down = int(counts.get("up", 0)), int(counts.get("down", 0))
    p = float(stats.binomtest(up, up + down, 0.5).pvalue) if up + down > 0 else None
    return {"scope": label, "n": int(len(directions)), "up": up, "down": down, "neutral": int(counts.get("neutral", 0)),
            "mixed": int(counts.get("mixed", 0)), "unknown": int(counts.get("unknown", 0)), "sign_test_p": p}


def vote_count(studies: pd.DataFrame, claims: pd.DataFrame) -> VoteCount:
    """Votes of every study's main claim, and of the coded claims per question."""
    rows = [_row("all studies (main claim)", studies["main_direction"].astype(str))]
    for q, g in claims.groupby("question_id"):
        rows.append(_row(f"question: {q}", g["direction"].astype(str)))
    return VoteCount(pd.DataFrame(rows))
