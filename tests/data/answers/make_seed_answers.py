"""Regenerate seed_answers.json: the numbers `metaanalysis.answer` gives on the shipped seed and
coverage releases (rows of other releases left out, so a new release does not move them).

Run from the repository root: ``python tests/data/answers/make_seed_answers.py``. The file pins the
answers so that speed work on the fitting code is shown not to change them
(tests/test_meta_answers_pinned.py). Fields added later (``n_high_risk``, ``without_high_risk`` and
``without_high_risk_note``) were merged into the file from this script's output, leaving the numbers
pinned before the speed work as they were (the test's tolerance says why they may differ at 1e-8).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

RELEASES = ("seed-2025.1", "coverage-2026.11")
OUT = Path(__file__).with_name("seed_answers.json")


def seed_answers(engine) -> dict:
    from evidence import query_results
    from metaanalysis import EffectSettings, answer, compute_effects

    res = query_results(engine)
    res = res[res["release"].isin(RELEASES)].reset_index(drop=True)
    return answer(compute_effects(res, EffectSettings(assume_n="dataset"))).to_dict()


def main() -> None:
    from evidence import init_database

    with tempfile.TemporaryDirectory() as d:
        engine, _ = init_database(f"sqlite:///{Path(d) / 'seed.db'}")
        data = seed_answers(engine)
        engine.dispose()
    OUT.write_text(json.dumps({"releases": list(RELEASES), "answers": data}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
