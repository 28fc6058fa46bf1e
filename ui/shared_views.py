"""What the explore pages compute, once per run and shared by every session that views it.

Twenty colleagues opening one shared run used to make the server build every figure and table twenty times (a
median of 28 to 72 s per page on 2 cores, against about 2 s for one viewer). A run never changes once saved, so each
result is cached by (run id, the page's settings): figures and tables in st.cache_resource (one object, no copy per
session: Streamlit only reads a figure to serialise it), bounded so that many runs do not fill the memory.

Callers reach these only after `widgets.require_run()` has checked that the session may see the run.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cf_core import analysis

from . import charts, state

ENTRIES = 64  # per function: a few runs x a few settings


def _run(run_id: str):
    return state._load(state._root(), run_id)


def _frame(run_id: str) -> pd.DataFrame:
    return state._predictions(run_id)


@st.cache_resource(show_spinner=False, max_entries=ENTRIES)
def evaluation(run_id: str) -> dict:
    """The validation metrics: RMSE, MAE, counts, and how many predictions are not numbers."""
    frame = _frame(run_id)
    if not len(frame):
        return {"n": 0}
    bad = int((~np.isfinite(frame["prediction"].to_numpy(dtype=float))).sum())
    err = frame["prediction"] - frame["rating"]
    return {"n": len(frame), "bad": bad, "rmse": float((err ** 2).mean() ** 0.5), "mae": float(err.abs().mean()),
            "cold": int(frame["cold"].sum())}


@st.cache_resource(show_spinner=False, max_entries=ENTRIES)
def ranking(run_id: str, k: int, like: float | None = None) -> dict:
    """The run's and the most popular items' ranking metrics at K on its validation ratings (`cf_core.ranking`);
    `like`: only the ratings of at least it are hits (an implicit run's own threshold where it has one)."""
    from cf_core.ranking import ranking as rank

    rec = _run(run_id).recommender
    if rec.config.feedback == "implicit":
        like = rec.config.like
    return rank(rec, _frame(run_id)[["user", "item", "rating"]], k, like)


@st.cache_resource(show_spinner=False, max_entries=ENTRIES)
def joint(run_id: str, bins: int) -> go.Figure:
    frame, run = _frame(run_id), _run(run_id)
    lo, hi = run.recommender.rating_scale
    return charts.joint_density(analysis.density(frame["prediction"].to_numpy(), frame["rating"].to_numpy(),
                                                 bins, lo, hi))


@st.cache_resource(show_spinner=False, max_entries=ENTRIES)
def errors_by(run_id: str, what: str) -> tuple[pd.DataFrame, go.Figure]:
    """Error by true rating (`what` = rating) or by the user's activity (`what` = activity): table and bars."""
    frame = _frame(run_id)
    if what == "rating":
        table = analysis.error_by_rating(frame)
        return table, charts.error_bars(table, "rating", "Error by true rating", "true rating")
    table = analysis.error_by_activity(_run(run_id).recommender, frame)
    return table, charts.error_bars(table, table.columns[0], "Error by the user's number of training ratings",
                                    "the user's training ratings")


@st.cache_resource(show_spinner=False, max_entries=ENTRIES)
def pca(run_id: str, n_components: int, min_ratings: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The items' PCA map (with a genre and a numeric year column for colouring) and its explained variance.
    Raises ValueError (too few items) as analysis.item_pca does."""
    run = _run(run_id)
    frame, ratio = analysis.item_pca(run.recommender, run.items, n_components, min_ratings)
    if "genres" in frame:
        frame["genre"] = frame["genres"].fillna("").astype(str).str.split("|").str[0].replace("", "(none)")
    if "year" in frame:
        frame["year"] = frame["year"].astype("Float64").astype(float)
    return frame, ratio


@st.cache_resource(show_spinner=False, max_entries=ENTRIES)
def pca_map(run_id: str, n_components: int, min_ratings: int, x: str, y: str, color: str | None) -> go.Figure:
    frame, _ = pca(run_id, n_components, min_ratings)
    return charts.pca_scatter(frame, x, y, color)


@st.cache_resource(show_spinner=False, max_entries=ENTRIES)
def variance(run_id: str, n_components: int, min_ratings: int) -> go.Figure:
    return charts.explained_variance(pca(run_id, n_components, min_ratings)[1])


@st.cache_resource(show_spinner=False, max_entries=ENTRIES)
def extremes(run_id: str, n_components: int, min_ratings: int, component: int,
             n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    return analysis.component_extremes(pca(run_id, n_components, min_ratings)[0], component, n)


@st.cache_resource(show_spinner=False, max_entries=ENTRIES)
def biases(run_id: str, min_ratings: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The item and user bias tables (sorted, lowest first)."""
    run = _run(run_id)
    return (analysis.item_bias_table(run.recommender, run.items, min_ratings),
            analysis.user_bias_table(run.recommender, min_ratings))


@st.cache_resource(show_spinner=False, max_entries=ENTRIES)
def bias_histogram(run_id: str, min_ratings: int, what: str) -> go.Figure:
    items, users = biases(run_id, min_ratings)
    return charts.bias_histogram((items if what == "item" else users)["bias"], what)
