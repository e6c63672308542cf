"""Meta-analysis benchmarks (issue 4). Prints medians of several runs and ratios measured in the same run.

Targets: REML on k = 10,000 at most 1.0 x PyMARE's time, on k = 1,000,000 under 5 s; three-level REML
on 10,000 effects in 500 clusters under 0.5 s; four-level REML (study/lab/cluster/es) on k = 100,000 in
1,000 studies under 1 s; CR2 by study with one 7,798-effect study under 1 s; meta-regression with 5
moderators on 10,000 effects at most 1.0 x PyMARE's time; the contradiction report on the seed
database under 10 s; crev meta answer on the seed (reported).
PyMARE and statsmodels are bench-only peers (`pip install -e .[bench]`).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np


def timeit(fn, runs=7):
    fn()  # warm-up
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def synthetic(k=10_000, studies=500, p=0, seed=0):
    rng = np.random.default_rng(seed)
    study = np.repeat(np.arange(studies), k // studies)
    cluster = np.repeat(np.arange(studies * 4), k // (studies * 4))
    X = rng.normal(size=(k, p))
    y = rng.normal(0, 0.3, studies)[study] + rng.normal(0, 0.2, studies * 4)[cluster] + X @ np.linspace(0.1, 0.5, p) + rng.normal(0, 0.1, k)
    v = rng.uniform(0.005, 0.05, k)
    return y, v, study, cluster, X


def main() -> None:
    from metaanalysis import contradiction_report, compute_effects, EffectSettings, rma_mv, rma_uni

    y, v, study, cluster, _ = synthetic()
    ours = timeit(lambda: rma_uni(y, v, method="REML"))
    line = f"REML random effects, k = 10,000: ours {1000 * ours:.2f} ms"
    try:
        from pymare.estimators import VarianceBasedLikelihoodEstimator

        Y, V, X1 = y[:, None], v[:, None], np.ones((len(y), 1))
        peer = timeit(lambda: VarianceBasedLikelihoodEstimator(method="REML").fit(y=Y, v=V, X=X1))
        line += f"; PyMARE {1000 * peer:.2f} ms; ratio ours/PyMARE = {ours / peer:.2f} (target <= 1.0)"
    except ImportError:
        line += " (PyMARE not installed: pip install -e .[bench])"
    try:
        from statsmodels.stats.meta_analysis import combine_effects

        sm = timeit(lambda: combine_effects(y, v, method_re="dl"))
        dl = timeit(lambda: rma_uni(y, v, method="DL"))
        line += f"\nDL, k = 10,000: ours {1000 * dl:.2f} ms; statsmodels combine_effects {1000 * sm:.2f} ms; ratio {dl / sm:.2f}"
    except ImportError:
        pass
    print(line)

    yb, vb, *_ = synthetic(k=1_000_000, studies=50_000, seed=1)
    big = timeit(lambda: rma_uni(yb, vb, method="REML"), runs=3)
    print(f"REML random effects, k = 1,000,000: ours {big:.2f} s (target < 5 s)")

    three = timeit(lambda: rma_mv(y, v, study, cluster, method="REML"))
    print(f"three-level REML (10,000 effects, 500 studies, 2,000 clusters): ours {1000 * three:.1f} ms (target < 500 ms)")

    rng = np.random.default_rng(4)
    k4 = 100_000
    s4, l4, c4 = np.repeat(np.arange(1000), 100), np.repeat(np.arange(4000), 25), np.repeat(np.arange(20_000), 5)
    y4 = (rng.normal(0, .3, 1000)[s4] + rng.normal(0, .2, 4000)[l4] + rng.normal(0, .15, 20_000)[c4] + rng.normal(0, .1, k4)
          + rng.normal(0, .1, k4))
    v4 = rng.uniform(.005, .05, k4)
    four = timeit(lambda: rma_mv(y4, v4, random=[s4, l4, c4, np.arange(k4)], random_names=["study", "lab", "cluster", "es"]), runs=3)
    print(f"four-level REML (k = 100,000; 1,000 studies / 4,000 labs / 20,000 clusters / effects): ours {four:.2f} s (target < 1 s)")

    from metaanalysis import robust

    sizes = [7798, 84, 18, 96, 70, 14, 18, 300, 48, 12, 48]  # the seed's studies: one of 7,798 effects
    sc = np.repeat(np.arange(len(sizes)), sizes)
    cc = np.concatenate([np.repeat(np.arange(n // 40 + 1), 40)[:n] + 1000 * i for i, n in enumerate(sizes)])
    yc = rng.normal(0, 8, len(sizes))[sc] + rng.normal(0, 10, cc.max() + 1)[cc] + rng.normal(0, 20, len(sc))
    vc = rng.uniform(0.05, 5, len(sc))
    Xc = np.column_stack([np.ones(len(sc)), rng.uniform(0, 1, len(sc))])
    fit_c = rma_mv(yc, vc, X=Xc, names=["intrcpt", "sparsity"], random=[sc, cc, np.arange(len(sc))], random_names=["study", "cluster", "es"])
    cr2 = timeit(lambda: robust(fit_c, yc, vc, Xc, sc, kind="CR2"))
    print(f"CR2 by study, 11 studies, largest 7,798 effects (p x p form), 2 coefficients: ours {1000 * cr2:.1f} ms (target < 1 s)")

    y5, v5, _, _, X5 = synthetic(p=5, seed=2)
    Xd = np.column_stack([np.ones(len(y5)), X5])
    names = ["intrcpt"] + [f"x{i}" for i in range(5)]
    mr = timeit(lambda: rma_uni(y5, v5, Xd, names, method="REML"))
    line = f"meta-regression, 5 moderators, k = 10,000: ours {1000 * mr:.2f} ms"
    try:
        from pymare.estimators import VarianceBasedLikelihoodEstimator

        pm = timeit(lambda: VarianceBasedLikelihoodEstimator(method="REML").fit(y=y5[:, None], v=v5[:, None], X=Xd))
        line += f"; PyMARE {1000 * pm:.2f} ms; ratio ours/PyMARE = {mr / pm:.2f} (target <= 1.0)"
    except ImportError:
        pass
    print(line)

    from evidence import init_database, list_claims, list_studies, query_results

    with tempfile.TemporaryDirectory() as d:
        engine, _ = init_database(f"sqlite:///{Path(d) / 'seed.db'}")

        def report():
            res = query_results(engine)
            return contradiction_report(compute_effects(res, EffectSettings(assume_n="dataset")), list_studies(engine), list_claims(engine))

        t = timeit(report, runs=3)
        print(f"contradiction report on the seed database (query + effects + all tests + pairs): {t:.2f} s (target < 10 s)")

        from metaanalysis import answer

        table = compute_effects(query_results(engine), EffectSettings(assume_n="dataset"))
        cpu = []

        def timed_answer():
            c0 = time.process_time()
            answer(table)
            cpu.append(time.process_time() - c0)

        t = timeit(timed_answer, runs=3)
        print(f"crev meta answer on the seed (6 questions x evaluation kinds, leave-one-study-out refits): {t:.2f} s wall, "
              f"{statistics.median(cpu[1:]):.2f} s CPU (medians of 3 after a warm-up; target < 2 s wall, ideally < 1 s)")

        # issue 14: the full multiverse grid (384 specifications) on the seed, 2 worker processes, one run each way
        from metaanalysis.multiverse import multiverse

        res = query_results(engine)
        t0 = time.perf_counter()
        mv = multiverse(res, workers=2)
        t_par = time.perf_counter() - t0
        t0 = time.perf_counter()
        multiverse(res, workers=1)
        t_one = time.perf_counter() - t0
        print(f"multiverse on the seed database ({len(mv.results)} specifications, {mv.n_distinct_fits} distinct fits of the default model): "
              f"{t_par:.1f} s with 2 workers (target < 30 s on 2 cores); 1 worker {t_one:.1f} s; ratio {t_par / t_one:.2f}; "
              f"CPU in the workers {mv.cpu_seconds:.1f} s (wall on 2 idle cores is about half of it plus start-up; check `uptime`)")


if __name__ == "__main__":
    main()
