"""Evidence benchmarks (issues 3 and 9): first start of a fresh SQLite file (schema + the shipped
releases: seed, coverage and replication); a filtered query over 200,000 results; writing a
release (Frictionless Data Package) and loading it into a fresh database.

Prints medians of several runs. Targets: seed + release load < 5 s; filtered query < 50 ms.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the package it measures: keep bench/ off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from evidence import ResultFilter, get_engine, init_database, query_results
from evidence.db import _engine_for
from evidence.models import Result, Submission
from evidence.vocab import AdvTraining, Attack, CompressionFamily, Norm, ReviewStatus, SubmissionKind, ThreatModel


def bench_seed(runs: int = 3) -> tuple[list[float], list[float], int]:
    """Whole first start (schema + every shipped release), the release loading alone, and the results loaded."""
    from evidence.db import upgrade_schema
    from evidence.seed import load_releases

    times, loads = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            engine = get_engine(f"sqlite:///{Path(d) / 'seed.db'}")
            upgrade_schema(engine)
            t1 = time.perf_counter()
            reports = load_releases(engine)
            t2 = time.perf_counter()
            n_results = sum(r.results for r in reports)
            assert n_results >= 8714
            times.append(t2 - t0)
            loads.append(t2 - t1)
            engine.dispose()
            _engine_for.cache_clear()
    return times, loads, n_results


def bench_release() -> tuple[float, float]:
    """Seconds to write the seeded database as a release, and to load that release into a fresh database."""
    from evidence.db import upgrade_schema
    from evidence.releases import load_package, write_release

    with tempfile.TemporaryDirectory() as d:
        engine, _ = init_database(f"sqlite:///{Path(d) / 'a.db'}")
        t0 = time.perf_counter()
        write_release(engine, "bench", Path(d) / "rel", curator="bench")
        t1 = time.perf_counter()
        fresh = get_engine(f"sqlite:///{Path(d) / 'b.db'}")
        upgrade_schema(fresh)
        t2 = time.perf_counter()
        load_package(fresh, Path(d) / "rel", by="bench")
        t3 = time.perf_counter()
        engine.dispose()
        fresh.dispose()
        _engine_for.cache_clear()
    return t1 - t0, t3 - t2


def synthetic(engine, n: int = 200_000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    fams = [f.value for f in CompressionFamily]
    threats = [t.value for t in ThreatModel]
    eps = rng.choice([1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255, 0.031, 0.1, 0.3], n)
    with engine.begin() as conn:
        sub = conn.execute(sa.insert(Submission).values(kind=SubmissionKind.seed, submitted_by="bench", status=ReviewStatus.approved, summary="synthetic")).inserted_primary_key[0]
        base = dict(version=1, submission_id=sub, review_status=ReviewStatus.approved.value, current=True, created_by="bench",
                    adversarial_training=AdvTraining.no.value, attack=Attack.pgd.value, norm=Norm.linf.value, provenance="verbatim",
                    source_kind="literature", quick=False, architecture="net", compression_method="m", compression_level_text="",
                    adversarial_training_text="", attack_text="", norm_text="", epsilon_text="", steps_text="", threat_model_text="",
                    url_or_path="synthetic", source_location="", notes="", cluster="c", checks_json="", replication_json="", warnings="")
        from evidence.models import utcnow
        now = utcnow()
        rows = []
        for i in range(n):
            rows.append({**base, "uid": f"u{i}", "fingerprint": f"f{i}", "study_id": f"s{i % 500}", "dataset": ["MNIST", "CIFAR-10", "SVHN"][i % 3],
                         "compression_family": fams[i % len(fams)], "threat_model": threats[(i // 7) % len(threats)], "epsilon": float(eps[i]),
                         "sparsity": float(rng.uniform(0, 0.99)), "robust_acc_compressed": float(rng.uniform(0, 100)),
                         "robust_acc_dense": float(rng.uniform(0, 100)), "created_at": now})
            if len(rows) == 20_000:
                conn.execute(sa.insert(Result), rows)
                rows = []
        if rows:
            conn.execute(sa.insert(Result), rows)
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("ANALYZE")


def bench_query(engine, runs: int = 15) -> tuple[list[float], int]:
    filt = ResultFilter(families=["quantization"], threat_models=["white_box"], eps_min=2 / 255, eps_max=8 / 255)
    times, n = [], 0
    query_results(engine, filt)  # warm the connection pool and the page cache
    for _ in range(runs):
        t0 = time.perf_counter()
        n = len(query_results(engine, filt))
        times.append(time.perf_counter() - t0)
    return times, n


def main() -> None:
    seed_times, loads, n_results = bench_seed()
    print(f"first start of a fresh SQLite file (schema + every shipped release, {n_results:,} results): median "
          f"{statistics.median(seed_times):.2f} s over {len(seed_times)} runs (min {min(seed_times):.2f}, max {max(seed_times):.2f}); "
          f"releases alone median {statistics.median(loads):.2f} s; target < 5 s")
    write_s, load_s = bench_release()
    print(f"release of {n_results:,} results: written as a data package in {write_s:.2f} s, loaded into a fresh database in {load_s:.2f} s (one run each)")
    with tempfile.TemporaryDirectory() as d:
        engine, _ = init_database(f"sqlite:///{Path(d) / 'big.db'}", load=False)
        t0 = time.perf_counter()
        synthetic(engine)
        print(f"(inserted 200,000 synthetic results in {time.perf_counter() - t0:.1f} s)")
        times, n = bench_query(engine)
        print(f"filtered query (family, threat model, epsilon range) over 200,000 results -> {n} rows: "
              f"median {1000 * statistics.median(times):.1f} ms over {len(times)} runs; target < 50 ms")


if __name__ == "__main__":
    main()
