"""Releases: Frictionless Data Packages that validate, round-trip, diff, and pin an analysis."""

from __future__ import annotations

import csv
import hashlib
import json

import frictionless
import pytest
from typer.testing import CliRunner

from crev_cli import app
from evidence import ResultFilter, approve, get_engine, import_results, propose_correction, query_results, reject, stats
from evidence.db import upgrade_schema
from evidence.errors import EvidenceError
from evidence.vocab import Attack
from evidence.releases import diff_releases, load_package, read_package, write_release
from tests.helpers import result_row, shipped_counts, shipped_release_names, write_rows

runner = CliRunner()


@pytest.fixture
def release_dir(seeded, tmp_path):
    info = write_release(seeded, "2026.11", tmp_path / "r1", curator="ann")
    return info


def test_a_release_is_a_valid_frictionless_data_package(release_dir):
    path = release_dir.path
    report = frictionless.validate(str(path / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])[:5]
    desc = json.loads((path / "datapackage.json").read_text())
    assert desc["version"] == "2026.11" and [r["name"] for r in desc["resources"]] == ["studies", "claims", "results"]
    counts = desc["crev"]["counts"]
    assert counts["studies"] >= 45 and counts["results"] >= 8714  # issue 9's floor
    assert counts == shipped_counts().to_dict()  # exactly what the shipped release files hold
    results = next(r for r in desc["resources"] if r["name"] == "results")
    assert results["hash"] == "sha256:" + hashlib.sha256((path / "results.csv").read_bytes()).hexdigest()
    attack = next(f for f in results["schema"]["fields"] if f["name"] == "attack")
    assert "autoattack_standard" in attack["constraints"]["enum"]
    cff = (path / "CITATION.cff").read_text()
    assert "cff-version: 1.2.0" in cff and 'version: "2026.11"' in cff and release_dir.content_hash in cff
    assert (path / "CHANGELOG.md").read_text().startswith("# Release 2026.11")


def test_frictionless_refuses_a_value_outside_the_vocabulary(release_dir):
    path = release_dir.path
    with open(path / "results.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["attack"] in {a.value for a in Attack}
    rows[0]["attack"] = "laser"
    with open(path / "results.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    desc = json.loads((path / "datapackage.json").read_text())
    for r in desc["resources"]:  # keep the hashes right so only the schema can object
        data = (path / r["path"]).read_bytes()
        r["hash"], r["bytes"] = "sha256:" + hashlib.sha256(data).hexdigest(), len(data)
    (path / "datapackage.json").write_text(json.dumps(desc))
    report = frictionless.validate(str(path / "datapackage.json"))
    assert not report.valid
    errors = report.flatten(["type", "fieldName", "rowNumber"])
    assert ["constraint-error", "attack", 2] in errors


def test_a_changed_file_is_refused(release_dir):
    (release_dir.path / "studies.csv").write_text("study_id\nx\n")
    with pytest.raises(EvidenceError, match="SHA-256 differs"):
        read_package(release_dir.path)


def test_a_release_round_trips_through_a_new_database(release_dir, empty_url, tmp_path):
    fresh = get_engine(empty_url)
    upgrade_schema(fresh)
    subs = load_package(fresh, release_dir.path, by="loader")
    assert {"seed-2025.1", "coverage-2026.11"} <= {s.release for s in subs} == shipped_release_names()
    s = stats(fresh)
    assert {"studies": s.studies, "claims": s.claims, "results": s.results} == shipped_counts().to_dict()
    again = write_release(fresh, "2026.11-copy", tmp_path / "r2", previous=release_dir.path)
    assert again.content_hash == release_dir.content_hash
    for name in ("studies", "claims", "results"):
        assert (tmp_path / "r2" / f"{name}.csv").read_bytes() == (release_dir.path / f"{name}.csv").read_bytes()
    d = diff_releases(release_dir.path, tmp_path / "r2")
    assert all(not t.added and not t.corrected and not t.removed for t in d.tables.values())


def test_the_changelog_lists_what_was_added_corrected_and_rejected(seeded, release_dir, tmp_path):
    added = import_results(seeded, write_rows(tmp_path / "a.csv", [result_row(source_location="new table")]), by="alice")
    approve(seeded, added.submission_id, by="bob")
    refused = import_results(seeded, write_rows(tmp_path / "b.csv", [result_row(source_location="wrong table", robust_acc_compressed="47.0")]), by="alice")
    reject(seeded, refused.submission_id, reason="numbers are from another paper", by="bob")
    uid = query_results(seeded, ResultFilter(study_ids=["sen_2020_empir"]))["uid"].iloc[0]
    fix = propose_correction(seeded, "result", uid, {"notes": "checked against Table 2"}, by="alice")
    approve(seeded, fix.id, by="bob")
    info = write_release(seeded, "2026.12", tmp_path / "r2", previous=release_dir.path)
    log = info.changelog
    assert log["previous"] == "2026.11"
    assert len(log["tables"]["results"]["added"]) == 1 and log["tables"]["results"]["corrected"] == [uid]
    assert log["tables"]["studies"] == {"added": [], "corrected": [], "removed": []}
    assert [r["reason"] for r in log["rejected_submissions"]] == ["numbers are from another paper"]
    d = diff_releases(release_dir.path, info.path)
    assert d.tables["results"].corrected[uid]["notes"][1] == "checked against Table 2"
    res = runner.invoke(app, ["evidence", "diff-release", str(release_dir.path), str(info.path)])
    assert res.exit_code == 0, res.output
    assert "results: 1 added, 1 corrected, 0 removed" in res.stdout
    corrected_line = next(line for line in res.stdout.splitlines() if line.strip().startswith(f"~ {uid}:"))
    assert "release: 'seed-2025.1' -> ''" in corrected_line and "-> 'checked against Table 2'" in corrected_line
    changelog = (info.path / "CHANGELOG.md").read_text()
    assert "## Rejected submissions since 2026.11: 1" in changelog and "numbers are from another paper" in changelog


def test_a_release_is_never_overwritten(seeded, release_dir):
    with pytest.raises(EvidenceError, match="never overwritten"):
        write_release(seeded, "2026.11", release_dir.path)


def test_cli_release_writes_a_package(seeded_url, tmp_path):
    res = runner.invoke(app, ["evidence", "release", "--version", "2026.11", "--out", str(tmp_path / "p"), "--db", seeded_url, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["counts"]["results"] >= 8714 and out["content_hash"].startswith("sha256:")
    assert out["counts"]["results"] == shipped_counts().results
    bad = runner.invoke(app, ["evidence", "release", "--version", "a b", "--out", str(tmp_path / "q"), "--db", seeded_url])
    assert bad.exit_code == 2 and "release version 'a b'" in bad.output


def test_an_analysis_pinned_to_a_release_ignores_later_evidence(seeded, seeded_url, release_dir, tmp_path):
    args = ["meta", "run", "--study", "sehwag_2020_hydra", "--pool-kinds", "--assume-n", "dataset", "--json", "--db", seeded_url]
    pinned = json.loads(runner.invoke(app, [*args, "--release", str(release_dir.path)]).stdout)
    live = json.loads(runner.invoke(app, args).stdout)
    assert pinned["evidence"] == {"release": "2026.11", "content_hash": release_dir.content_hash}
    assert live["evidence"]["release"] is None
    assert pinned["estimate"] == live["estimate"] and pinned["k"] == live["k"]  # the same rows in the same order: the same bits
    sub = import_results(seeded, write_rows(tmp_path / "n.csv", [result_row(robust_acc_compressed="5.0", source_location="new")]), by="alice")
    approve(seeded, sub.submission_id, by="bob")
    live2 = json.loads(runner.invoke(app, args).stdout)
    pinned2 = json.loads(runner.invoke(app, [*args, "--release", str(release_dir.path)]).stdout)
    assert live2["k"] == live["k"] + 1
    assert pinned2["k"] == pinned["k"] and pinned2["estimate"] == pinned["estimate"]
