"""Plots: forest, contour-enhanced funnel, bubble (meta-regression) and dose-response.

Each figure is built once, as a Plotly figure (interactive in the app), from numbers the analysis
functions computed; :func:`save_figure` writes it headless: ``.html`` through Plotly, ``.png``,
``.svg`` and ``.pdf`` through Plotly's Kaleido with the local Chromium (the same rendering as the app).
The plots hold no statistics of their own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy import stats

from .analysis import Analysis
from .bias.funnel import EggerResult
from .dose import DoseResponse
from .models.results import MetaResult
from .models.uni import MetaInputError

__all__ = ["forest_figure", "funnel_figure", "bubble_figure", "dose_figure", "change_by_study_figure", "evidence_map_figure", "save_figure",
           "StaticExportError"]

_ZERO = dict(type="line", line=dict(color="grey", dash="dot", width=1))
_POOLED = dict(type="line", line=dict(color="firebrick", dash="dash", width=1))


def forest_figure(rows: pd.DataFrame, pooled: MetaResult | None, *, label: str = "study", unit: str = "percentage points",
                  title: str = "Forest plot") -> go.Figure:
    """Rows (``label``, estimate, ci_low, ci_high, k) with the pooled diamond and its prediction interval."""
    rows = rows.reset_index(drop=True)
    n = len(rows)
    ypos = np.arange(n, 0, -1) + 1
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=rows["estimate"], y=ypos, mode="markers", name="estimate (95% CI)",
        marker=dict(symbol="square", size=8 + 8 * np.sqrt(rows.get("k", pd.Series(1, index=rows.index)) / max(rows.get("k", pd.Series(1)).max(), 1)), color="black"),
        error_x=dict(type="data", symmetric=False, array=rows["ci_high"] - rows["estimate"], arrayminus=rows["estimate"] - rows["ci_low"], color="black"),
        text=[f"{r[label]} (k = {r.get('k', 1)})" for _, r in rows.iterrows()], hoverinfo="text+x",
    ))
    ticks, labels = list(ypos), [f"{r[label]} (k={r.get('k', 1)})" for _, r in rows.iterrows()]
    shapes = [dict(_ZERO, x0=0, x1=0, y0=0, y1=n + 2)]
    if pooled is not None:
        c = pooled.coefficients[0]
        fig.add_trace(go.Scatter(x=[c.ci_low, c.estimate, c.ci_high, c.estimate, c.ci_low], y=[1, 1.35, 1, 0.65, 1], fill="toself", mode="lines",
                                 line=dict(color="firebrick"), fillcolor="firebrick", name=f"pooled {c.estimate:.2f} [{c.ci_low:.2f}, {c.ci_high:.2f}]"))
        if pooled.pi_low is not None:
            fig.add_trace(go.Scatter(x=[pooled.pi_low, pooled.pi_high], y=[0.5, 0.5], mode="lines", line=dict(color="firebrick", width=2, dash="dot"),
                                     name=f"95% prediction interval [{pooled.pi_low:.2f}, {pooled.pi_high:.2f}]"))
        shapes.append(dict(_POOLED, x0=c.estimate, x1=c.estimate, y0=0, y1=n + 2))
        ticks.append(1)
        labels.append(f"pooled ({pooled.model}, {pooled.method})")
    fig.update_layout(title=title, xaxis_title=f"effect ({unit})", yaxis=dict(tickvals=ticks, ticktext=labels, range=[0, n + 2]),
                      shapes=shapes, height=max(350, 28 * n + 160), legend=dict(orientation="h", y=1.0, yanchor="bottom"), margin=dict(l=10, r=10))
    return fig


def funnel_figure(yi, vi, estimate: float, *, egger: EggerResult | None = None, unit: str = "percentage points",
                  title: str = "Contour-enhanced funnel plot") -> go.Figure:
    """Effects against their standard errors, shaded where they would be significant at 10/5/1 %
    around zero (Peters et al. 2008), with the pooled estimate."""
    y = np.asarray(yi, float)
    se = np.sqrt(np.asarray(vi, float))
    top = float(se.max()) * 1.05 if len(se) else 1.0
    grid = np.array([0.0, top])
    fig = go.Figure()
    for p, color in ((0.10, "rgb(235,235,235)"), (0.05, "rgb(200,200,200)"), (0.01, "rgb(160,160,160)")):
        z = stats.norm.isf(p / 2)
        fig.add_trace(go.Scatter(x=[0, z * top, -z * top, 0], y=[0, top, top, 0], fill="toself", mode="lines", line=dict(width=0),
                                 fillcolor=color, name=f"p > {p:g} (white: p < 0.10)" if p == 0.10 else f"p > {p:g}", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=y, y=se, mode="markers", name="effects", marker=dict(color="black", size=5, opacity=0.6)))
    fig.add_trace(go.Scatter(x=[estimate - 1.96 * grid[1], estimate, estimate + 1.96 * grid[1]], y=[top, 0, top], mode="lines",
                             line=dict(color="firebrick", dash="dash"), name=f"pooled {estimate:.2f} ± 1.96 SE"))
    sub = f"Egger's test: {'t' if egger and egger.df else 'z'} = {egger.stat:.2f}, p = {egger.pval:.3g}" if egger else ""
    fig.update_layout(title=title + (f"<br><sup>{sub}</sup>" if sub else ""), xaxis_title=f"effect ({unit})", yaxis_title="standard error",
                      yaxis=dict(autorange="reversed"), shapes=[dict(_ZERO, x0=0, x1=0, y0=0, y1=top)], legend=dict(orientation="h", y=1.0, yanchor="bottom"))
    return fig


def bubble_figure(an: Analysis, x: str, *, unit: str = "percentage points", title: str | None = None) -> go.Figure:
    """Effects against a continuous moderator, bubble size ∝ precision, with the fitted line."""
    df = an.effects
    fit = an.fit
    xs = df[x].astype(float)
    size = 1 / np.sqrt(df["vi"].to_numpy())
    size = 4 + 20 * size / size.max()
    fig = go.Figure(go.Scatter(x=xs, y=df["yi"], mode="markers", marker=dict(size=size, opacity=0.4, color="steelblue"), name="effects (size ∝ 1/SE)"))
    names = [c.name for c in fit.coefficients]
    if x in names:
        grid = np.linspace(float(xs.min()), float(xs.max()), 50)
        b0, b1 = fit.coefficients[0].estimate, fit.coef(x).estimate
        yfit = b0 + b1 * grid
        if f"{x}^2" in names:
            yfit = yfit + fit.coef(f"{x}^2").estimate * grid ** 2
        fig.add_trace(go.Scatter(x=grid, y=yfit, mode="lines", line=dict(color="firebrick"), name=f"meta-regression (slope {b1:.3g}, p = {fit.coef(x).pval:.3g})"))
    fig.update_layout(title=title or f"Bubble plot: effect against {x}", xaxis_title=x, yaxis_title=f"effect ({unit})",
                      shapes=[dict(_ZERO, x0=float(xs.min()), x1=float(xs.max()), y0=0, y1=0)], legend=dict(orientation="h", y=1.0, yanchor="bottom"))
    return fig


def dose_figure(dr: DoseResponse, *, unit: str = "percentage points", title: str | None = None) -> go.Figure:
    """Effect against sparsity (or any level) with the quadratic fit, its CI band and the zero line."""
    g = dr.grid
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=np.concatenate([g[dr.x], g[dr.x][::-1]]), y=np.concatenate([g["ci_high"], g["ci_low"][::-1]]), fill="toself",
                             mode="lines", line=dict(width=0), fillcolor="rgba(178,34,34,0.2)", name="95% CI of the fit"))
    fig.add_trace(go.Scatter(x=dr.points[dr.x], y=dr.points["yi"], mode="markers", marker=dict(size=4, opacity=0.35, color="steelblue"), name="effects"))
    fig.add_trace(go.Scatter(x=g[dr.x], y=g["fitted"], mode="lines", line=dict(color="firebrick", width=2), name="linear + quadratic fit"))
    fm = getattr(dr, "factor_means", None)
    if fm is not None and len(fm):  # the dose as a factor: pooled effect per level with its CI, beside the curve
        xs = dr.points.groupby(dr.points[dr.x].round(3))[dr.x].median() if fm["level"].str.startswith("(").any() else None
        xm = [float(v) for v in fm["level"]] if xs is None else [float(dr.points[dr.x][(dr.points[dr.x] > float(lv.strip("(]").split(",")[0]))
                                                                                   & (dr.points[dr.x] <= float(lv.strip("(]").split(",")[1]))].median())
                                                                  for lv in fm["level"]]
        fig.add_trace(go.Scatter(x=xm, y=fm["estimate"], mode="markers", marker=dict(symbol="diamond", size=10, color="black"),
                                 error_y=dict(type="data", symmetric=False, array=fm["ci_high"] - fm["estimate"], arrayminus=fm["estimate"] - fm["ci_low"]),
                                 name=f"{dr.x} as a factor: pooled effect per level (95% CI)"))
    fig.update_layout(title=title or f"Dose-response: effect against {dr.x}<br><sup>{dr.verdict}</sup>", xaxis_title=dr.x, yaxis_title=f"effect ({unit})",
                      shapes=[dict(_ZERO, x0=float(g[dr.x].min()), x1=float(g[dr.x].max()), y0=0, y1=0)], legend=dict(orientation="h", y=1.0, yanchor="bottom"))
    return fig


def change_by_study_figure(effects: pd.DataFrame, x: str, *, unit: str = "percentage points") -> go.Figure:
    """Effect (robust-accuracy change) against sparsity or bit width, one colour per study."""
    df = effects[effects[x].notna()]
    fig = go.Figure()
    for study, g in df.groupby("study"):
        fig.add_trace(go.Scatter(x=g[x].astype(float), y=g["yi"], mode="markers", name=str(study), marker=dict(size=6, opacity=0.5),
                                 text=g.get("dataset"), hovertemplate=f"{study}<br>{x}=%{{x}}<br>change=%{{y:.2f}}<extra>%{{text}}</extra>"))
    lo, hi = (float(df[x].min()), float(df[x].max())) if len(df) else (0.0, 1.0)
    label = {"sparsity": "sparsity (share of weights removed)", "bits": "bit width (bits)"}.get(x, x)
    fig.update_layout(title=f"Robust-accuracy change against {label}", xaxis_title=label, yaxis_title=f"compressed - dense robust accuracy ({unit})",
                      shapes=[dict(_ZERO, x0=lo, x1=hi, y0=0, y1=0)], legend=dict(orientation="h", y=1.0, yanchor="bottom"))
    return fig


def evidence_map_figure(m: pd.DataFrame) -> go.Figure:
    """Compression family × (adversarial training, threat model): colour = pooled effect, text = results / studies."""
    m = m.copy()
    m["col"] = m["adversarial_training"].astype(str).radd("AT ") + " / " + m["threat_model"].astype(str)
    fams = sorted(m["compression_family"].unique())
    cols = sorted(m["col"].unique())
    z = np.full((len(fams), len(cols)), np.nan)
    text = [["" for _ in cols] for _ in fams]
    for _, r in m.iterrows():
        i, j = fams.index(r["compression_family"]), cols.index(r["col"])
        z[i, j] = r["pooled"]
        text[i][j] = f"{r['results']} results<br>{r['studies']} stud{'y' if r['studies'] == 1 else 'ies'}<br>{r['direction']}"
    lim = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    fig = go.Figure(go.Heatmap(z=z, x=cols, y=fams, text=text, texttemplate="%{text}", colorscale="RdBu", zmid=0, zmin=-lim, zmax=lim,
                               colorbar=dict(title="pooled change<br>(pp)"), hoverongaps=False))
    fig.update_layout(title="Evidence map: compression family × adversarial training / threat model", xaxis_title="adversarial training / threat model",
                      yaxis_title="compression family", height=120 + 70 * len(fams))
    return fig


class StaticExportError(RuntimeError):
    """A static image (.png/.svg/.pdf) could not be written: Kaleido found no Chromium to render it."""


def save_figure(fig: go.Figure, path: str | Path) -> Path:
    """Write ``fig`` to ``.html`` (interactive) or ``.png`` / ``.svg`` / ``.pdf`` (static, headless).

    Static images are rendered by Plotly itself through Kaleido (>= 1), so a file shows exactly what
    the app shows (heatmaps, styling, annotations). Kaleido drives a local Chromium: Debian's
    ``chromium`` on the PATH, or the browser named by ``BROWSER_PATH``; nothing is downloaded.
    Without one, :class:`StaticExportError` says what to install (``.html`` needs no browser).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".html":
        fig.write_html(path, include_plotlyjs="cdn")
        return path
    if suffix not in (".png", ".svg", ".pdf"):
        raise MetaInputError("the output must end in .png, .svg, .pdf or .html")
    import kaleido
    from kaleido.errors import ChromeNotFoundError

    size = dict(width=fig.layout.width or 900, height=fig.layout.height or 500)
    try:
        # Kaleido directly rather than fig.write_image: Plotly cannot turn MathJax off, and Kaleido's
        # default page loads it from a CDN (no figure here uses LaTeX; the machine may be offline).
        image = kaleido.calc_fig_sync(fig, opts=dict(format=suffix[1:], **size), kopts=dict(mathjax=False))
    except ChromeNotFoundError as exc:
        raise StaticExportError(f"{path}: writing {suffix} needs Chromium (apt-get install chromium, or set BROWSER_PATH to a "
                                f"Chrome/Chromium binary); .html needs none ({type(exc).__name__})") from None
    path.write_bytes(image)
    return path
