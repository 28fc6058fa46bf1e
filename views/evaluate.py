"""Evaluate: predictions vs actuals as a joint density plot, errors by true rating and by user activity, runs
compared."""
import pandas as pd
import streamlit as st

from ui import charts, shared_views, state, widgets
from ui.safe import cells

TABLE_NAMES = {"n": "ratings", "rmse": "RMSE", "mae": "MAE", "mean_prediction": "average prediction",
               "user_ratings": "the user's training ratings", "rating": "true rating"}

RANKING_NAMES = {"precision": "Precision@K: share of the top K that are hits",
                 "recall": "Recall@K: share of a user's held-out items in their top K",
                 "ndcg": "NDCG@K: hits near the top count more (1 is perfect)",
                 "map": "MAP@K: precision at each hit, averaged",
                 "coverage": "Coverage: share of the catalogue in someone's top K"}


def ranking_table(ranked: dict) -> pd.DataFrame:
    """One row per metric: this model's figure and the most popular items'."""
    return pd.DataFrame([{"metric": RANKING_NAMES[m], "this model": round(ranked["model"][m], 4),
                          "most popular items": round(ranked["most_popular"][m], 4)} for m in RANKING_NAMES])


def ranking_section(run_id: str, implicit: bool = False) -> None:
    """The top-K table, the model's figures beside the most popular items', at the K chosen (and for a rating
    model, counting as hits only the ratings of at least a value, where one is given)."""
    st.subheader("Top-K ranking")
    st.caption("What a recommender is used for: the order of its top K. For each validation user, every item they "
               "did not have in training is ranked by the model; a hit is an item they went on to choose (in the "
               "validation part). The same figures for recommending everyone the most popular items are the "
               "baseline to beat.")
    left, right = st.columns(2)
    k = int(left.number_input("K (items in each top list)", 1, 100, 10, key="top_k",
                              help="How many recommendations each person gets."))
    like = None
    if not implicit:
        lo, hi = run.recommender.rating_scale
        like = right.number_input("Count as a hit only ratings of at least", float(lo), float(hi), value=None,
                                  key="hit_like", placeholder="any rating (having rated it at all)",
                                  help="Empty: every held-out rating is a hit, low ones too (having rated a film "
                                       "says they chose to watch it). 4 on a 1-5 scale: only what they liked.")
    with st.spinner("Ranking every item for every validation user..."):
        ranked = shared_views.ranking(run_id, k, like)
    if ranked["users"]:
        st.dataframe(cells(ranking_table(ranked)), hide_index=True, key="ranking_table",
                     column_config={c: st.column_config.NumberColumn(c, format="%.4f")
                                    for c in ("this model", "most popular items")})
        st.caption(f"{ranked['users']:,} validation users, {ranked['relevant']:,} held-out (user, item) pairs to "
                   "find" + (f"; {ranked['held_out_unknown_to_the_model']:,} held-out rows of users or items the "
                             "model never saw are left out" if ranked["held_out_unknown_to_the_model"] else "")
                   + ". Higher is better for every figure.")
    else:
        st.info("No validation user is also in the training part, so there is no top K to judge.")


st.title("Evaluate")
run = widgets.require_run()
if run is None:
    st.stop()

run_id = run.info.id
if run.recommender.config.feedback == "implicit":  # no rating predicted: its top K is what it is judged by
    if not shared_views.evaluation(run_id)["n"]:
        st.info("This run was trained without a validation set, so there is nothing to judge its top K by.")
        st.stop()
    st.caption("This run learned from implicit feedback (what people chose), so it predicts no ratings: it is judged "
               "by its recommendations alone.")
    ranking_section(run_id, implicit=True)
    st.stop()
ev = shared_views.evaluation(run_id)  # computed once per run, shared by every viewer
if not ev["n"]:
    st.info("This run was trained without a validation set, so there is nothing to compare predictions with.")
    st.stop()

widgets.warn_if_no_better(run.info.metrics)
if ev["bad"]:  # a mean that skipped them would look fine
    st.error(f"{ev['bad']:,} of {ev['n']:,} predictions are not numbers: this run diverged, so no error can be "
             "measured. Train it again with a smaller learning rate.", icon=":material/error:")
    st.stop()
cols = st.columns(4)
base = run.info.metrics.get("valid_baseline_rmse")
cols[0].metric("Validation RMSE", f"{ev['rmse']:.4f}",
               help="The typical size of a prediction's miss, in rating points, on ratings the model never saw "
                    "(root mean square error: big misses count more). Lower is better"
                    + (f"; giving everyone the average rating would score {base:.4f}." if base else "."))
cols[1].metric("Validation MAE", f"{ev['mae']:.4f}",
               help="The average size of a miss, in rating points (mean absolute error). Lower is better.")
cols[2].metric("Validation ratings", f"{ev['n']:,}")
cols[3].metric("Cold (unseen user or item)", f"{ev['cold']:,}",
               help="Predicted by the fallback: global mean plus the known biases.")

ranking_section(run_id)

st.subheader("Predictions vs actuals")
st.caption("Each column is one true rating; the darker a cell, the more ratings the model predicted at that height. "
           "A perfect model would put everything on the dotted line. The bars show how the true ratings (top) and the "
           "predictions (right) are spread.")
bins = st.slider("Bins", 10, 120, 50, key="bins", help="How finely the predictions are grouped into cells.")
st.plotly_chart(shared_views.joint(run_id, bins), config=charts.CONFIG, key="joint")

left, right = st.columns(2)
for col, what in ((left, "rating"), (right, "activity")):
    with col:
        table, figure = shared_views.errors_by(run_id, what)
        st.plotly_chart(figure, config=charts.CONFIG, key=f"by_{what}")
        with st.expander("Table"):
            st.dataframe(cells(table.rename(columns=TABLE_NAMES)), hide_index=True)

if len(state.runs_i_can_see()) < 2:  # nothing to compare with (a share link's visitor sees one run)
    st.stop()
st.subheader("Beside earlier runs")
runs = [info for info in state.runs_i_can_see() if info.metrics.get("valid_rmse") is not None]
runs.sort(key=lambda info: info.created, reverse=True)
same = st.checkbox("Only runs on the same dataset", True, key="same_dataset")
if same:
    runs = [info for info in runs if info.dataset == run.info.dataset]
table = pd.DataFrame([{"label": f"{info.name} · {info.created_text}", "id": info.id, "model": info.model,
                       "dataset": info.dataset, "valid_rmse": info.metrics["valid_rmse"],
                       "valid_mae": info.metrics.get("valid_mae"), "epochs": info.metrics.get("epochs")}
                      for info in runs[:20]][::-1])
if len(table):
    st.plotly_chart(charts.runs_metrics(table, run.info.id), config=charts.CONFIG, key="runs_metrics")
    st.dataframe(cells(table.drop(columns="label"), exempt=("id",)), hide_index=True, key="runs_table")
