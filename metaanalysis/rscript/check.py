"""Compare ``r_results.json`` with crev's numbers for the same fit, field by field."""

from __future__ import annotations

import math

from .emit import R_RESULT_FIELDS

__all__ = ["compare_results"]


def _close(a, b, tol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol * max(abs(a), abs(b)) or abs(a - b) <= 1e-12


def compare_results(crev: dict, r: dict, tol: float = 1e-6, fields=R_RESULT_FIELDS) -> list[str]:
    """The ``fields`` (default :data:`R_RESULT_FIELDS`) where R and crev differ by more than ``tol`` (relative), as
    readable lines; a crev field with a value that R did not write counts as a difference."""
    out: list[str] = []
    crev = {k: v for k, v in crev.items() if k in fields}

    def walk(path: str, a, b):
        if isinstance(a, dict):
            if not isinstance(b, dict):
                out.append(f"{path}: crev has an object, R has {b!r}")
                return
            for k, v in a.items():
                if v is None and k not in b:
                    continue
                if k not in b:
                    out.append(f"{path}.{k}: R did not write it (crev: {v!r})")
                    continue
                walk(f"{path}.{k}", v, b[k])
        elif isinstance(a, list):
            if not isinstance(b, list) or len(a) != len(b):
                out.append(f"{path}: crev {a!r}, R {b!r}")
                return
            if path == ".sigma2" and all(isinstance(x, (int, float)) for x in a + b):
                # a component crev puts on the boundary (0) is reached by metafor's log-scale optimiser only as a tiny
                # positive number: it matches when it is below tol times the total variance
                total = max(sum(a), sum(b), 1e-300)
                a = [y if (x == 0 and 0 <= y <= tol * total) else x for x, y in zip(a, b)]
            for i, (x, y) in enumerate(zip(a, b)):
                walk(f"{path}[{i}]", x, y)
        elif not _close(a, b, tol):
            out.append(f"{path}: crev {a!r}, R {b!r}")

    walk("", crev, r)
    return out
