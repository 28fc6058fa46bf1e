"""Widgets several pages share: sign-in, the empty states that say what to do first, and the current-run header."""
from __future__ import annotations

import streamlit as st

from cf_core.access import PermissionDenied, Principal
from cf_core.data import DataError
from cf_core.store import Run, RunDamaged, RunNotFound

from . import auth, state
from .safe import lit

DATA_PAGE, TRAIN_PAGE, RUNS_PAGE = "views/data.py", "views/train.py", "views/runs.py"
EXPLORE_PAGES = (("views/evaluate.py", "Evaluate"), ("views/embeddings.py", "Embeddings"),
                 ("views/biases.py", "Biases"), ("views/recommend.py", "Recommend"))
NO_RUN = ("There is no run here that you may open: it was deleted, the link is wrong, or it belongs to someone else "
          "and was not shared with you.")


def signin_page() -> None:
    """Team mode, signed out: what the app is and how to get in."""
    st.title("Collab Studio")
    st.markdown("Collaborative filtering in the browser: upload ratings, train a recommender, and explore what it "
                "learned. This server is shared by a team, so **sign in** to see your runs.")
    if st.query_params.get("run") and not st.query_params.get("share"):
        st.info("This link names a run, which opens only for its owner once they sign in. If someone sent it to "
                "you, ask them for a share link (the Runs page makes one).", icon=":material/link:")
    auth.signin_panel()
    st.caption("Opened a share link? Sign in and it opens; if its owner made it open to anyone, it opens without "
               "signing in. No account? Ask the person who sent you the link, or whoever runs this server.")


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
        st.error(lit(st.session_state.pop("_builtin_error")), icon=":material/error:")


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
    except PermissionDenied as exc:  # a share link revoked since this tab opened it says so
        st.error(str(exc) if "revoked" in str(exc) else NO_RUN, icon=":material/block:")
        _links_back()
        return None
    except RunDamaged as exc:
        st.error(str(exc), icon=":material/broken_image:")
        _links_back()
        return None
    except RunNotFound:
        st.error(NO_RUN, icon=":material/error:")
        _links_back()
        return None
    if run is None:
        st.info("No run to explore yet. Train a model first, or load a saved run.", icon=":material/info:")
        _links_back()
        return None
    if state.share_token() is None:
        st.query_params["run"] = run.info.id  # a reload comes back to the same run
    metrics = run.info.metrics
    rmse = f" · validation RMSE {metrics['valid_rmse']:.4f}" if metrics.get("valid_rmse") is not None else ""
    shared = f" · shared by {lit(run.info.owner)}" if run.info.owner != state.who().name else ""
    st.caption(f"Run {lit(run.info.name or run.info.id)} · {model_label(run.info.model)} · "
               f"{lit(run.info.dataset or 'data')} · "
               f"{run.info.created_text}{rmse}{shared}")
    return run


MODEL_LABELS = {"dotbias": "Dot product with biases", "dot": "Dot product (no biases)", "nn": "Neural net"}


def model_label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


# Column names for people, for every table of items, users and predictions (the data keeps its own names).
COLUMNS = {
    "n_ratings": st.column_config.NumberColumn("ratings", help="How many ratings it has in the training data"),
    "mean_rating": st.column_config.NumberColumn("average rating", format="%.2f"),
    "predicted_rating": st.column_config.NumberColumn("predicted rating", format="%.2f"),
    "bias": st.column_config.NumberColumn("bias", format="%.3f",
                                          help="How much higher or lower than average it is rated, whoever rates it"),
    "similarity": st.column_config.NumberColumn("similarity", format="%.3f", help="1: the same tastes; 0: unrelated"),
    "valid_rmse": st.column_config.NumberColumn("RMSE", format="%.4f", help="Typical error on held-out ratings"),
    "valid_mae": st.column_config.NumberColumn("MAE", format="%.4f", help="Average error on held-out ratings"),
}


def warn_if_no_better(metrics: dict) -> None:
    """A plain warning when a run predicts no better than the average rating would."""
    from cf_core.recommender import no_better_than_the_mean

    if no_better_than_the_mean(metrics):
        st.warning(f"This model predicts no better than giving everyone the average rating (validation RMSE "
                   f"{metrics['valid_rmse']:.4f}, the average's {metrics['valid_baseline_rmse']:.4f}): it learned "
                   "nothing useful. Try the automatic optimizer (Bayesian or Adam), a smaller learning rate if the "
                   "curves jump, or a larger one if they stay flat.", icon=":material/warning:")


def _links_back() -> None:
    if not state.who().signed_in:
        return
    cols = st.columns(2)
    with cols[0]:
        st.page_link(TRAIN_PAGE, label="Train a model", icon=":material/model_training:")
    with cols[1]:
        st.page_link(RUNS_PAGE, label="Load a saved run", icon=":material/history:")


def sidebar_status(who: Principal) -> None:
    """Who is signed in, what the session has picked: its dataset and its current run.

    Drawn before the page runs, so whatever changes them mid-page either runs in a widget callback or reruns.
    """
    if not who.signed_in:
        if state.share_token():
            st.sidebar.caption("You are viewing a shared run without signing in.")
        return
    with st.sidebar:
        if auth.mode() == "team":
            auth.signout_control(who)
        ds = state.dataset()
        if ds or not state.share_token():  # someone looking at a shared run has no use for "Dataset: none yet"
            st.caption(f"Dataset: {lit(ds.name)}" if ds else "Dataset: none yet")
        run_id = state.current_run_id()
        if run_id:
            try:
                info = state.run_info(run_id)
                st.caption(f"Current run: {lit(info.name or info.id)} ({model_label(info.model)})")
            except (RunNotFound, PermissionDenied):
                st.caption("Current run: not available")
        else:
            st.caption("Current run: none yet")
