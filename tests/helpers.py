"""Small builders for test inputs."""

from __future__ import annotations

import csv
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
