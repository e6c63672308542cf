"""Four processes adding 200 results each, at once, into one database: all 800 land, no error."""

import multiprocessing as mp

import pytest

from evidence import ResultFilter, count_results, get_engine, init_database
from tests.helpers import result_row, write_rows


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


def test_four_processes_add_800_results(empty_url, tmp_path):
    engine, _ = init_database(empty_url)  # seed loaded: the rows reference a seeded study
    base = count_results(engine, ResultFilter(status="all"))
    for p in range(4):
        for chunk in range(4):
            rows = [result_row(source_location=f"p{p}c{chunk}r{i}", robust_acc_compressed=f"{(p * 200 + chunk * 50 + i) / 10:.1f}") for i in range(50)]
            write_rows(tmp_path / f"w{p}.{chunk}.csv", rows)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(empty_url, str(tmp_path / f"w{p}"), out)) for p in range(4)]
    for pr in procs:
        pr.start()
    results = [out.get(timeout=300) for _ in procs]
    for pr in procs:
        pr.join(timeout=60)
    assert results == [("ok", 200)] * 4
    assert count_results(engine, ResultFilter(status="all")) == base + 800
    assert count_results(engine, ResultFilter(status="pending")) == 800
