"""Runs: every saved run with its settings and metrics, curves compared, open, share, download and delete."""
from urllib.parse import urlsplit

import pandas as pd
import streamlit as st

from ui import charts, state, widgets

st.title("Runs")
store = state.store()
runs = store.list()
if not runs:
    st.info("No saved runs yet: train a model and it appears here.", icon=":material/info:")
    st.page_link(widgets.TRAIN_PAGE, label="Train a model", icon=":material/model_training:")
    st.stop()

by_id = {info.id: info for info in runs}


def label(run_id: str) -> str:
    info = by_id[run_id]
    return f"{info.name} · {info.created_text} · {info.id[:6]}"


def share_link(run_id: str) -> str:
    """An absolute link to the Evaluate page of a run when the browser's URL is known, else a relative one."""
    url = st.context.url or ""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rsplit('/', 1)[0]}" if parts.netloc else ""
    return f"{base}/evaluate?run={run_id}"


def embeddings_csv(run_id: str) -> bytes:
    run = state.load_run(run_id)
    rec = run.recommender
    factors = pd.DataFrame(rec.item_factors(), columns=[f"f{j}" for j in range(rec.item_factors().shape[1])])
    frame = pd.DataFrame({"kind": "item", "id": rec.item_map.ids})
    users = pd.DataFrame({"kind": "user", "id": rec.user_map.ids})
    user_factors = pd.DataFrame(rec.user_factors(), columns=factors.columns)
    bias_i, bias_u = rec.item_bias(), rec.user_bias()
    if bias_i is not None:
        frame["bias"], users["bias"] = bias_i, bias_u
    out = pd.concat([pd.concat([frame, factors], axis=1), pd.concat([users, user_factors], axis=1)], ignore_index=True)
    return out.to_csv(index=False).encode()


def delete(run_id: str) -> None:
    state.forget_run(run_id)
    st.session_state["confirm_delete"] = False
    if st.query_params.get("run") == run_id:
        del st.query_params["run"]


table = pd.DataFrame([{
    "name": info.name, "created": info.created_text, "model": info.model, "dataset": info.dataset,
    "valid_rmse": info.metrics.get("valid_rmse"), "valid_mae": info.metrics.get("valid_mae"),
    "epochs": info.metrics.get("epochs"), "seconds": info.metrics.get("train_seconds"),
    "n_factors": info.config.get("n_factors"), "optimizer": info.config.get("optimizer"), "lr": info.config.get("lr"),
    "wd": info.config.get("wd"), "batch_size": info.config.get("batch_size"), "schedule": info.config.get("schedule"),
    "current": info.id == state.current_run_id(), "id": info.id} for info in runs])
st.dataframe(table, hide_index=True, key="runs_table",
             column_config={"valid_rmse": st.column_config.NumberColumn(format="%.4f"),
                            "valid_mae": st.column_config.NumberColumn(format="%.4f"),
                            "seconds": st.column_config.NumberColumn(format="%.1f")})

st.subheader("Compare")
left, right = st.columns([3, 1])
compare = left.multiselect("Runs", list(by_id), default=list(by_id)[:3], format_func=label, key="compare")
metric = right.selectbox("Metric", ["valid_rmse", "valid_mae", "train_rmse", "train_mae"], key="compare_metric")
if compare:
    st.plotly_chart(charts.runs_overlay({label(r): store.history(r).get("epochs", []) for r in compare}, metric),
                    key="compare_chart")

st.subheader("One run")
current = state.current_run_id()
ids = list(by_id)
picked = st.selectbox("Run", ids, index=ids.index(current) if current in by_id else 0, format_func=label, key="run_pick")
info = by_id[picked]
with st.expander("Settings and metrics"):
    st.json({"metrics": info.metrics, "config": info.config})

actions = st.columns(4)
if actions[0].button("Open this run", key="open_run", type="primary", icon=":material/open_in_new:"):
    state.set_current_run(picked)
    st.session_state["_run_param"] = picked
    st.query_params["run"] = picked
    st.rerun()
actions[1].download_button("Predictions (CSV)", lambda: state.predictions(picked).to_csv(index=False).encode(),
                           file_name=f"predictions-{picked[:8]}.csv", mime="text/csv", key="download_predictions",
                           on_click="ignore", icon=":material/download:")
actions[2].download_button("Embeddings (CSV)", lambda: embeddings_csv(picked), file_name=f"embeddings-{picked[:8]}.csv",
                           mime="text/csv", key="download_embeddings", on_click="ignore", icon=":material/download:")
with actions[3]:
    confirm = st.checkbox("Yes, delete it", key="confirm_delete")
    st.button("Delete", key="delete_run", disabled=not confirm, icon=":material/delete:", on_click=delete, args=(picked,))

st.caption("Share link: anyone who opens it sees this run on the explore pages.")
st.code(share_link(picked), language=None)
if picked == state.current_run_id():
    links = st.columns(len(widgets.EXPLORE_PAGES))
    for col, (page, name) in zip(links, widgets.EXPLORE_PAGES):
        col.page_link(page, label=name)
