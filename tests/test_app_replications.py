"""The Replications page, headless: the Seeds box and the 'seeds (as used)' row say the same thing."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def t(seeded_url, monkeypatch, tmp_path):
    monkeypatch.setenv("CREV_DB", seeded_url)
    monkeypatch.setenv("CREV_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("ui.state.PRECOMPUTE", False)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("ui/replications.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _as_used(t) -> str:
    frame = next(d.value for d in t.dataframe if "part" in d.value.columns)
    return frame.set_index("part").loc["seeds (as used)", "setting"]


def test_the_seeds_box_and_the_seeds_as_used_agree(t):
    box = next(w for w in t.number_input if w.key == "rep_seeds_quick")  # quick run: one seed, and the box says so
    assert box.value == 1 and box.disabled
    assert _as_used(t) == "1: seed 0"
    t.toggle(key="rep_quick").set_value(False).run()
    t.number_input(key="rep_seeds").set_value(3).run()
    assert not t.exception
    assert _as_used(t) == "3: seed 0, seed 1, seed 2"
