"""Widgets several pages share: the empty states that say what to do first, and the current-run header."""
from __future__ import annotations

import streamlit as st

from cf_core.data import DataError
from cf_core.store import Run, RunNotFound

from . import state

DATA_PAGE, TRAIN_PAGE, RUNS_PAGE = "pages/data.py", "pages/train.py", "pages/runs.py"
EXPLORE_PAGES = (("pages/evaluate.py", "Evaluate"), ("pages/embeddings.py", "Embeddings"),
                 ("pages/biases.py", "Biases"), ("pages/recommend.py", "Recommend"))


def _use_builtin() -> None:
    try:
        state.set_dataset(state.load_builtin())
        st.session_state.pop("_builtin_error", None)
    except (DataError, RuntimeError, OSError) as exc:
        st.session_state["_builtin_error"] = f"Could not load {state.BUILTIN_NAME}: {exc}"


def load_builtin_button(key: str) -> None:
    """A button that makes MovieLens 100k the session's dataset, with a readable error when it cannot."""
    st.button(f"Use {state.BUILTIN_NAME}", key=key, type="primary", icon=":material/movie:", on_click=_use_builtin)
    if "_builtin_error" in st.session_state:
        st.error(st.session_state.pop("_builtin_error"), icon=":material/error:")


def require_dataset() -> state.Dataset | None:
    """The session's dataset, or an empty state (load the built-in data here, or go to Data) and None."""
    ds = state.dataset()
    if ds is None:
        st.info("No dataset yet. Pick the built-in MovieLens 100k here, or upload your own ratings on the Data page.",
                icon=":material/info:")
        load_builtin_button("empty_load_builtin")
        st.page_link(DATA_PAGE, label="Go to Data", icon=":material/table:")
    return ds


def require_run() -> Run | None:
    """The current run, or an empty state (train one, or load one on Runs) and None."""
    try:
        run = state.current_run()
    except RunNotFound:
        st.error(f"There is no saved run with id {state.current_run_id()!r}: it was deleted, or the link is wrong. "
                 "Pick another run on the Runs page.")
        st.page_link(RUNS_PAGE, label="Go to Runs", icon=":material/history:")
        return None
    if run is None:
        st.info("No run to explore yet. Train a model first, or load a saved run.", icon=":material/info:")
        cols = st.columns(2)
        with cols[0]:
            st.page_link(TRAIN_PAGE, label="Train a model", icon=":material/model_training:")
        with cols[1]:
            st.page_link(RUNS_PAGE, label="Load a saved run", icon=":material/history:")
        return None
    metrics = run.info.metrics
    rmse = f" · valid RMSE {metrics['valid_rmse']:.4f}" if "valid_rmse" in metrics else ""
    st.caption(f"Run **{run.info.name or run.info.id}** · {run.info.model} · {run.info.dataset or 'data'} · "
               f"{run.info.created_text}{rmse}")
    return run


def sidebar_status() -> None:
    """What the session has picked: its dataset and its current run.

    Drawn before the page runs, so whatever changes them mid-page either runs in a widget callback or reruns.
    """
    with st.sidebar:
        ds = state.dataset()
        st.caption(f"Dataset: **{ds.name}**" if ds else "Dataset: none yet")
        run_id = state.current_run_id()
        if run_id:
            try:
                info = state.store().info(run_id)
                st.caption(f"Current run: **{info.name or info.id}** ({info.model})")
            except RunNotFound:
                st.caption("Current run: not found")
        else:
            st.caption("Current run: none yet")
