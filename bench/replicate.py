"""Replication benchmarks (issue 5). Prints medians and ratios measured in the same run.

Targets: PGD-10 through torchattacks at most 1.15 x the floor (10 hand-written forward+backward
passes on the same batch), median of 5 paired runs; the default catalogue claim
(pruning_without_at: dense model, 5 sparsities, 3 bit widths, PGD at 3 epsilons, 3 seeds) on
MNIST-5k under 5 minutes and on digits under 30 s; a rerun with the trained models cached under a
third of the first run; Dask with 2 single-thread workers at most 0.6 x one worker's grid time.
Run with `python bench/replicate.py [--skip-mnist]`.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch
from torch import nn


def attack_overhead(runs: int = 5) -> None:
    from replicate import AttackSpec, TrainConfig, build_model, craft, fit, load_split

    torch.set_num_threads(2)
    split = load_split("mnist5k", seed=0, n_test=256)
    model = build_model("lenet", split.shape, split.n_classes)
    fit(model, split, TrainConfig(epochs=1, lr=2e-3, batch_size=128), seed=0)
    x, y = split.x_test, split.y_test

    def floor():
        d = x.clone()
        for _ in range(10):
            d.requires_grad_(True)
            loss = nn.functional.cross_entropy(model(d), y)
            (g,) = torch.autograd.grad(loss, d)
            d = (d.detach() + 0.01 * g.sign()).clamp(0, 1)

    def pgd():
        craft(model, AttackSpec("pgd", 0.1, 10), x, y, n_classes=10, batch=256)

    floor(), pgd()
    ratios, tf, tp = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter(); floor(); a = time.perf_counter() - t0
        t0 = time.perf_counter(); pgd(); b = time.perf_counter() - t0
        ratios.append(b / a); tf.append(a); tp.append(b)
    print(f"PGD-10 (torchattacks) vs floor (10 fwd+bwd, batch 256, LeNet, 2 threads): median {1000 * statistics.median(tp):.0f} ms vs "
          f"{1000 * statistics.median(tf):.0f} ms; median paired ratio {statistics.median(ratios):.3f} (target <= 1.15)")


def claim_runs(dataset: str) -> None:
    from evidence import init_database
    from replicate import get_claim_spec, run_job

    spec = get_claim_spec("pruning_without_at")
    if dataset == "digits":
        spec = spec.model_copy(update={"data": spec.data.model_copy(update={"name": "digits", "n_test": None})})
    with tempfile.TemporaryDirectory() as d:
        os.environ["CREV_CACHE"] = str(Path(d) / "cache")
        e1, _ = init_database(f"sqlite:///{Path(d) / 'a.db'}")
        t0 = time.perf_counter()
        first = run_job(e1, spec, show_progress=False)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_job(e1, spec, show_progress=False)  # the same spec again: finished cells and trained models are reused
        t_same = time.perf_counter() - t0
        e2, _ = init_database(f"sqlite:///{Path(d) / 'b.db'}")  # no finished cells: only the dense models are cached
        t0 = time.perf_counter()
        run_job(e2, spec, show_progress=False)
        t_second = time.perf_counter() - t0
        print(f"catalogue claim pruning_without_at on {dataset} ({len(spec.seeds)} seeds, {sum(len(c.levels) for c in spec.compression)} levels, "
              f"{len(spec.attacks[0].eps)} eps): first run {t_first:.1f} s (dense {first.timings['dense_s']:.1f} s, cells {first.timings['cells_s']:.1f} s); "
              f"rerun of the same spec (cells and models cached) {t_same:.1f} s = {t_same / t_first:.2f} x; "
              f"rerun on a fresh database (only the trained models cached) {t_second:.1f} s = {t_second / t_first:.2f} x (target < 0.33); "
              f"target {'< 300 s' if dataset == 'mnist5k' else '< 30 s'}")
        print("  verdicts: " + "; ".join(f"{v['study']} ({v['direction']}): {v['verdict']} [{v['reason']}]" for v in first.verdicts))
        e3, _ = init_database(f"sqlite:///{Path(d) / 'c.db'}")
        one = run_job(e3, spec, executor="dask", workers=1, show_progress=False)
        e4, _ = init_database(f"sqlite:///{Path(d) / 'e.db'}")
        two = run_job(e4, spec, executor="dask", workers=2, show_progress=False)
        print(f"Dask LocalCluster on {dataset}: grid time 1 worker {one.timings['cells_s']:.1f} s, 2 single-thread workers "
              f"{two.timings['cells_s']:.1f} s = {two.timings['cells_s'] / one.timings['cells_s']:.2f} x (target <= 0.6); "
              f"cluster start-up, not counted: {one.timings['cluster_start_s']:.1f} s and {two.timings['cluster_start_s']:.1f} s")


def main() -> None:
    attack_overhead()
    claim_runs("digits")
    if "--skip-mnist" not in sys.argv:
        claim_runs("mnist5k")


if __name__ == "__main__":
    main()
