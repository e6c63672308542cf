"""Processes writing one database at once, on SQLite and PostgreSQL: nothing lost, nothing doubled.

- four processes adding 200 results each: all 800 land;
- one file imported by two processes at the same moment: it lands once, the other gets a clear error;
- two corrections of one result approved at the same moment: one current version;
- three ``init`` on an empty database at once: none crashes, each release is loaded once;
- (SQLite) a writer holding the lock does not stop another command's start-up (the schema check reads only).
"""

from __future__ import annotations

import multiprocessing as mp
import threading

import sqlalchemy as sa

from evidence import ResultFilter, count_results, get_engine, init_database, propose_correction, query_results
from tests.helpers import result_row, write_rows

TRIALS = 2


def _url(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _gather(out, n: int) -> list:
    return [out.get(timeout=300) for _ in range(n)]


def _start(target, args_list) -> tuple[list, list]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    barrier = ctx.Barrier(len(args_list))
    procs = [ctx.Process(target=target, args=(*args, barrier, out)) for args in args_list]
    for p in procs:
        p.start()
    results = _gather(out, len(procs))
    for p in procs:
        p.join(timeout=60)
    return results, procs


# --------------------------------------------------------------------------- many writers


def _worker(url: str, path: str, out) -> None:
    try:
        from evidence import import_results

        engine = get_engine(url)
        total = 0
        for chunk in range(4):  # 4 submissions of 50 rows each, racing the other processes
            rep = import_results(engine, f"{path}.{chunk}.csv", by=f"proc-{path[-1]}")
            total += rep.rows_read
        out.put(("ok", total))
    except BaseException as exc:  # report any failure to the parent, which fails the test
        out.put(("error", repr(exc)))


def test_four_processes_add_800_results(seeded_any, tmp_path):
    engine, url = seeded_any, _url(seeded_any)  # the rows reference a seeded study
    base = count_results(engine, ResultFilter(status="all"))
    for p in range(4):
        for chunk in range(4):
            rows = [result_row(source_location=f"p{p}c{chunk}r{i}", robust_acc_compressed=f"{(p * 200 + chunk * 50 + i) / 10:.1f}") for i in range(50)]
            write_rows(tmp_path / f"w{p}.{chunk}.csv", rows)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, str(tmp_path / f"w{p}"), out)) for p in range(4)]
    for pr in procs:
        pr.start()
    results = [out.get(timeout=300) for _ in procs]
    for pr in procs:
        pr.join(timeout=60)
    assert results == [("ok", 200)] * 4
    assert count_results(engine, ResultFilter(status="all")) == base + 800
    assert count_results(engine, ResultFilter(status="pending")) == 800


# --------------------------------------------------------------------------- same file twice


def _import_worker(url: str, paths: list[str], who: str, barrier, out) -> None:
    from evidence import EvidenceError, import_results

    engine = get_engine(url)
    outcomes = []
    for path in paths:
        barrier.wait(timeout=120)
        try:
            rep = import_results(engine, path, by=who)
            outcomes.append(("ok", rep.rows_read))
        except EvidenceError as exc:  # the clear refusal a user sees
            outcomes.append(("refused", str(exc).splitlines()[0]))
        except BaseException as exc:  # anything else is a bug: the parent fails the test
            outcomes.append(("crash", repr(exc)))
    out.put((who, outcomes))


def test_same_file_imported_by_two_processes_at_once_lands_once(seeded_any, tmp_path):
    engine, url = seeded_any, _url(seeded_any)
    base = count_results(engine, ResultFilter(status="all"))
    paths = []
    for t in range(TRIALS):
        rows = [result_row(source_location=f"t{t}r{i}", robust_acc_compressed=f"{t * 30 + i / 10:.1f}") for i in range(30)]
        paths.append(str(write_rows(tmp_path / f"same{t}.csv", rows)))
    results, _ = _start(_import_worker, [(url, paths, "alice"), (url, paths, "bob")])
    by_trial = list(zip(*(outcomes for _, outcomes in results)))
    for t, pair in enumerate(by_trial):
        kinds = sorted(kind for kind, _ in pair)
        assert kinds == ["ok", "refused"], f"trial {t}: {pair}"
    assert count_results(engine, ResultFilter(status="all")) == base + 30 * TRIALS
    with engine.connect() as conn:
        dup = conn.execute(sa.text("SELECT count(*) FROM (SELECT fingerprint FROM result WHERE review_status <> 'rejected' AND version = 1 GROUP BY fingerprint HAVING count(*) > 1) d")).scalar_one()
    assert dup == 0


# --------------------------------------------------------------------------- simultaneous corrections


def _approve_worker(url: str, submission_ids: list[int], who: str, barrier, out) -> None:
    from evidence import EvidenceError, approve

    engine = get_engine(url)
    outcomes = []
    for sid in submission_ids:
        barrier.wait(timeout=120)
        try:
            approve(engine, sid, by=who)
            outcomes.append(("ok", sid))
        except EvidenceError as exc:
            outcomes.append(("refused", str(exc).splitlines()[0]))
        except BaseException as exc:
            outcomes.append(("crash", repr(exc)))
    out.put((who, outcomes))


def test_two_corrections_approved_at_once_leave_one_current_version(seeded_any):
    engine, url = seeded_any, _url(seeded_any)
    uids = list(query_results(engine, ResultFilter(study_ids=["sehwag_2020_hydra"]))["uid"].iloc[:TRIALS])
    first, second = [], []
    for k, uid in enumerate(uids):
        first.append(propose_correction(engine, "result", uid, {"notes": f"correction A {k}"}, by="bob").id)
        second.append(propose_correction(engine, "result", uid, {"notes": f"correction B {k}"}, by="dave").id)
    results, _ = _start(_approve_worker, [(url, first, "carol"), (url, second, "erin")])
    crashes = [o for _, outcomes in results for o in outcomes if o[0] == "crash"]
    assert not crashes
    with engine.connect() as conn:
        for uid in uids:
            current = conn.execute(sa.text("SELECT count(*) FROM result WHERE uid = :u AND current"), {"u": uid}).scalar_one()
            assert current == 1, f"{uid}: {current} current versions"
            versions = conn.execute(sa.text("SELECT count(*) FROM result WHERE uid = :u"), {"u": uid}).scalar_one()
            assert versions == 3


# --------------------------------------------------------------------------- simultaneous init


def _init_worker(url: str, barrier, out) -> None:
    try:
        barrier.wait(timeout=120)
        _, result = init_database(url)
        out.put(("ok", result.revision))
    except BaseException as exc:
        out.put(("crash", repr(exc)))


def test_three_simultaneous_inits_on_an_empty_database_load_each_release_once(empty_url, seeded_template):
    if empty_url.startswith("sqlite"):
        # the file exists (empty schema) before the race: SQLite creates a database file on first connect
        get_engine(empty_url).connect().close()
    results, _ = _start(_init_worker, [(empty_url,), (empty_url,), (empty_url,)])
    assert all(kind == "ok" for kind, _ in results), results
    engine = get_engine(empty_url)
    with engine.connect() as conn:
        per_release = conn.execute(sa.text("SELECT release, count(*) FROM submission GROUP BY release")).all()
        dup_current = conn.execute(sa.text("SELECT count(*) FROM (SELECT fingerprint FROM result WHERE current GROUP BY fingerprint HAVING count(*) > 1) d")).scalar_one()
    assert per_release and all(n == 1 for _, n in per_release), per_release
    assert dup_current == 0
    # the same as one init on its own (the session's seeded template)
    single = get_engine(f"sqlite:///{seeded_template}")
    assert count_results(engine, ResultFilter(status="all")) == count_results(single, ResultFilter(status="all"))


# --------------------------------------------------------------------------- SQLite: start-up does not wait for a writer


def test_commands_start_while_another_process_holds_the_sqlite_write_lock(seeded_url):
    import sqlite3

    from evidence import stats, upgrade_schema

    path = seeded_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # as a long import does while it writes
    holder.execute("UPDATE submission SET summary = summary")
    done: dict = {}

    def other_command():
        try:
            engine = get_engine(seeded_url)
            upgrade_schema(engine)  # every command's start-up
            done["stats"] = stats(engine)
        except BaseException as exc:  # reported below
            done["error"] = repr(exc)

    t = threading.Thread(target=other_command, daemon=True)
    t.start()
    t.join(timeout=45)  # below the 60 s busy timeout: a command that wanted the lock would still be waiting
    try:
        assert not t.is_alive(), "the command waited for the write lock"
        assert "error" not in done, done.get("error")
        assert done["stats"].results > 0
        assert holder.in_transaction  # the writer still held the lock throughout
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# --------------------------------------------------------------------------- upgrading a database the races damaged


def test_upgrade_to_0003_resolves_duplicates_left_by_earlier_races(empty_url):
    """A database written before the constraints may hold two current versions of one result, two
    current results with one fingerprint, and one file imported twice; the upgrade keeps the newest
    version, the first result and the first import, and deletes nothing."""
    from datetime import datetime, timezone

    from alembic import command

    from evidence.db import _alembic_config, upgrade_schema, writer
    from evidence.models import Result

    engine = get_engine(empty_url)
    cfg = _alembic_config(engine)
    with writer(engine).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO submission (id, kind, submitted_by, submitted_at, status, summary, n_studies, n_claims, n_results, release) "
            "VALUES (1, 'import_results', 'a', :now, 'approved', '', 0, 0, 6, '')"), {"now": now})
        cols = {c.name for c in sa.Table("result", sa.MetaData(), autoload_with=conn).columns}
        base = {c.name: c.default.arg for c in Result.__table__.columns if c.default is not None and not callable(c.default.arg)}
        base.update(study_id="s", compression_family="quantization", submission_id=1, created_at=now, created_by="a", release="", provenance_text="")
        rows = [
            dict(uid="u1", version=1, fingerprint="fp1", current=True, review_status="approved"),
            dict(uid="u1", version=2, fingerprint="fp2", current=True, review_status="approved"),  # two current versions
            dict(uid="u2", version=1, fingerprint="fp3", current=True, review_status="approved"),
            dict(uid="u3", version=1, fingerprint="fp3", current=True, review_status="approved"),  # one fingerprint twice
            dict(uid="u4", version=1, fingerprint="fp9", current=False, review_status="pending"),
            dict(uid="u5", version=1, fingerprint="fp9", current=False, review_status="pending"),  # a double import
        ]
        conn.execute(sa.insert(Result.__table__), [{k: v for k, v in {**base, **r}.items() if k in cols} for r in rows])
    assert upgrade_schema(engine) >= "0003"
    with engine.connect() as conn:
        got = conn.execute(sa.text("SELECT uid, version, current, review_status FROM result ORDER BY id")).all()
    assert [tuple(r) for r in got] == [
        ("u1", 1, False, "approved"), ("u1", 2, True, "approved"),
        ("u2", 1, True, "approved"), ("u3", 1, False, "approved"),
        ("u4", 1, False, "pending"), ("u5", 1, False, "rejected"),
    ]
