"""CSV import: every validation error names file, row, column and reason, and writes nothing."""

import sqlalchemy as sa
import pytest

from evidence import ResultFilter, ValidationFailed, count_results, import_results, query_results
from evidence.models import Result, Submission
from tests.helpers import result_row, write_rows


def _snapshot(engine):
    with engine.connect() as conn:
        return (
            conn.execute(sa.select(sa.func.count()).select_from(Result.__table__)).scalar_one(),
            conn.execute(sa.select(sa.func.count()).select_from(Submission.__table__)).scalar_one(),
        )


@pytest.mark.parametrize(
    "overrides, column, reason",
    [
        ({"robust_acc_compressed": "101"}, "robust_acc_compressed", "accuracy 101 is outside [0, 100]"),
        ({"clean_acc_dense": "-1"}, "clean_acc_dense", "accuracy -1 is outside [0, 100]"),
        ({"clean_acc_dense": "high"}, "clean_acc_dense", "clean_acc_dense 'high' is not a number"),
        ({"epsilon": "eight"}, "epsilon", "epsilon 'eight' is not a number or a fraction"),
        ({"epsilon": "-8/255"}, "epsilon", "epsilon '-8/255' is negative"),
        ({"compression_level": "1.2"}, "compression_level", "sparsity '1.2' is outside [0, 1)"),
        ({"compression_level": "0-bit"}, "compression_level", "bit width '0-bit' is below 1"),
        ({"study_id": "nobody_2099_nothing"}, "study_id", "unknown study id 'nobody_2099_nothing'"),
        ({"dataset": ""}, "dataset", "required field is missing"),
        ({"url_or_path": ""}, "url_or_path", "required field is missing"),
    ],
)
def test_bad_row_is_reported_and_nothing_written(seeded, tmp_path, overrides, column, reason):
    before = _snapshot(seeded)
    path = write_rows(tmp_path / "in.csv", [result_row(source_location="ok row"), result_row(**overrides)])
    with pytest.raises(ValidationFailed) as err:
        import_results(seeded, path, by="tester")
    problems = err.value.problems
    assert any(p.row == 2 and p.column == column and reason in p.reason and p.file == str(path) for p in problems), problems
    assert f"row 2, column {column}: " in str(err.value)
    assert _snapshot(seeded) == before


def test_duplicate_of_existing_result_is_rejected(seeded, tmp_path):
    seed_row = query_results(seeded, ResultFilter(study_ids=["sehwag_2020_hydra"])).iloc[0]
    from evidence import to_interchange

    dup = to_interchange(seed_row.to_frame().T).iloc[0].to_dict()
    before = _snapshot(seeded)
    path = write_rows(tmp_path / "dup.csv", [dup])
    with pytest.raises(ValidationFailed, match="row 1: duplicate of an existing result"):
        import_results(seeded, path, by="tester")
    assert _snapshot(seeded) == before


def test_duplicate_within_file_is_rejected(seeded, tmp_path):
    path = write_rows(tmp_path / "dup2.csv", [result_row(), result_row()])
    with pytest.raises(ValidationFailed, match="row 2: duplicate of row 1 in this file"):
        import_results(seeded, path)


def test_wrong_columns_and_not_csv(seeded, tmp_path):
    before = _snapshot(seeded)
    bad = tmp_path / "cols.csv"
    bad.write_text("study_id,accuracy\nx,1\n")
    with pytest.raises(ValidationFailed) as err:
        import_results(seeded, bad)
    reasons = {(p.column, p.reason) for p in err.value.problems}
    assert ("dataset", "required column is missing") in reasons
    assert ("accuracy", "unknown column (see `crev evidence template`)") in reasons
    xlsx = tmp_path / "data.xlsx"
    xlsx.write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(ValidationFailed, match="not a CSV file"):
        import_results(seeded, xlsx)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ValidationFailed, match="not a CSV file"):
        import_results(seeded, binary)
    assert _snapshot(seeded) == before


def test_every_problem_of_every_row_is_listed(seeded, tmp_path):
    path = write_rows(tmp_path / "many.csv", [result_row(epsilon="x"), result_row(clean_acc_dense="200", n_test="0")])
    with pytest.raises(ValidationFailed) as err:
        import_results(seeded, path)
    where = {(p.row, p.column) for p in err.value.problems}
    assert where == {(1, "epsilon"), (2, "clean_acc_dense"), (2, "n_test")}


def test_warnings_are_written_and_flagged(seeded, tmp_path):
    path = write_rows(
        tmp_path / "warn.csv",
        [result_row(robust_acc_compressed="85", source_location="w1"), result_row(epsilon="0.6", source_location="w2")],
    )
    report = import_results(seeded, path, by="tester")
    assert len(report.warnings) == 2
    df = query_results(seeded, ResultFilter(status="pending"))
    assert len(df) == 2
    assert "robust accuracy above clean accuracy (compressed model: 85 > 81)" in set(df["warnings"])
    assert "Linf epsilon 0.6 is above 0.5 on the [0, 1] pixel scale" in set(df["warnings"])


def test_import_is_pending_until_approved(seeded, tmp_path):
    from evidence import approve

    base = count_results(seeded)
    report = import_results(seeded, write_rows(tmp_path / "ok.csv", [result_row()]), by="alice")
    assert count_results(seeded) == base
    assert count_results(seeded, ResultFilter(status="pending")) == 1
    approve(seeded, report.submission_id, by="curator")
    assert count_results(seeded) == base + 1


# --------------------------------------------------------------------------- reference lists -> study stubs

BIB = r"""
@inproceedings{sehwag2020hydra,
  title = {{HYDRA}: Pruning Adversarially Robust Neural Networks},
  author = {Sehwag, Vikash and Wang, Shiqi and Mittal, Prateek and Jana, Suman},
  booktitle = {NeurIPS}, year = {2020}, eprint = {2002.10509}, archivePrefix = {arXiv}}
@article{ozturk2026sparse,
  title = {Sparse and Robust: {A} Study of Pruned Transformers},
  author = {{\"O}zt{\"u}rk, Ay{\c{s}}e and Doe, John},
  journal = {TMLR}, year = {2026}, doi = {10.5555/tmlr.2026.42}}
@misc{notitle2024, author = {Nobody, N.}, year = {2024}}
@article{broken, title = {Unclosed
"""


def test_a_bibtex_list_becomes_study_stubs_pending_review(seeded, tmp_path):
    from evidence import list_studies
    from evidence.importers import BibtexImporter

    path = tmp_path / "refs.bib"
    path.write_text(BIB, encoding="utf-8")
    report = BibtexImporter().run(seeded, path, by="curator")
    stubs = list_studies(seeded, status="pending").set_index("study_id")
    assert list(stubs.index) == ["ozturk_2026_sparse"]
    s = stubs.loc["ozturk_2026_sparse"]
    assert (s["title"], s["year"], s["venue"], s["identifier"]) == ("Sparse and Robust: A Study of Pruned Transformers", 2026, "TMLR", "10.5555/tmlr.2026.42")
    assert s["compression_kind"] == "other" and s["review_status"] == "pending"
    skipped = "\n".join(report.skipped)
    assert "@inproceedings{sehwag2020hydra}: already in the database as 'sehwag_2020_hydra'" in skipped
    assert "@misc{notitle2024}: no title" in skipped
    assert "not valid BibTeX" in skipped


def test_a_doi_list_becomes_stubs_and_says_which_need_a_title(seeded, tmp_path):
    from evidence import list_studies
    from evidence.importers import BibtexImporter

    path = tmp_path / "dois.txt"
    path.write_text("# reference list\n10.1000/xyz123\thttps://doi.org/ style\nhttps://doi.org/10.1000/abc-9\nnot-a-doi\n10.1000/xyz123\n")
    report = BibtexImporter().run(seeded, path, by="curator")
    stubs = list_studies(seeded, status="pending")
    assert sorted(stubs["identifier"]) == ["doi:10.1000/abc-9", "doi:10.1000/xyz123"]
    assert "DOI 10.1000/abc-9" in set(stubs["title"])
    assert any("no title given for 10.1000/abc-9" in w for w in report.warnings)
    assert "line 4: 'not-a-doi' is not a DOI" in "\n".join(report.skipped)
    assert "line 5: the same identifier appears earlier in this file" in "\n".join(report.skipped)


# --------------------------------------------------------------------------- the one write path


def test_submit_validates_a_dict_on_the_create_models_and_writes_nothing_on_error(seeded):
    from evidence import SubmissionCreate, count_results, submit

    before = _snapshot(seeded)
    stats_before = count_results(seeded)
    bad = {"kind": "import_results", "submitted_by": "ann",
           "results": [{"study_id": "sehwag_2020_hydra", "compression_family": "quantization", "robust_acc_compressed": 120}]}
    with pytest.raises(ValidationFailed) as err:
        submit(seeded, bad)
    assert [(p.column, p.reason) for p in err.value.problems] == [("robust_acc_compressed", "accuracy 120 is outside [0, 100] (percent)")]
    with pytest.raises(ValidationFailed, match="unknown study id 'nobody_2099_x'"):
        submit(seeded, SubmissionCreate(kind="import_results", results=[{"study_id": "nobody_2099_x", "compression_family": "quantization"}]))
    with pytest.raises(ValidationFailed, match="holds no study, claim or result"):
        submit(seeded, SubmissionCreate(kind="add_study"))
    assert _snapshot(seeded) == before
    sub = submit(seeded, SubmissionCreate(
        kind="replication", submitted_by="runner",
        results=[{"study_id": "sehwag_2020_hydra", "compression_family": "quantization", "n_test": 200,
                  "n_robust_correct_compressed": 77, "n_robust_correct_dense": 80, "n_robust_dense_only": 9,
                  "n_robust_compressed_only": 6, "attack": "pgd_pp", "attack_queries": None}],
    ))
    row = query_results(seeded, ResultFilter(status="pending")).iloc[0]
    assert sub.status == "pending" and row["submission_id"] == sub.id and row["release"] == ""
    assert row["robust_acc_compressed"] == 38.5 and row["robust_acc_dense"] == 40.0 and row["attack"] == "pgd_pp"
    assert count_results(seeded) == stats_before  # pending: not counted until approved


def test_a_correction_through_submit_needs_an_existing_entry(seeded):
    from evidence import SubmissionCreate, submit

    with pytest.raises(ValidationFailed, match="no approved entry with uid 'nope'"):
        submit(seeded, SubmissionCreate(kind="correction", results=[{"uid": "nope", "study_id": "sehwag_2020_hydra", "compression_family": "other"}]))
    with pytest.raises(ValidationFailed, match="no approved study 'nobody_2099_x' to correct"):
        submit(seeded, SubmissionCreate(kind="correction", studies=[{"study_id": "nobody_2099_x", "title": "x"}]))
    uid = query_results(seeded, ResultFilter(study_ids=["sen_2020_empir"]))["uid"].iloc[0]
    from evidence import propose_correction

    sub = propose_correction(seeded, "result", uid, {"notes": "re-read"}, by="ann")
    rows = query_results(seeded, ResultFilter(status="all", study_ids=["sen_2020_empir"]))
    versions = rows[rows["uid"] == uid].sort_values("version")
    assert list(versions["version"]) == [1, 2] and list(versions["current"]) == [True, False]
    assert versions.iloc[1]["submission_id"] == sub.id and versions.iloc[1]["notes"] == "re-read"


def test_a_row_with_a_stored_results_study_and_accuracies_is_reported_as_a_near_duplicate(seeded, tmp_path):
    """Issue 23: same study and numbers, another source location: written, and listed (typed) for the curator."""
    import sqlalchemy as sa

    from evidence import NearDuplicate, preview_import
    from tests.helpers import result_row, write_rows

    with seeded.connect() as conn:
        uid, clean, robust = conn.execute(sa.text(
            "SELECT uid, clean_acc_compressed, robust_acc_compressed FROM result WHERE current AND study_id = 'sehwag_2020_hydra' "
            "AND robust_acc_compressed IS NOT NULL AND clean_acc_compressed IS NOT NULL ORDER BY id LIMIT 1")).one()
    path = write_rows(tmp_path / "n.csv", [result_row(source_location="Table 99 (copied)", clean_acc_compressed=str(clean),
                                                      robust_acc_compressed=str(robust)),
                                           result_row(source_location="Table 98", robust_acc_compressed="1.25")])
    report = preview_import(seeded, path)
    assert [(d.row, d.stored_uid) for d in report.near_duplicates] == [(1, uid)]
    assert isinstance(report.near_duplicates[0], NearDuplicate) and "sehwag_2020_hydra" in report.near_duplicates[0].reason
    assert "near-duplicates" in report.to_text() and report.to_dict()["near_duplicates"][0]["stored_uid"] == uid


def test_bibtex_string_concatenation_is_resolved_not_stored_verbatim(seeded, tmp_path):
    """Issue 23: ``title = "Robust " # tmlr # {Pruning}`` was stored with its quotes and ``#``."""
    from evidence import list_studies
    from evidence.importers import BibtexImporter

    path = tmp_path / "cat.bib"
    path.write_text('@string{tmlr = "Sparse"}\n'
                    '@article{cat2026, title = "Robust " # tmlr # { Pruning}, author = {Doe, Jane}, year = 2026, journal = tmlr}\n'
                    '@article{sharp2026, title = {C# for robust nets}, author = {Roe, Ann}, year = 2026, journal = {J}}\n'
                    '@article{undef2026, title = "Quantized " # nomacro, author = {Poe, Al}, year = 2026, journal = {J}}\n', encoding="utf-8")
    report = BibtexImporter().run(seeded, path, by="curator")
    titles = set(list_studies(seeded, status="pending")["title"])
    assert {"Robust Sparse Pruning", "C# for robust nets", "Quantized nomacro"} <= titles
    assert any("nomacro" in w and "not defined" in w for w in report.warnings)
