"""Export then import gives back the same data."""

import io

import pandas as pd

from evidence import approve, export_results, get_engine, import_results, load_releases, query_results
from evidence.db import upgrade_schema
from tests.helpers import shipped_counts

COMPARE = [
    "study_id", "dataset", "architecture", "compression_family", "compression_method", "compression_level_text", "sparsity",
    "bits", "adversarial_training", "attack", "norm", "epsilon", "epsilon_text", "steps", "threat_model",
    "clean_acc_dense", "robust_acc_dense", "clean_acc_compressed", "robust_acc_compressed", "n_test", "provenance",
    "url_or_path", "source_location", "notes", "cluster", "warnings",
]


def test_export_then_import_gives_back_the_same_results(seeded, tmp_path):
    csv_bytes = export_results(seeded, "csv")
    path = tmp_path / "export.csv"
    path.write_bytes(csv_bytes)
    fresh = get_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    upgrade_schema(fresh)
    load_releases(fresh, results=False)  # the studies and claims of every shipped release, no results
    report = import_results(fresh, path, by="roundtrip")
    assert report.rows_read >= 8714 and report.rows_read == shipped_counts().results  # every shipped row
    approve(fresh, report.submission_id, by="second curator")
    a = query_results(seeded)[COMPARE].sort_values(COMPARE[:16]).reset_index(drop=True)
    b = query_results(fresh)[COMPARE].sort_values(COMPARE[:16]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert export_results(fresh, "csv") == csv_bytes or sorted(export_results(fresh, "csv").splitlines()) == sorted(csv_bytes.splitlines())


def test_json_and_parquet_exports_hold_every_row(seeded):
    js = pd.read_json(io.BytesIO(export_results(seeded, "json")))
    pq = pd.read_parquet(io.BytesIO(export_results(seeded, "parquet")))
    assert len(js) == len(pq) == shipped_counts().results >= 8714
    assert list(pq.columns)[:3] == ["study_id", "source_location", "dataset"]
