"""The shipped releases' controlled values survive export and import, and replication rows say how
their models were trained (a text the parser cannot read would silently become "unknown")."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from evidence import ResultFilter, query_results
from evidence.export import to_interchange
from evidence.parsing import parse_adv_training, parse_attack, parse_norm, parse_threat_model
from evidence.vocab import AdvTraining, Attack, ThreatModel

RELEASES = Path(__file__).resolve().parents[1] / "evidence" / "data" / "releases"
PARSERS = {
    "adversarial_training": parse_adv_training,
    "attack": parse_attack,
    "norm": parse_norm,
    "threat_model": parse_threat_model,
}


def test_every_replication_row_records_whether_its_model_was_adversarially_trained():
    with open(RELEASES / "replication-2026.11" / "results.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows
    assert {parse_adv_training(r["adversarial_training"]) for r in rows} <= {AdvTraining.yes, AdvTraining.no}
    assert ThreatModel.unknown not in {parse_threat_model(r["threat_model"]) for r in rows}
    assert Attack.other not in {parse_attack(r["attack"]) for r in rows}


@pytest.mark.parametrize("column", sorted(PARSERS))
def test_exported_controlled_values_read_back_to_the_stored_value(seeded, column):
    df = query_results(seeded, ResultFilter(status="all"))
    out = to_interchange(df)
    parse = PARSERS[column]
    back = out[column].map(lambda t: parse(t).value)
    stored = df[column].map(lambda v: getattr(v, "value", v))
    mismatched = df.loc[back != stored, ["study_id", column]]
    assert mismatched.empty, mismatched.head()


def test_a_text_the_parser_reads_elsewhere_is_exported_with_its_value_in_front(seeded):
    df = query_results(seeded, ResultFilter(status="all")).head(1).copy()
    df["adversarial_training"] = AdvTraining.no
    df["adversarial_training_text"] = "standard training"
    assert to_interchange(df)["adversarial_training"].iloc[0] == "no (standard training)"
