"""The coverage release: shipped, loaded once, labelled; its annotated cells parsed with the text kept."""

from __future__ import annotations

import csv
import math

import pytest
import sqlalchemy as sa

from evidence import (
    ResultFilter,
    ValidationFailed,
    get_engine,
    import_results,
    init_database,
    load_seed,
    loaded_releases,
    preview_import,
    query_results,
    shipped_releases,
    stats,
)
from evidence.db import upgrade_schema
from evidence.models import Claim, Result, Study, Submission
from evidence.seed import releases_dir
from tests.helpers import result_row, shipped_counts, shipped_release_names, write_rows

COVERAGE = "coverage-2026.11"
COVERAGE_CSV = releases_dir() / COVERAGE / "results.csv"


def test_a_fresh_database_holds_every_shipped_release(seeded):
    s = stats(seeded)
    assert s.studies >= 45 and s.results >= 8714 and s.studies_with_results >= 14  # issue 9's floor
    shipped = shipped_counts()  # counted from the release files: a new release moves these, not the floor
    assert (s.studies, s.results, s.studies_with_results) == (shipped.studies, shipped.results, shipped.studies_with_results)
    by = {r.release: (r.studies, r.claims, r.results) for r in s.by_release}
    assert by["seed-2025.1"] == (40, 43, 8349) and by[COVERAGE] == (5, 0, 365)
    assert by == {name: (c.studies, c.claims, c.results) for name in shipped_release_names() for c in [shipped_counts([name])]}
    assert s.to_dict()["by_release"][COVERAGE] == {"studies": 5, "claims": 0, "results": 365}


def test_every_row_records_its_release(seeded):
    with seeded.connect() as conn:
        for table in (Study, Claim, Result):
            t = table.__table__
            assert conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.release == "")).scalar_one() == 0
    cov = query_results(seeded, ResultFilter(releases=[COVERAGE]))
    assert len(cov) == 365 and set(cov["created_by"]) == {"coverage"}
    assert cov["study_id"].value_counts()["fu_2021_doublewinquant"] == 102


def test_shipped_releases_are_read_in_order():
    names = [r.name for r in shipped_releases()]
    assert names[:2] == ["seed-2025.1", COVERAGE]
    assert all(r.approved for r in shipped_releases())


def test_annotated_cells_are_parsed_and_the_whole_text_kept(seeded):
    cov = query_results(seeded, ResultFilter(releases=[COVERAGE]))
    printed = cov[cov["epsilon_text"] == "8/255 (as printed)"]
    assert len(printed) == 16 and (printed["epsilon"] == 8 / 255).all()
    eeg = cov[cov["epsilon_text"] == "0.005 (standardized input)"]
    assert len(eeg) == 7 and (eeg["epsilon"] == 0.005).all()
    garbled = cov[cov["provenance_text"] == "yes (table text partly garbled in the markdown conversion)"]
    assert len(garbled) == 70 and set(garbled["provenance"]) == {"verbatim"}
    assert (cov["provenance_text"] == "yes (secondhand copy)").sum() == 1
    restarts = cov[cov["steps_text"] == "20 (x10 restarts)"]
    assert len(restarts) == 20 and (restarts["steps"] == 20).all()
    random_precision = cov[cov["compression_level_text"] == "random precision (4~16-bit per README)"]
    assert len(random_precision) == 32 and random_precision["bits"].isna().all() and random_precision["sparsity"].isna().all()
    assert cov["n_test"].isna().all()  # no n_test anywhere in this batch: not invented


def test_the_coverage_file_imports_as_shipped_through_the_csv_import(tmp_path):
    engine, _ = init_database(f"sqlite:///{tmp_path / 'only_seed.db'}", load=False)
    load_seed(engine)
    # the five new studies first (the CSV import takes results for known studies only)
    from evidence import add_study

    with open(releases_dir() / COVERAGE / "studies.csv", newline="", encoding="utf-8") as fh:
        for raw in csv.DictReader(fh):
            add_study(engine, {"study": raw}, by="curator")
    report = preview_import(engine, COVERAGE_CSV)
    assert not report.written and report.results == 365
    before = stats(engine).results
    assert before == 8349
    report = import_results(engine, COVERAGE_CSV, by="curator")
    assert report.written and report.results == 365 and report.rows_read == 365
    assert report.annotated["verbatim_check"] == {
        "yes (table text partly garbled in the markdown conversion)": 70, "yes (secondhand copy)": 1,
    }
    assert report.annotated["epsilon"] == {"8/255 (as printed)": 16, "0.005 (standardized input)": 7}
    text = report.to_text()
    assert "'yes (secondhand copy)' ×1" in text and "'8/255 (as printed)' ×16" in text
    assert sum(report.annotated["verbatim_check"].values()) + sum(report.annotated["epsilon"].values()) == 94


@pytest.mark.parametrize(
    "overrides, column, reason",
    [
        ({"epsilon": "abc"}, "epsilon", "epsilon 'abc' is not a number or a fraction"),
        ({"epsilon": "-8/255 (as printed)"}, "epsilon", "is negative"),
        ({"robust_acc_compressed": "120"}, "robust_acc_compressed", "accuracy 120 is outside [0, 100]"),
        ({"robust_acc_compressed": "120 (as printed)"}, "robust_acc_compressed", "accuracy 120 is outside [0, 100]"),
        ({"verbatim_check": "maybe (secondhand copy)"}, "verbatim_check", "is not yes (verbatim), no (derived) or replication"),
        ({"n_test": "many (not stated)"}, "n_test", "is not a whole number"),
    ],
)
def test_what_cannot_be_parsed_is_refused_with_row_column_and_reason(seeded, tmp_path, overrides, column, reason):
    path = write_rows(tmp_path / "bad.csv", [result_row(source_location="ok"), result_row(**overrides)])
    with pytest.raises(ValidationFailed) as err:
        preview_import(seeded, path)
    assert any(p.row == 2 and p.column == column and reason in p.reason for p in err.value.problems), err.value.problems
    with pytest.raises(ValidationFailed):
        import_results(seeded, path)
    assert query_results(seeded, ResultFilter(status="pending")).empty


def test_an_annotated_accuracy_keeps_its_text_in_the_notes(seeded, tmp_path):
    path = write_rows(tmp_path / "note.csv", [result_row(robust_acc_compressed="48.5 (read off Fig. 3)", notes="n")])
    report = import_results(seeded, path, by="ann")
    assert report.annotated["robust_acc_compressed"] == {"48.5 (read off Fig. 3)": 1}
    row = query_results(seeded, ResultFilter(status="pending")).iloc[0]
    assert row["robust_acc_compressed"] == 48.5
    assert row["notes"] == "n; robust_acc_compressed as written: '48.5 (read off Fig. 3)'"


def test_an_upgraded_database_gets_the_releases_after_the_seed_once_and_its_seed_labelled(empty_url):
    engine = get_engine(empty_url)
    upgrade_schema(engine)
    load_seed(engine)
    with engine.begin() as conn:  # a seed loaded before releases existed carries no label
        for table in (Submission, Study, Claim, Result):
            conn.execute(sa.update(table.__table__).values(release=""))
        conn.execute(sa.update(Submission.__table__).values(kind="seed"))
    engine, result = init_database(empty_url)
    after_seed = [r.name for r in shipped_releases() if r.name != "seed-2025.1"]
    assert COVERAGE in after_seed
    assert [r.source.split()[1] for r in result.release_reports] == after_seed  # each once, in order, the seed not again
    assert loaded_releases(engine) == shipped_release_names()
    s = stats(engine)
    assert s.studies >= 45 and s.results >= 8714
    shipped = shipped_counts()
    assert (s.studies, s.results) == (shipped.studies, shipped.results)
    assert {r.release for r in s.by_release} == shipped_release_names()
    _, again = init_database(empty_url)
    assert again.release_reports == []
    assert stats(engine).results == shipped.results


def test_coverage_accuracies_are_finite_percentages(seeded):
    cov = query_results(seeded, ResultFilter(releases=[COVERAGE]))
    for col in ("clean_acc_dense", "robust_acc_dense", "clean_acc_compressed", "robust_acc_compressed"):
        vals = cov[col].dropna()
        assert all(math.isfinite(v) and 0 <= v <= 100 for v in vals)
    kundu = cov[cov["study_id"] == "kundu_2021_dnr"].iloc[0]
    assert (kundu["clean_acc_compressed"], kundu["robust_acc_compressed"]) == (87.32, 40.41)
    assert math.isnan(kundu["robust_acc_dense"])  # no dense baseline: null, never zero
