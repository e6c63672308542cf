"""``metaanalysis.answer`` on the shipped seed and coverage releases gives the numbers pinned in
tests/data/answers/seed_answers.json (made by make_seed_answers.py before the fitting code was
made faster): every estimate, SE, CI, PI, p-value, df and per-study estimate, and every
leave-one-out bound, within 1e-7 (relative, or absolute near 0), every verdict string and count exactly.

The verdicts follow the estimability rules of metaanalysis.answers (regenerated when the df >= 4 gate,
the leave-one-out instability rule and the +-100 pp prediction bound replaced the 3-study and sign rules).

Why 1e-7 and not 1e-8: leave-one-study-out refits start from the full fit's variance components
instead of 0.3 each. L-BFGS-B stops at its tolerance (ftol 1e-15, gtol 1e-11 on −2 log L), so
two starting points reach the same REML optimum only to that tolerance: two leave-one-out bounds
of the seed moved by 2.8e-8 relative (e.g. 6.44649998 -> 6.44650012 pp); everything else is
unchanged to 1e-8. Printed values carry 1 decimal."""

import json
import math
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data" / "answers"
sys.path.insert(0, str(DATA))

from make_seed_answers import seed_answers  # noqa: E402

TOL = 1e-7


def _diffs(a, b, path="answers"):
    if isinstance(a, dict):
        if set(a) != set(b):
            yield f"{path}: keys {sorted(set(a) ^ set(b))} differ"
            return
        for k in a:
            yield from _diffs(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        if len(a) != len(b):
            yield f"{path}: {len(a)} items pinned, {len(b)} now"
            return
        for i, (x, y) in enumerate(zip(a, b)):
            yield from _diffs(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        if not math.isclose(a, b, rel_tol=TOL, abs_tol=TOL):
            yield f"{path}: pinned {a!r}, now {b!r}"
    elif a != b:
        yield f"{path}: pinned {a!r}, now {b!r}"


def test_seed_answers_equal_the_pinned_numbers(seeded_template):
    from evidence import get_engine

    pinned = json.loads((DATA / "seed_answers.json").read_text())["answers"]
    now = json.loads(json.dumps(seed_answers(get_engine(f"sqlite:///{seeded_template}"))))
    diffs = list(_diffs(pinned, now))
    assert not diffs, f"{len(diffs)} differences (if the shipped seed or coverage release changed, rerun make_seed_answers.py):\n" + "\n".join(diffs[:20])
