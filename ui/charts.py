"""Plotly figure builders for every page: plain functions of DataFrames and dicts, testable without Streamlit.

Every user-supplied string (ids, titles, genres, run names) passes through `safe.html` before it reaches a hover,
tick label or legend, where Plotly would otherwise read its `<a href>` and `<b>` tags.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .safe import html, html_series

ACCENT = "#d6336c"
SECOND = "#1c7ed6"
MUTED = "#adb5bd"
# SVG keeps every point a DOM element (hover, selection, tests); WebGL draws faster beyond a few thousand points.
SVG_MAX_POINTS = 3000


# Plotly's toolbar only while the pointer is over a chart (Streamlit shows it always, over titles on a phone).
CONFIG = {"displayModeBar": "hover", "displaylogo": False}
# 24 colours that stay apart (MovieLens has 19 genres; Plotly's default ten repeat: Action looked like Musical).
CATEGORY_COLORS = px.colors.qualitative.Dark24
# What each metric is called on a chart, for people (not the engine's keys).
METRIC_NAMES = {"valid_rmse": "validation RMSE", "valid_mae": "validation MAE", "train_rmse": "training RMSE",
                "train_mae": "training MAE", "rmse": "RMSE", "mae": "MAE"}


def _layout(fig: go.Figure, title: str | None = None, **kwargs) -> go.Figure:
    """Title and legend on the left, above the plot, where Plotly's toolbar (top right) never covers them; log axes
    labelled at powers of ten only (Plotly's default read "2, 3 ... 100, 2")."""
    legend = kwargs.pop("showlegend", None)
    shown = legend if legend is not None else sum(t.showlegend is not False for t in fig.data) > 1
    top = (34 if title else 8) + (26 if shown else 0)
    fig.update_layout(title=dict(text=title, x=0, xref="container", xanchor="left", y=1, yref="container",
                                 yanchor="top", pad=dict(t=10, l=4)) if title else None,
                      margin=dict(l=10, r=10, t=top, b=10), hovermode="closest", showlegend=shown,
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0, title_text=""),
                      **kwargs)
    fig.update_xaxes(dtick=1) if fig.layout.xaxis.type == "log" else None
    fig.update_yaxes(dtick=1) if fig.layout.yaxis.type == "log" else None
    return fig


# ---------------------------------------------------------------- data
def rating_histogram(histogram: Mapping[float, int], counts: bool = False) -> go.Figure:
    """Bars of the number of ratings per rating value (summarize()["rating_histogram"]); with `counts`, of the
    (user, item) pairs per count of interactions (implicit feedback: plays, clicks)."""
    values, n = list(histogram.keys()), list(histogram.values())
    what, of = ("count", "pairs") if counts else ("rating", "ratings")
    fig = go.Figure(go.Bar(x=values, y=n, marker_color=ACCENT,
                           hovertemplate=f"{what} %{{x}}: %{{y:,}} {of}<extra></extra>"))
    title = "How often each pair interacted (counts)" if counts else "Ratings by value"
    return _layout(fig, title, xaxis_title=what, yaxis_title=of, bargap=0.15,
                   **({"yaxis_type": "log"} if counts else {}))


def long_tail(counts: pd.Series, what: str, unit: str = "ratings") -> go.Figure:
    """Ratings (or another `unit`: interactions) per user or per item, sorted from most to least active, on a log
    scale: the long tail."""
    y = np.sort(counts.to_numpy())[::-1]
    x = np.arange(1, len(y) + 1)
    fig = go.Figure(go.Scatter(x=x, y=y, mode="lines", line=dict(color=ACCENT), fill="tozeroy",
                               hovertemplate=f"{what} #%{{x}}: %{{y:,}} {unit}<extra></extra>"))
    fig = _layout(fig, f"{unit.capitalize()} per {what}", xaxis_title=f"{what}s, most active first", yaxis_title=unit,
                  yaxis_type="log")
    ticks = _log_ticks(float(y.min()), float(y.max())) if len(y) else []
    if len(ticks) >= 3:  # 1, 2, 5, 10, 20, 50 ... written out, where powers of ten alone would be too few
        fig.update_yaxes(tickvals=ticks, ticktext=[f"{t:,.0f}" if t >= 1 else f"{t:g}" for t in ticks], dtick=None)
    return fig


def _log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 steps covering [lo, hi] (lo > 0)."""
    lo = max(lo, 1e-9)
    ticks = [m * 10.0**e for e in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
             for m in (1, 2, 5)]
    return [t for t in ticks if lo / 1.5 <= t <= hi * 1.5]


def crosstab_heatmap(table: pd.DataFrame, titles: Mapping | None = None) -> go.Figure:
    """The lesson's cross-tab: most active users (rows) x most rated items (columns), blank where unrated; items
    named by their titles (shortened, the whole title and the id in the hover) where `titles` has them."""
    z = table.to_numpy(dtype=float)
    text = np.where(np.isnan(z), "", np.vectorize(lambda v: f"{v:g}")(np.nan_to_num(z)))
    names = [str(titles.get(c, c)) if titles is not None else str(c) for c in table.columns]
    short = [n if len(n) <= 18 else n[:17] + "…" for n in names]
    # Two titles may shorten alike, and a category axis would merge them: a repeat gets invisible marks to differ.
    x: list[str] = []
    for label in short:
        while html(label) in x:
            label += "\u200b"
        x.append(html(label))
    hover = np.array([[f"{html(n)} (item {html(c)})" for n, c in zip(names, table.columns)]] * len(table.index))
    fig = go.Figure(go.Heatmap(z=z, x=x, y=[html(i) for i in table.index], text=text, customdata=hover,
                               texttemplate="%{text}", colorscale="RdPu", colorbar=dict(title="rating"),
                               hovertemplate="user %{y}, %{customdata}: %{z}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", type="category", title="user")
    fig.update_xaxes(type="category", title="item" if titles is None else None, tickangle=-40)
    return _layout(fig, "Most active users x most rated items")


# ---------------------------------------------------------------- training
def loss_curve(batches: Sequence[Sequence[float]], title: str = "Training loss (smoothed)",
               unit: str = "MSE") -> go.Figure:
    """The smoothed batch loss (MSE, or `unit`) against the fractional epoch, from a progress snapshot's batches."""
    arr = np.asarray(batches, dtype=float).reshape(-1, 3)
    fig = go.Figure(go.Scatter(x=arr[:, 0], y=arr[:, 1], mode="lines+markers" if len(arr) < 30 else "lines",
                               name="loss", line=dict(color=ACCENT),
                               hovertemplate="epoch %{x:.2f}: loss %{y:.4f}<extra></extra>"))
    return _layout(fig, title, xaxis_title="epoch", yaxis_title=unit)


def epoch_metrics(epochs: Sequence[Mapping], metric: str = "rmse", title: str | None = None) -> go.Figure:
    """Train and validation `metric` per epoch (progress snapshot's or a run history's epochs); `title`: the
    chart's and the axis's name for it (an implicit fit's error of its interactions)."""
    frame = pd.DataFrame(list(epochs))
    fig = go.Figure()
    for split, color in (("train", MUTED), ("valid", ACCENT)):
        col = f"{split}_{metric}"
        if len(frame) and col in frame and frame[col].notna().any():
            fig.add_trace(go.Scatter(x=frame["epoch"], y=frame[col], mode="lines+markers",
                                     name=f"{split} {metric.upper()}", line=dict(color=color),
                                     hovertemplate=f"epoch %{{x}}: %{{y:.4f}}<extra>{split}</extra>"))
    return _layout(fig, title or f"{metric.upper()} per epoch", xaxis_title="epoch",
                   yaxis_title=metric.upper() if title is None else "error")


def lr_finder(lrs: Sequence[float], losses: Sequence[float], suggestion: float | None = None) -> go.Figure:
    """Smoothed loss against the learning rate (log scale), with the suggested rate marked."""
    fig = go.Figure(go.Scatter(x=list(lrs), y=list(losses), mode="lines", name="loss", line=dict(color=ACCENT),
                               hovertemplate="lr %{x:.2e}: loss %{y:.4f}<extra></extra>"))
    if suggestion is not None and len(lrs):
        y = float(np.interp(np.log(suggestion), np.log(lrs), losses))
        fig.add_trace(go.Scatter(x=[suggestion], y=[y], mode="markers", name=f"suggested {suggestion:.1e}",
                                 marker=dict(color=SECOND, size=12, symbol="x")))
    return _layout(fig, "Learning-rate finder", xaxis_title="learning rate", yaxis_title="smoothed loss",
                   xaxis_type="log")


def runs_overlay(histories: Mapping[str, Sequence[Mapping]], metric: str = "valid_rmse") -> go.Figure:
    """One line per run: `metric` per epoch, to compare runs."""
    fig = go.Figure()
    for name, epochs in histories.items():
        frame = pd.DataFrame(list(epochs))
        if len(frame) and metric in frame:
            fig.add_trace(go.Scatter(x=frame["epoch"], y=frame[metric], mode="lines+markers", name=html(name),
                                     hovertemplate="epoch %{x}: %{y:.4f}<extra>%{fullData.name}</extra>"))
    name = METRIC_NAMES.get(metric, metric)
    return _layout(fig, f"{name[0].upper() + name[1:]} per epoch", xaxis_title="epoch", yaxis_title=name)


# ---------------------------------------------------------------- evaluation
def joint_density(d: Mapping) -> go.Figure:
    """Predictions vs actuals as a density heatmap with marginal histograms, from analysis.density()."""
    centers, edges = np.asarray(d["centers"]), np.asarray(d["edges"])
    width = float(edges[1] - edges[0])
    counts = np.asarray(d["counts"]).T  # analysis.density: rows actual; a heatmap's rows are y (predicted)
    fig = make_subplots(rows=2, cols=2, column_widths=[0.8, 0.2], row_heights=[0.2, 0.8], shared_xaxes=True,
                        shared_yaxes=True, horizontal_spacing=0.01, vertical_spacing=0.01)
    fig.add_trace(go.Heatmap(x=centers, y=centers, z=np.where(counts > 0, np.log10(np.maximum(counts, 1)) + 1, np.nan),
                             customdata=counts, colorscale="RdPu", showscale=False,
                             hovertemplate="actual %{x:.2f}, predicted %{y:.2f}: %{customdata:,.0f}<extra></extra>"),
                  row=2, col=1)
    lo, hi = float(edges[0]), float(edges[-1])
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(color=SECOND, dash="dot"), name="perfect",
                             hoverinfo="skip"), row=2, col=1)
    fig.add_trace(go.Bar(x=centers, y=d["actual_hist"], width=width, marker_color=MUTED, name="actual",
                         hovertemplate="actual %{x:.2f}: %{y:,}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(y=centers, x=d["pred_hist"], width=width, orientation="h", marker_color=ACCENT,
                         name="predicted", hovertemplate="predicted %{y:.2f}: %{x:,}<extra></extra>"), row=2, col=2)
    fig.update_xaxes(title="actual rating", row=2, col=1)
    fig.update_yaxes(title="predicted rating", row=2, col=1)
    return _layout(fig, None, showlegend=False, height=520, bargap=0)


def error_bars(frame: pd.DataFrame, x: str, title: str, x_title: str | None = None) -> go.Figure:
    """RMSE (bars) per group in column `x`, with the group size in the hover (analysis.error_by_*)."""
    labels = [f"{v:g}" if isinstance(v, (int, float)) else html(v) for v in frame[x].tolist()]
    x_title = x_title or x
    fig = go.Figure(go.Bar(x=labels, y=frame["rmse"], marker_color=ACCENT, customdata=frame["n"],
                           hovertemplate=f"{x_title} %{{x}}: RMSE %{{y:.3f}} over %{{customdata:,}} ratings"
                                         "<extra></extra>"))
    fig.update_xaxes(type="category")
    return _layout(fig, title, xaxis_title=x_title, yaxis_title="RMSE (typical error)")


def runs_metrics(frame: pd.DataFrame, current: str | None = None) -> go.Figure:
    """Validation RMSE and MAE of several runs (columns label, id, valid_rmse, valid_mae), the current one marked."""
    fig = go.Figure()
    for metric, color in (("valid_rmse", ACCENT), ("valid_mae", SECOND)):
        opacity = [1.0 if rid == current else 0.45 for rid in frame["id"]]
        fig.add_trace(go.Bar(x=html_series(frame["label"]), y=frame[metric], name=METRIC_NAMES[metric],
                             marker=dict(color=color, opacity=opacity),
                             hovertemplate="%{x}: %{y:.4f}<extra>" + METRIC_NAMES[metric] + "</extra>"))
    return _layout(fig, "This run beside earlier runs", barmode="group", yaxis_title="error")


# ---------------------------------------------------------------- embeddings
def pca_scatter(frame: pd.DataFrame, x: str = "pc1", y: str = "pc2", color: str | None = None) -> go.Figure:
    """Items on two principal components; hover shows the title, colour by a column of `frame`."""
    frame = frame.copy()
    for col in ("title", "genres", "genre", "item"):
        if col in frame and not pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = html_series(frame[col])
    hover = {c: True for c in ("year", "genres", "n_ratings", "mean_rating") if c in frame}
    hover.update({x: ":.3f", y: ":.3f"})
    if "mean_rating" in hover:
        hover["mean_rating"] = ":.2f"
    labels = {"n_ratings": "ratings", "mean_rating": "average rating", "genres": "genres", "genre": "genre",
              "year": "year", x: x.upper(), y: y.upper()}
    fig = px.scatter(frame, x=x, y=y, color=color, hover_name="title", hover_data=hover, labels=labels,
                     render_mode="svg" if len(frame) <= SVG_MAX_POINTS else "webgl",
                     color_continuous_scale="Plasma", color_discrete_sequence=CATEGORY_COLORS, opacity=0.8)
    fig.update_traces(marker=dict(size=7))
    fig = _layout(fig, None, height=600, xaxis_title=x.upper(), yaxis_title=y.upper())
    # Many categories make a wide legend: below the map, where the toolbar (top right) never covers an entry.
    return fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.12, xanchor="left", x=0),
                             margin=dict(t=8))


def explained_variance(ratio: Sequence[float]) -> go.Figure:
    """Share of the embedding variance each principal component explains."""
    names = [f"PC{i + 1}" for i in range(len(ratio))]
    fig = go.Figure(go.Bar(x=names, y=list(ratio), marker_color=ACCENT, hovertemplate="%{x}: %{y:.1%}<extra></extra>"))
    return _layout(fig, "Explained variance", yaxis_tickformat=".0%", height=260)


def bias_histogram(values: Sequence[float], what: str) -> go.Figure:
    """Distribution of learned biases."""
    fig = go.Figure(go.Histogram(x=list(values), nbinsx=50, marker_color=ACCENT,
                                 hovertemplate="bias %{x}: %{y} " + what + "s<extra></extra>"))
    return _layout(fig, f"{what.capitalize()} biases", xaxis_title="bias", yaxis_title=f"{what}s", height=260)
