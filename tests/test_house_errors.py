"""Errors that do not hide bugs (issue 20, item 3): only the project's typed user errors become a one-line
``error: ...`` with exit status 2 in the CLIs; any other exception (a ValueError from numpy, pandas or
torch) is a bug and keeps its traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from crev_cli import app
from evidence import EvidenceError, UnknownValue
from evidence.vocab import CompressionFamily, coerce
from metaanalysis import MetaInputError
from replicate import DatasetError, ReplicateError, SpecError
from replicate.jobs.executors import ClusterError
from replicate.train.device import DeviceError

runner = CliRunner()

TINY = """
id = "tiny-errors"
model = "mlp"
seeds = [0]
checks = false
[claim]
question_id = "pruning_without_at"
study = "wang_2018_prunedrobustness"
direction = "down"
[data]
name = "digits"
n_test = 60
[train]
epochs = 1
[[compression]]
kind = "prune"
levels = [0.5]
[[attacks]]
name = "pgd"
eps = [0.05]
steps = 2
"""


@pytest.mark.parametrize("error", [SpecError, DatasetError, DeviceError, ClusterError])
def test_each_replicate_user_error_is_a_replicate_error_and_still_a_value_error(error):
    assert issubclass(error, ReplicateError) and issubclass(error, ValueError)


def test_an_unknown_vocabulary_value_is_a_typed_evidence_error():
    with pytest.raises(UnknownValue, match="'nonsense' is not a valid CompressionFamily \\(allowed: unstructured_pruning"):
        coerce(CompressionFamily, "nonsense")
    assert issubclass(UnknownValue, EvidenceError) and issubclass(UnknownValue, ValueError)


def _one_line_error(r, text: str) -> None:
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], r.stderr


def test_meta_bad_filter_is_one_line_exit_2(seeded_url):
    _one_line_error(runner.invoke(app, ["meta", "run", "--db", seeded_url, "--family", "nonsense"]), "is not a valid CompressionFamily")


def test_meta_bad_option_is_one_line_exit_2(seeded_url):
    _one_line_error(runner.invoke(app, ["meta", "run", "--db", seeded_url, "--correlation", "2"]), "correlation of the two accuracies")


def test_meta_typed_input_error_is_one_line_exit_2(seeded_url, monkeypatch):
    def refuse(*a, **k):
        raise MetaInputError("too few effects to fit")

    monkeypatch.setattr("metaanalysis.analysis.run_analysis", refuse)
    _one_line_error(runner.invoke(app, ["meta", "run", "--db", seeded_url]), "too few effects to fit")


def test_meta_bug_keeps_its_traceback(seeded_url, monkeypatch):
    def broken(*a, **k):
        raise ValueError("operands could not be broadcast together with shapes (3,) (4,)")  # as numpy says it

    monkeypatch.setattr("metaanalysis.analysis.run_analysis", broken)
    r = runner.invoke(app, ["meta", "run", "--db", seeded_url])
    assert r.exit_code == 1 and isinstance(r.exception, ValueError) and "broadcast" in str(r.exception)
    assert "error: operands" not in r.stderr


def test_replicate_unknown_executor_is_one_line_exit_2(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY)
    r = runner.invoke(app, ["replicate", "run", str(spec), "--db", f"sqlite:///{tmp_path / 'r.db'}", "--executor", "nonsense"])
    _one_line_error(r, "executor must be one of local, dask, slurm, pbs")


def test_replicate_bad_spec_is_one_line_exit_2(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text(TINY.replace("levels = [0.5]", "levels = [1.5]"))
    _one_line_error(runner.invoke(app, ["replicate", "run", str(spec), "--db", f"sqlite:///{tmp_path / 'r.db'}"]), "sparsity 1.5 is outside [0, 1)")


@pytest.mark.parametrize("error", [SpecError, DatasetError, DeviceError, ClusterError])
def test_replicate_typed_errors_are_one_line_exit_2(tmp_path, monkeypatch, error):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY)

    def refuse(*a, **k):
        raise error("what the user must fix")

    monkeypatch.setattr("replicate.cli.run_job", refuse)
    _one_line_error(runner.invoke(app, ["replicate", "run", str(spec), "--db", f"sqlite:///{tmp_path / 'r.db'}"]), "what the user must fix")


def test_replicate_bug_keeps_its_traceback(tmp_path, monkeypatch):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY)

    def broken(*a, **k):
        raise ValueError("Expected input batch_size (8) to match target batch_size (4).")  # as torch says it

    monkeypatch.setattr("replicate.cli.run_job", broken)
    r = runner.invoke(app, ["replicate", "run", str(spec), "--db", f"sqlite:///{tmp_path / 'r.db'}"])
    assert r.exit_code == 1 and isinstance(r.exception, ValueError) and "batch_size" in str(r.exception)
    assert "error: Expected" not in r.stderr
