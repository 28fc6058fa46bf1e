"""Runs: your own runs with settings and metrics, curves compared, open, rename, share links (made and revoked),
downloads and delete; below them, the runs others shared with you (open only). The store refuses whatever the
person may not do, whatever this page shows."""
import pandas as pd
import streamlit as st

from cf_core.access import PermissionDenied
from cf_core.export import csv_bytes
from ui import auth, charts, state, widgets
from ui.safe import cells, lit

st.title("Runs")
store, who = state.store(), state.who()
everyone = who.admin and auth.mode() == "team" and st.toggle("Show everyone's runs (admin)", key="all_runs")
runs = state.my_runs(everyone)
shared = [info for info in store.shared_with(who) if info.id not in {r.id for r in runs}]


def open_run(run_id: str) -> None:
    state.set_current_run(run_id)
    st.session_state["_run_param"] = run_id
    st.query_params["run"] = run_id


def show_shared() -> None:
    """Runs of others that this person opened through a share link that still works: open only."""
    if not shared:
        return
    st.subheader("Shared with you")
    st.caption("Runs that others shared with you through a link you opened. You can explore them; only their owners "
               "can change, share or delete them. A revoked link takes its run off this list.")
    for info in shared:
        left, right = st.columns([5, 1], vertical_alignment="center")
        left.markdown(f"{lit(info.name or info.id)} · by {lit(info.owner)} · {info.created_text}")
        if right.button("Open", key=f"open_shared_{info.id}", icon=":material/open_in_new:"):
            open_run(info.id)
            st.switch_page(widgets.EXPLORE_PAGES[0][0])


if not runs:
    st.info("No saved runs of yours yet: train a model and it appears here.", icon=":material/info:")
    st.page_link(widgets.TRAIN_PAGE, label="Train a model", icon=":material/model_training:")
    show_shared()
    st.stop()

by_id = {info.id: info for info in runs}


def label(run_id: str) -> str:
    """Plain text for pickers (their options are shown as text, not Markdown)."""
    info = by_id[run_id]
    owner = "" if info.owner == who.name else f" · by {info.owner}"
    return f"{info.name} · {info.created_text} · {info.id[:6]}{owner}"


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
    return csv_bytes(pd.concat([pd.concat([frame, factors], axis=1), pd.concat([users, user_factors], axis=1)],
                               ignore_index=True))


def delete(run_id: str) -> None:
    try:
        state.forget_run(run_id)
    except PermissionDenied as exc:
        st.session_state["_runs_error"] = str(exc)
    st.session_state["confirm_delete"] = False
    if st.query_params.get("run") == run_id:
        del st.query_params["run"]


def rename(run_id: str) -> None:
    try:
        store.rename(run_id, st.session_state["rename_to"], who)
    except PermissionDenied as exc:
        st.session_state["_runs_error"] = str(exc)


def make_link(run_id: str) -> None:
    try:
        store.share(run_id, who, public=st.session_state.get("share_public", False))
    except PermissionDenied as exc:
        st.session_state["_runs_error"] = str(exc)


def revoke(token: str) -> None:
    try:
        store.revoke(token, who)
    except PermissionDenied as exc:
        st.session_state["_runs_error"] = str(exc)


if "_runs_error" in st.session_state:
    st.error(lit(st.session_state.pop("_runs_error")), icon=":material/block:")

damaged = state.damaged_runs([info.id for info in runs])
if damaged:
    st.warning(f"{len(damaged)} of your runs {'has' if len(damaged) == 1 else 'have'} damaged files and cannot be "
               "opened (marked in the table). Pick it below to delete it." if len(damaged) == 1 else
               f"{len(damaged)} of your runs have damaged files and cannot be opened (marked in the table). Pick one "
               "below to delete it.", icon=":material/warning:")
table = pd.DataFrame([{
    "state": f"damaged: {damaged[info.id]}" if info.id in damaged else "ok",
    "name": info.name, "owner": info.owner, "created": info.created_text, "model": widgets.model_label(info.model),
    "dataset": info.dataset,
    "valid_rmse": info.metrics.get("valid_rmse"), "valid_mae": info.metrics.get("valid_mae"),
    "valid_ndcg": info.metrics.get("valid_ndcg"), "epochs": info.metrics.get("epochs"),
    "seconds": info.metrics.get("train_seconds"),
    "n_factors": info.config.get("n_factors"), "optimizer": info.config.get("optimizer"), "lr": info.config.get("lr"),
    "wd": info.config.get("wd"), "batch_size": info.config.get("batch_size"), "schedule": info.config.get("schedule"),
    "current": info.id == state.current_run_id(), "id": info.id} for info in runs])
st.dataframe(cells(table, exempt=("id",)), hide_index=True, key="runs_table",
             column_config={"state": st.column_config.TextColumn("files", help="ok, or what is damaged"),
                            "valid_rmse": st.column_config.NumberColumn("validation RMSE", format="%.4f",
                                                                       help="Typical error on held-out ratings"),
                            "valid_mae": st.column_config.NumberColumn("validation MAE", format="%.4f",
                                                                      help="Average error on held-out ratings"),
                            "valid_ndcg": st.column_config.NumberColumn(
                                "top-10 NDCG", format="%.4f", help="An implicit-feedback run's measure: how near "
                                "the top of each person's ten recommendations the items they went on to choose are "
                                "(1 is perfect; the Evaluate page has the rest)"),
                            "seconds": st.column_config.NumberColumn("seconds", format="%.1f"),
                            "n_factors": st.column_config.NumberColumn("factors", help="Embedding size"),
                            "lr": st.column_config.NumberColumn("learning rate"),
                            "wd": st.column_config.NumberColumn("weight decay"),
                            "batch_size": st.column_config.NumberColumn("batch size")})

st.subheader("Compare")
left, right = st.columns([3, 1])
whole = [r for r in by_id if r not in damaged]
compare = left.multiselect("Runs", whole, default=whole[:3], format_func=label, key="compare")
metric = right.selectbox("Metric", ["valid_rmse", "valid_mae", "train_rmse", "train_mae"], key="compare_metric",
                         format_func=lambda m: charts.METRIC_NAMES[m][0].upper() + charts.METRIC_NAMES[m][1:],
                         help="RMSE and MAE measure how far predictions are from the real ratings (lower is better); "
                              "validation figures are on ratings the model never saw.")
if compare:
    st.plotly_chart(charts.runs_overlay({label(r): store.history(r, who).get("epochs", []) for r in compare}, metric),
                    config=charts.CONFIG, key="compare_chart")
    if metric.startswith("valid") and any(by_id[r].config.get("feedback") == "implicit" for r in compare):
        st.caption("Implicit-feedback runs predict no ratings, so they have no validation curve here: compare them by "
                   "their top-10 NDCG in the table above, or on the Evaluate page.")



def delete_controls(run_id: str) -> None:
    """A Delete button that works only once its confirmation box is ticked."""
    confirm = st.checkbox("Yes, delete it", key="confirm_delete")
    st.button("Delete", key="delete_run", disabled=not confirm, icon=":material/delete:", on_click=delete,
              args=(run_id,))


st.subheader("One run")
current = state.current_run_id()
ids = list(by_id)
picked = st.selectbox("Run", ids, index=ids.index(current) if current in by_id else 0, format_func=label,
                      key="run_pick")
info = by_id[picked]
with st.expander("Settings and metrics"):
    st.json({"metrics": info.metrics, "config": info.config})

if picked in damaged:
    st.error(f"This run's files are damaged ({lit(damaged[picked])}), so it cannot be opened, downloaded or shared. "
             "Delete it to take it off the list.", icon=":material/broken_image:")
    delete_controls(picked)
    show_shared()
    st.stop()

if st.button("Open this run", key="open_run", type="primary", icon=":material/open_in_new:"):
    open_run(picked)
    st.rerun()

actions = st.columns(3)
actions[0].download_button("Predictions (CSV)", lambda: csv_bytes(state.predictions(picked)),
                           file_name=f"predictions-{picked[:8]}.csv", mime="text/csv", key="download_predictions",
                           on_click="ignore", icon=":material/download:")
actions[1].download_button("Embeddings (CSV)", lambda: embeddings_csv(picked), file_name=f"embeddings-{picked[:8]}.csv",
                           mime="text/csv", key="download_embeddings", on_click="ignore", icon=":material/download:")
with actions[2]:
    delete_controls(picked)

with st.form("rename_form", border=False):
    cols = st.columns([3, 1], vertical_alignment="bottom")
    cols[0].text_input("New name", info.name, key="rename_to", max_chars=200)
    cols[1].form_submit_button("Rename", on_click=rename, args=(picked,), icon=":material/edit:")

st.subheader("Share links")
st.caption("Whoever opens a link sees this run on the explore pages (Evaluate, Embeddings, Biases, Recommend) and "
           "nothing else: not your other runs, not your data, no delete, no training. Revoke a link to end it.")
if auth.mode() == "local":
    st.caption("This server runs in local mode: it answers this computer only, and whoever uses this computer is you "
               "(with every right). To share with colleagues, run it for the team (`make serve`), where each person "
               "signs in and a link opens only what it shares.")
cols = st.columns([2, 1], vertical_alignment="bottom")
if auth.mode() == "team":
    cols[0].checkbox("Open to anyone with the link, without signing in", key="share_public",
                     help="Off: only people who can sign in to this server can open the link.")
cols[1].button("Make a share link", key="make_link", on_click=make_link, args=(picked,), icon=":material/link:")
for link in store.shares(picked, who):
    left, right = st.columns([5, 1], vertical_alignment="center")
    with left:
        st.caption(("Open to anyone with it" if link.public or auth.mode() == "local" else "Sign-in needed")
                   + f" · made {pd.Timestamp(link.created, unit='s'):%Y-%m-%d %H:%M}")
        st.code(state.share_url(link.token), language=None)
    right.button("Revoke", key=f"revoke_{link.token[:12]}", on_click=revoke, args=(link.token,),
                 icon=":material/link_off:")
if picked == state.current_run_id():
    links = st.columns(len(widgets.EXPLORE_PAGES))
    for col, (page, name) in zip(links, widgets.EXPLORE_PAGES):
        col.page_link(page, label=name)
show_shared()
