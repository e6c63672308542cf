"""CLI benchmarks (issue 13): whole processes, as a user starts them.

1. ``crev --help``: median of 5 fresh processes. Target < 0.3 s.
2. ``crev meta run --input effects.csv`` on 1,000,000 effects (random-effects REML, the summary
   printed) against PyMARE's whole process doing the same work: read the same CSV with pandas,
   fit REML, print the coefficient table and the heterogeneity statistics. Median of 3 each,
   alternating, so both see the same machine load. Target: ratio ours/PyMARE <= 1.0.

Each figure is a fresh interpreter (imports included), which is what a user waits for.
PyMARE is a bench-only peer: ``pip install -e .[bench]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

PYMARE_SCRIPT = """
import sys
import pandas as pd
from pymare import Dataset
from pymare.estimators import VarianceBasedLikelihoodEstimator
df = pd.read_csv(sys.argv[1])
est = VarianceBasedLikelihoodEstimator(method="REML").fit_dataset(Dataset(y=df["yi"].to_numpy(), v=df["vi"].to_numpy()))
res = est.summary()
print(res.to_df())
print(res.get_heterogeneity_stats())
"""


def crev_command() -> list[str]:
    """The installed ``crev`` script next to this interpreter, else ``python -m crev_cli``."""
    script = Path(sys.executable).with_name("crev")
    return [str(script)] if script.exists() else [sys.executable, "-m", "crev_cli"]


def wall(cmd: list[str]) -> float:
    """Seconds from start to exit of one process; fails loudly if the process fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return took


def write_effects(path: Path, k: int, seed: int = 1) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    pd.DataFrame({"yi": rng.normal(0.1, 0.3, k), "vi": rng.uniform(0.005, 0.05, k)}).to_csv(path, index=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=1_000_000, help="effects in the CSV (default 1,000,000)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each whole meta process (default 3)")
    args = ap.parse_args()
    crev = crev_command()

    wall(crev + ["--help"])  # warm the file cache
    helps = [wall(crev + ["--help"]) for _ in range(5)]
    print(f"crev --help: median {statistics.median(helps):.3f} s of 5 processes "
          f"(min {min(helps):.3f} s, max {max(helps):.3f} s; target < 0.3 s)")

    pymare_ok = importlib.util.find_spec("pymare") is not None
    with tempfile.TemporaryDirectory() as d:
        csv = Path(d) / "effects.csv"
        write_effects(csv, args.k)
        ours_cmd = crev + ["meta", "run", "--input", str(csv)]
        peer_cmd = [sys.executable, "-c", PYMARE_SCRIPT, str(csv)]
        ours_start = [sys.executable, "-c", "import crev_cli, metaanalysis.cli, pyarrow.csv"]
        peer_start = [sys.executable, "-c", "import pandas, pymare.estimators"]
        wall(ours_cmd)  # warm the file cache for both
        ours, peer, ours_imp, peer_imp = [], [], [], []
        for _ in range(args.runs):
            ours.append(wall(ours_cmd))
            ours_imp.append(wall(ours_start))
            if pymare_ok:
                peer.append(wall(peer_cmd))
                peer_imp.append(wall(peer_start))
    line = f"crev meta run --input ({args.k:,} effects, REML), whole process: median {statistics.median(ours):.2f} s of {args.runs}"
    if pymare_ok:
        ratio = statistics.median(ours) / statistics.median(peer)
        line += (f"; PyMARE whole process (pandas read_csv + REML + summary) median {statistics.median(peer):.2f} s;"
                 f" ratio ours/PyMARE = {ratio:.2f} (target <= 1.0)")
    else:
        line += " (PyMARE not installed: pip install -e .[bench])"
    print(line)
    line = f"  of which interpreter start and imports: ours {statistics.median(ours_imp):.2f} s"
    if pymare_ok:
        line += f", PyMARE's {statistics.median(peer_imp):.2f} s (pandas, scipy, sympy)"
    print(line)


if __name__ == "__main__":
    main()
