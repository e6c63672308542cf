"""Replication benchmarks (issue 5). Prints medians and ratios measured in the same run.

Targets: PGD-10 through torchattacks at most 1.15 x the floor (10 hand-written forward+backward
passes on the same batch), median of 5 paired runs; the default catalogue claim
(pruning_without_at: dense model, 5 sparsities, 3 bit widths, PGD at 3 epsilons, 3 seeds) on
MNIST-5k under 5 minutes and on digits under 30 s; a rerun with the trained models cached under a
third of the first run; Dask with 2 single-thread workers at most 0.6 x one worker's grid time.
Issue 11 adds: a full catalogue claim at full settings (5 seeds, rigour checks) on MNIST-5k, target
< 10 min on 2 cores (`--full-claim`), and the issue's independent numbers reproduced within 3 pp at
matched settings (`--independent`, settings documented at INDEPENDENT below, each row also run through the
plain-PyTorch bench/independent_reference.py).
Run with `python bench/replicate.py [--skip-mnist] [--full-claim] [--independent [--seeds N]]`.
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
        print("  verdicts: " + "; ".join(f"{v.study} ({v.direction.value}): {v.verdict.value} [{v.reason}]" for v in first.verdicts))
        e3, _ = init_database(f"sqlite:///{Path(d) / 'c.db'}")
        one = run_job(e3, spec, executor="dask", workers=1, show_progress=False)
        e4, _ = init_database(f"sqlite:///{Path(d) / 'e.db'}")
        two = run_job(e4, spec, executor="dask", workers=2, show_progress=False)
        print(f"Dask LocalCluster on {dataset}: grid time 1 worker {one.timings['cells_s']:.1f} s, 2 single-thread workers "
              f"{two.timings['cells_s']:.1f} s = {two.timings['cells_s'] / one.timings['cells_s']:.2f} x (target <= 0.6); "
              f"cluster start-up, not counted: {one.timings['cluster_start_s']:.1f} s and {two.timings['cluster_start_s']:.1f} s")


def scale_figures(runs: int = 5) -> None:
    """Issue 16: channel pruning's measured speed-up at 50 % channels (PreAct ResNet-18, CPU, 2 threads),
    and where CUDA exists, images/s of PGD-10 on PreAct ResNet-18 vs the floor (10 hand-written
    forward+backward passes on the same batch), both medians of paired runs in this process."""
    from replicate import AttackSpec, craft
    from replicate.train.archs import preact_resnet18
    from replicate.compress.efficiency import latency_ms
    from replicate.compress.structural import remove_channels

    torch.set_num_threads(2)
    torch.manual_seed(0)
    dense = preact_resnet18().eval()
    x = torch.rand(32, 3, 32, 32)
    import copy

    pruned = remove_channels(copy.deepcopy(dense), x[:1], 0.5)
    ratios = []
    for _ in range(runs):
        a, b = latency_ms(dense, x, repeats=3, warmup=1), latency_ms(pruned, x, repeats=3, warmup=1)
        ratios.append(a / b)
    n_d, n_p = sum(p.numel() for p in dense.parameters()), sum(p.numel() for p in pruned.parameters())
    print(f"channel pruning, 50 % of every layer's channels removed (torch-pruning), PreAct ResNet-18, batch 32, CPU 2 threads: "
          f"params {n_p / 1e6:.2f} M of {n_d / 1e6:.2f} M; median paired speed-up {statistics.median(ratios):.2f} x "
          f"(range {min(ratios):.2f}-{max(ratios):.2f}, {runs} runs)")
    if not torch.cuda.is_available():
        print("PGD-10 images/s on a GPU: not measured (no CUDA device here; run this script on a GPU machine)")
        return
    from replicate.train.device import configure

    rt = configure("cuda")
    dev = rt.torch_device
    model = preact_resnet18().to(dev).eval()
    n = 512
    xb, yb = torch.rand(n, 3, 32, 32, device=dev), torch.randint(0, 10, (n,), device=dev)

    def floor():
        d = xb.clone()
        for _ in range(10):
            d.requires_grad_(True)
            (g,) = torch.autograd.grad(nn.functional.cross_entropy(model(d), yb), d)
            d = (d.detach() + 0.01 * g.sign()).clamp(0, 1)
        torch.cuda.synchronize(dev)

    def pgd():
        craft(model, AttackSpec("pgd", 8 / 255, 10), xb, yb, n_classes=10, batch=n)
        torch.cuda.synchronize(dev)

    floor(), pgd()
    tf, tp = [], []
    for _ in range(runs):
        t0 = time.perf_counter(); floor(); tf.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); pgd(); tp.append(time.perf_counter() - t0)
    ips_pgd, ips_floor = n / statistics.median(tp), n / statistics.median(tf)
    ratio = statistics.median([p / f for p, f in zip(tp, tf)])
    # PGD-AT epoch on CIFAR-10: 50,000 images x (10 attack passes + 1 training pass)
    epoch_s = 50_000 / ips_pgd * 11 / 10
    print(f"PGD-10 Linf 8/255 (torchattacks) on PreAct ResNet-18, batch {n}, {rt.device_name}, float32, deterministic cuDNN: "
          f"{ips_pgd:,.0f} images/s vs floor {ips_floor:,.0f} images/s (10 fwd+bwd); median paired ratio {ratio:.3f}")
    print(f"  implied PGD-AT cost: {epoch_s:.0f} s per CIFAR-10 epoch, {200 * epoch_s / 3600:.1f} GPU hours per 200-epoch dense model "
          f"(x 5 seeds = {5 * 200 * epoch_s / 3600:.0f} h; adversarial fine-tuning 10 epochs x 5 levels x 5 seeds = "
          f"{250 * epoch_s / 3600:.0f} h; evaluation is minutes)")


def full_claim_five_seeds(claim: str = "pruning_without_at", workers: int = 2) -> None:
    """A full catalogue claim at its full settings (5 seeds, every level, rigour checks) on MNIST-5k,
    with ``workers`` single-thread Dask workers (issue 11). Target: < 10 min on 2 cores."""
    from evidence import init_database
    from replicate import get_claim_spec, run_job

    spec = get_claim_spec(claim).model_copy(update={"device": "cpu"})
    assert len(spec.seeds) == 5 and spec.data.name == "mnist5k"
    with tempfile.TemporaryDirectory() as d:
        os.environ["CREV_CACHE"] = str(Path(d) / "cache")
        engine, _ = init_database(f"sqlite:///{Path(d) / 'full.db'}", load=False)
        t0 = time.perf_counter()
        out = run_job(engine, spec, executor="dask" if workers > 1 else "local", workers=workers, threads=1, show_progress=False)
        total = time.perf_counter() - t0
    print(f"full catalogue claim {claim} on MNIST-5k (5 seeds, {sum(len(c.levels) or 1 for c in spec.compression)} levels, "
          f"{sum(len(a.eps) for a in spec.attacks)} attack settings, rigour checks on, {workers} workers): {total:.0f} s "
          f"(dense + surrogates {out.timings['dense_s']:.0f} s, cells {out.timings['cells_s']:.0f} s); target < 600 s on 2 cores")
    for v in out.verdicts:
        print(f"  {v.study} ({v.direction.value}): {v.verdict.value} - {v.reason}")


# The issue's independent script (PGD-10, eps 0.1, Linf, step 2.5 eps / 10, random start; Adam; compressed
# models fine-tuned after compression) and its numbers (% robust). The script itself was not published with
# the issue, so its settings are inferred from what the issue says about them; each row names its settings:
# - digits (both rows): "crev's lenet is twice as wide; matched width and lr": LeNet width 8, Adam 10
#   epochs at lr 3e-3, batch 64; the pruned row: global L1 pruning to 95 %, 1 epoch of standard
#   fine-tuning at lr 1e-3. The dense row is also printed at crev's own width (16; 6 epochs at lr 2e-3,
#   batch 128: crev's settings when the issue was written), as a supplement;
# - MNIST-5k 2-bit: the quantization claim's settings (LeNet width 16, 6 epochs at lr 2e-3, batch 128;
#   2-bit weights per output channel with MSE clipping, 4-bit activations, QAT 2 epochs at lr 1e-3) -
#   "2-bit per-channel at lr 1e-3".
# Every row is also run through bench/independent_reference.py (plain PyTorch, no crev code) on the same
# split, settings and seeds: dense and pruned models agree image for image; quantization-aware training
# agrees only in distribution (a 1-ulp difference in one batch is amplified by rounding), so it is
# compared by the mean over seeds.
INDEPENDENT = {"digits dense": 53.2, "digits 95 % pruned": 30.8, "MNIST-5k 2-bit": 45.6, "digits dense at crev's width 16": 53.2}
ISSUE_SEEDS = 3  # the issue's crev column has 3 seeds; its independent figures are taken as 3-seed means too
DIGITS_W16 = dict(width=16, epochs=6, lr=2e-3, batch_size=128)
DIGITS_W8 = dict(width=8, epochs=10, lr=3e-3, batch_size=64)


def _independent_seed(args):
    """One seed of every row, crev and the plain-PyTorch reference side by side (counts)."""
    import importlib.util

    row, seed, cache = args
    os.environ["CREV_CACHE"] = cache
    torch.set_num_threads(1)
    from replicate import AttackSpec, Pruner, Quantizer, TrainConfig, evaluate_attack, load_split
    from replicate.train.training import train_model

    spec = importlib.util.spec_from_file_location("independent_reference", Path(__file__).with_name("independent_reference.py"))
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    pgd = AttackSpec("pgd", 0.1, 10)

    def crev_robust(m, sp):
        return int(evaluate_attack(m, pgd, sp.x_test, sp.y_test, n_classes=10, seed=seed).sum())

    def ref_robust(m, sp):
        return ref.robust_correct(m, sp.x_test, sp.y_test, eps=0.1, steps=10, seed=seed)

    if row.startswith("digits"):
        sp = load_split("digits", seed=0)
        cfg = DIGITS_W16 if "width 16" in row else DIGITS_W8
        m, _ = train_model(sp, "lenet", TrainConfig(**cfg), seed)
        torch.manual_seed(seed)
        r = ref.train(ref.LeNetRef(sp.shape, sp.n_classes, cfg["width"]), sp.x_train, sp.y_train, epochs=cfg["epochs"], lr=cfg["lr"],
                      batch_size=cfg["batch_size"], seed=seed)
        if "dense" in row:
            return row, seed, len(sp.y_test), crev_robust(m, sp), ref_robust(r, sp)
        p = Pruner("global_l1", 0.95, finetune="standard", finetune_epochs=1, finetune_lr=1e-3).compress(m, sp, seed).model
        rp = ref.train(ref.prune_global_l1(r, 0.95), sp.x_train, sp.y_train, epochs=1, lr=1e-3, batch_size=64, seed=seed)
        return row, seed, len(sp.y_test), crev_robust(p, sp), ref_robust(rp, sp)
    sp = load_split("mnist5k", seed=0, n_test=500)
    m, _ = train_model(sp, "lenet", TrainConfig(epochs=6, lr=2e-3, batch_size=128), seed)
    q = Quantizer(bits=2, act_bits=4, qat_epochs=2, lr=1e-3).compress(m, sp, seed).model
    r = ref.quantize(ref.LeNetRef(sp.shape, sp.n_classes).load_crev(m.state_dict()), 2, "mse", act_bits=4).calibrate(sp.x_train)
    r = ref.train(r, sp.x_train, sp.y_train, epochs=2, lr=1e-3, batch_size=64, seed=seed).calibrate(sp.x_train)
    return row, seed, len(sp.y_test), crev_robust(q, sp), ref_robust(r, sp)


def reproduce_independent(seeds=range(10), workers: int = 2) -> None:
    """The issue's independent numbers at the settings above, ``seeds`` per row (10: the seed-to-seed SD
    of one run is 4-8 pp, so fewer seeds cannot decide a 3 pp target), with the reference implementation."""
    from concurrent.futures import ProcessPoolExecutor

    with tempfile.TemporaryDirectory() as d:
        jobs = [(row, s, str(Path(d) / "cache")) for row in INDEPENDENT for s in seeds]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            got = list(pool.map(_independent_seed, jobs))
    for row, target in INDEPENDENT.items():
        rs = [g for g in got if g[0] == row]
        crev = [100 * c / n for _, _, n, c, _ in rs]
        ind = [100 * r / n for _, _, n, _, r in rs]
        same = sum(c == r for _, _, _, c, r in rs)
        mean, sd = statistics.mean(crev), statistics.stdev(crev)
        diff = mean - target
        half = 1.96 * sd * (1 / len(crev) + 1 / ISSUE_SEEDS) ** 0.5  # seed noise of both means
        print(f"independent check, {row}: crev {mean:.1f} % (seed SD {sd:.1f} pp, {len(rs)} seeds) vs the issue's independent "
              f"script {target:.1f} %: {diff:+.1f} pp ({'within' if abs(diff) <= 3 else 'NOT within'} 3 pp; 95 % interval of the "
              f"difference from seed noise alone +/-{half:.1f} pp: {'consistent' if abs(diff) <= half else 'inconsistent'}); "
              f"bench/independent_reference.py {statistics.mean(ind):.1f} %, identical counts on {same} of {len(rs)} seeds")


def main() -> None:
    if "--independent" in sys.argv:
        n = int(sys.argv[sys.argv.index("--seeds") + 1]) if "--seeds" in sys.argv else 10
        reproduce_independent(seeds=range(n))
        return
    if "--full-claim" in sys.argv:
        full_claim_five_seeds()
        return
    scale_figures()
    if "--scale-only" in sys.argv:
        return
    attack_overhead()
    claim_runs("digits")
    if "--skip-mnist" not in sys.argv:
        claim_runs("mnist5k")


if __name__ == "__main__":
    main()
