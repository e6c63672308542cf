"""Figures the app draws from numbers the engines computed (no statistics here).

:func:`funnel_density_figure` aggregates the funnel plot: thousands of effects (8,158 on the seed)
as one scatter would send every point to the browser and hide the shape under overplotting, so the
effects are binned server-side into a density (counts per cell, log colour scale), with the
study-level estimates (Peters et al. 2008 contours around zero) drawn as points on top.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy import stats

__all__ = ["funnel_density_figure"]


def funnel_density_figure(yi, vi, estimate: float, studies: pd.DataFrame | None = None, *, unit: str = "percentage points",
                          subtitle: str = "", bins: tuple[int, int] = (70, 40)) -> go.Figure:
    """Effects against their standard errors as a binned density, significance contours at
    10/5/1 % around zero, the pooled estimate's funnel, and ``studies`` (study, estimate, ci_low,
    ci_high, k) as labelled points at their pooled standard error."""
    y = np.asarray(yi, float)
    se = np.sqrt(np.asarray(vi, float))
    ok = np.isfinite(y) & np.isfinite(se)
    y, se = y[ok], se[ok]
    st_se = None
    if studies is not None and len(studies):
        st_se = (studies["ci_high"] - studies["ci_low"]).to_numpy(float) / (2 * stats.norm.isf(0.025))
    top = float(np.nanmax(np.concatenate([se, st_se if st_se is not None else []]))) * 1.05 if len(se) else 1.0
    fig = go.Figure()
    for p, color in ((0.10, "rgb(240,240,240)"), (0.05, "rgb(215,215,215)"), (0.01, "rgb(185,185,185)")):
        z = stats.norm.isf(p / 2)
        fig.add_trace(go.Scatter(x=[0, z * top, -z * top, 0], y=[0, top, top, 0], fill="toself", mode="lines", line=dict(width=0),
                                 fillcolor=color, name=f"not significant at {p:g} (around 0)", hoverinfo="skip"))
    if len(y):
        lo, hi = float(np.nanmin(y)), float(np.nanmax(y))
        pad = (hi - lo) * 0.02 or 1.0
        counts, xe, ye = np.histogram2d(y, se, bins=bins, range=[[lo - pad, hi + pad], [0, top]])
        z = np.where(counts > 0, np.log10(np.maximum(counts, 1)) + 1e-3, np.nan).T
        fig.add_trace(go.Heatmap(x=(xe[:-1] + xe[1:]) / 2, y=(ye[:-1] + ye[1:]) / 2, z=z, customdata=counts.T, colorscale="Blues", zmin=0,
                                 hovertemplate="effect %{x:.1f}, SE %{y:.2f}: %{customdata:.0f} effects<extra></extra>",
                                 colorbar=dict(title="effects<br>per cell", tickvals=[0, 1, 2, 3, 4], ticktext=["1", "10", "100", "1,000", "10,000"]),
                                 name="effects (density)", showscale=True))
    fig.add_trace(go.Scatter(x=[estimate - 1.96 * top, estimate, estimate + 1.96 * top], y=[top, 0, top], mode="lines",
                             line=dict(color="firebrick", dash="dash"), name=f"pooled {estimate:.2f} ± 1.96 SE"))
    if st_se is not None:
        fig.add_trace(go.Scatter(x=studies["estimate"], y=st_se, mode="markers", marker=dict(color="black", size=9, symbol="diamond"),
                                 name="study estimates", text=[f"{s} (k = {k})" for s, k in zip(studies["study"], studies["k"])],
                                 hovertemplate="%{text}<br>%{x:.2f}, SE %{y:.2f}<extra></extra>"))
    fig.update_layout(title="Funnel plot (effects binned; diamonds: studies)" + (f"<br><sup>{subtitle}</sup>" if subtitle else ""),
                      xaxis_title=f"effect ({unit})", yaxis_title="standard error", yaxis=dict(autorange="reversed"),
                      legend=dict(orientation="h", y=-0.2, yanchor="top"), height=520, margin=dict(t=80))
    return fig
