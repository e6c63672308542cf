"""Small builders for test inputs."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from evidence.rows import RESULT_COLUMNS


def result_row(**overrides) -> dict:
    """A valid results-CSV row for the seeded study ``sehwag_2020_hydra``."""
    row = {
        "study_id": "sehwag_2020_hydra",
        "source_location": "Table 9 (test)",
        "dataset": "CIFAR-10",
        "architecture": "VGG-16",
        "compression_method": "magnitude unstructured pruning",
        "compression_level": "0.80",
        "adversarial_training": "yes",
        "attack": "PGD",
        "norm": "Linf",
        "epsilon": "8/255",
        "attack_steps": "10",
        "threat_model": "white-box",
        "clean_acc_dense": "82.5",
        "robust_acc_dense": "50.0",
        "clean_acc_compressed": "81.0",
        "robust_acc_compressed": "48.0",
        "n_test": "10000",
        "verbatim_check": "yes",
        "url_or_path": "https://example.org/paper",
        "notes": "",
    }
    row.update(overrides)
    return row


def write_rows(path: Path, rows: list[dict], columns=RESULT_COLUMNS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns))
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in columns})
    return path


@dataclass(frozen=True)
class ShippedCounts:
    """Rows in the CSV files of shipped releases, counted from the files themselves (not from the
    database) so a test can pin a database's totals exactly and still follow a new release."""

    studies: int
    claims: int
    results: int
    studies_with_results: int

    def to_dict(self) -> dict[str, int]:
        return {"studies": self.studies, "claims": self.claims, "results": self.results}


def _csv_rows(path: Path) -> list[dict]:
    if not path.exists():  # a release may ship results for known studies only (no studies.csv/claims.csv)
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def shipped_counts(names: list[str] | None = None) -> ShippedCounts:
    """Counts over the shipped releases named (default: all of them, as a fresh database loads them)."""
    from evidence.seed import releases_dir, shipped_releases

    releases = [r.name for r in shipped_releases()] if names is None else names
    studies = claims = results = 0
    with_results: set[str] = set()
    for name in releases:
        folder = releases_dir() / name
        assert (folder / "release.toml").exists(), f"no shipped release {name!r}"
        studies += len(_csv_rows(folder / "studies.csv"))
        claims += len(_csv_rows(folder / "claims.csv"))
        rows = _csv_rows(folder / "results.csv")
        results += len(rows)
        with_results |= {r["study_id"] for r in rows}
    return ShippedCounts(studies, claims, results, len(with_results))


def shipped_release_names() -> set[str]:
    from evidence.seed import shipped_releases

    return {r.name for r in shipped_releases()}
