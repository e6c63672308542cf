"""App benchmark (issue 6): each page's render time on the seed database after the first load.

Renders each page headless with streamlit.testing.v1.AppTest (the same script run as in a browser
session, without the network), first once to warm the caches, then 5 times; prints the median per
page. Target: every page under 2 s.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

PAGES = ["ui/overview.py", "ui/explore.py", "ui/add.py", "ui/review.py", "ui/meta.py", "ui/contradictions.py", "ui/replications.py"]


def main(runs: int = 5) -> None:
    from streamlit.testing.v1 import AppTest

    from evidence import init_database

    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{Path(d) / 'seed.db'}"
        init_database(url)
        os.environ["CREV_DB"] = url
        os.environ["CREV_CACHE"] = str(Path(d) / "cache")
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        at.run()
        worst = 0.0
        for page in PAGES:
            at.switch_page(page)
            t0 = time.perf_counter()
            at.run()
            first = time.perf_counter() - t0
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                at.run()
                times.append(time.perf_counter() - t0)
            if at.exception:
                print(f"{page}: EXCEPTION {at.exception[0].value}")
            med = statistics.median(times)
            worst = max(worst, med)
            print(f"{page:26s} first load {first:6.2f} s; after: median {med:5.2f} s over {runs} runs (target < 2 s)")
        print(f"slowest page after the first load: {worst:.2f} s")


if __name__ == "__main__":
    main()
