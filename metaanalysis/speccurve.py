"""The specification-curve figure of a multiverse (Simonsohn, Simmons & Nelson 2020, Fig. 2).

Per effect measure (their units differ, so each gets its own panel): the fitted specifications'
estimates sorted from low to high with their 95% CIs (filled where the CI excludes zero), and
below them a dot matrix with one row per option of each choice, a dot where the specification
uses it. Drawn with Matplotlib (headless), so it can be written to a file or inlined in HTML.
"""

from __future__ import annotations

import numpy as np

__all__ = ["specification_curve_figure"]


def specification_curve_figure(mv):
    """A Matplotlib figure of ``mv`` (a :class:`metaanalysis.multiverse.MultiverseResult`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .multiverse import DIMENSIONS

    effects = [e for e in DIMENSIONS["effect"] if any(r.ok and r.spec.effect == e for r in mv.results)] or [DIMENSIONS["effect"][0]]
    all_dims = [(d, o) for d, opts in DIMENSIONS.items() if d != "effect" for o in opts]
    fig, axes = plt.subplots(2, len(effects), figsize=(7 * len(effects), 9), squeeze=False, gridspec_kw={"height_ratios": [1.1, 1.4]},
                             sharex="col")
    for j, eff in enumerate(effects):
        rs = sorted([r for r in mv.results if r.ok and r.spec.effect == eff], key=lambda r: r.estimate)
        dims = [(d, o) for d, o in all_dims if not (d == "rho" and eff != "delta_robust")]  # rho enters delta_robust only
        top, bottom = axes[0, j], axes[1, j]
        x = np.arange(len(rs))
        if rs:
            est = np.array([r.estimate for r in rs])
            lo = np.array([r.ci_low for r in rs])
            hi = np.array([r.ci_high for r in rs])
            excl = np.array([r.excludes_zero for r in rs])
            top.vlines(x, lo, hi, color=np.where(excl, "#b2182b", "#9e9e9e"), linewidth=0.8)
            top.scatter(x, est, s=10, c=np.where(excl, "#b2182b", "#424242"), zorder=3)
            n_ex = int(excl.sum())
            top.set_title(f"{eff}: CI excludes zero in {n_ex} of {len(rs)} fitted specifications", fontsize=10)
        top.axhline(0, color="black", linewidth=0.6, linestyle=":")
        top.set_ylabel("pooled effect (" + ("percentage points" if eff == "delta_robust" else "log odds ratio") + ")")
        for i, (d, o) in enumerate(dims):
            used = [k for k, r in enumerate(rs) if r.spec.choices()[d] == o]
            bottom.scatter(used, [i] * len(used), s=6, marker="s", color="#2166ac")
        bottom.set_yticks(range(len(dims)))
        bottom.set_yticklabels([f"{d}: {o}" for d, o in dims], fontsize=7)
        bottom.set_ylim(len(dims) - 0.5, -0.5)
        bottom.set_xlabel("specification (sorted by estimate)")
        for i in range(1, len(dims)):
            if dims[i][0] != dims[i - 1][0]:
                bottom.axhline(i - 0.5, color="#cccccc", linewidth=0.5)
    fig.suptitle(f"Specification curve: {len(mv.results)} specifications, {mv.n_distinct_fits} distinct fits", fontsize=11)
    fig.tight_layout()
    return fig
