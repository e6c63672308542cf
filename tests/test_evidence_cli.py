"""The `crev evidence` commands, run as a user would."""

import json

from typer.testing import CliRunner

from crev_cli import app
from tests.helpers import result_row, shipped_counts, write_rows

runner = CliRunner()


def test_stats_json_has_integer_totals(seeded_url):
    res = runner.invoke(app, ["evidence", "stats", "--json", "--db", seeded_url])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["studies"] >= 45 and data["results"] >= 8714  # issue 9's floor: both curated releases
    shipped = shipped_counts()  # every shipped release, counted from its CSV files
    assert (data["studies"], data["claims"], data["results"]) == (shipped.studies, shipped.claims, shipped.results)
    assert data["by_study"]["sen_2020_empir"]["results"] == 12


def test_init_is_safe_to_run_again(seeded_url):
    res = runner.invoke(app, ["evidence", "init", "--db", seeded_url])
    assert res.exit_code == 0 and "releases: none loaded" in res.stdout


def test_import_error_exits_2_with_one_line_per_problem(seeded_url, tmp_path):
    path = write_rows(tmp_path / "bad.csv", [result_row(epsilon="x")])
    res = runner.invoke(app, ["evidence", "import", str(path), "--db", seeded_url])
    assert res.exit_code == 2
    assert "row 1, column epsilon: epsilon 'x' is not a number" in res.stderr
    assert "Traceback" not in res.output


def test_import_review_approve_history_by_name(seeded_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CREV_USER", "env-user")
    path = write_rows(tmp_path / "ok.csv", [result_row()])
    res = runner.invoke(app, ["evidence", "import", str(path), "--db", seeded_url, "--json"])
    assert res.exit_code == 0, res.output
    sub = json.loads(res.stdout)["submission_id"]
    res = runner.invoke(app, ["evidence", "review", "--db", seeded_url])
    assert "env-user" in res.stdout and str(sub) in res.stdout
    res = runner.invoke(app, ["evidence", "approve", str(sub), "--db", seeded_url, "--by", "curator-x"])
    assert res.exit_code == 0 and "approved by curator-x" in res.stdout
    res = runner.invoke(app, ["evidence", "history", "sehwag_2020_hydra", "--db", seeded_url])
    assert res.exit_code == 0 and "seed" in res.stdout
    res = runner.invoke(app, ["evidence", "reject", "999", "--reason", "x", "--db", seeded_url])
    assert res.exit_code == 2 and "submission 999 does not exist" in res.stderr


def test_template_and_export(seeded_url, tmp_path):
    res = runner.invoke(app, ["evidence", "template", str(tmp_path / "t.csv")])
    assert res.exit_code == 0 and (tmp_path / "t.columns.txt").exists()
    res = runner.invoke(app, ["evidence", "export", "--format", "csv", "--study", "sen_2020_empir", "--db", seeded_url])
    assert res.exit_code == 0 and len(res.stdout.strip().splitlines()) == 13
    res = runner.invoke(app, ["evidence", "import", str(tmp_path / "t.csv"), "--db", seeded_url])
    assert res.exit_code == 2 and "unknown study id 'your_study_id'" in res.stderr


def test_correct_submits_a_new_version(seeded_url):
    res = runner.invoke(app, ["evidence", "correct", "study", "sen_2020_empir", "--set", "venue=AAAI 2021", "--db", seeded_url, "--by", "bob"])
    assert res.exit_code == 0, res.output
    sub = res.stdout.split()[1].rstrip(":")
    assert runner.invoke(app, ["evidence", "approve", sub, "--db", seeded_url]).exit_code == 0
    hist = runner.invoke(app, ["evidence", "history", "sen_2020_empir", "--db", seeded_url]).stdout
    assert "correction" in hist and "seed" in hist
    bad = runner.invoke(app, ["evidence", "correct", "study", "sen_2020_empir", "--set", "nope=1", "--db", seeded_url])
    assert bad.exit_code == 2 and "has no field(s) nope" in bad.stderr
