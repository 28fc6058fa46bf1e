"""Embeddings: an interactive PCA map of the item embeddings, and the items at both ends of each component."""
import streamlit as st

from ui import charts, shared_views, widgets
from ui.safe import cells, lit

COLOR_LABELS = {"genre": "Genre (the first listed)", "year": "Year", "mean_rating": "Mean rating",
                "n_ratings": "Number of ratings", "none": "None"}

st.title("Embeddings")
run = widgets.require_run()
if run is None:
    st.stop()
rec = run.recommender
n_factors = rec.item_factors().shape[1]
if n_factors < 2:
    st.info("This run's embeddings have a single factor: there is no map to draw.")
    st.stop()

most = int(rec.item_counts.max())
controls = st.columns(4)
min_ratings = controls[0].slider("Minimum number of ratings", 0, min(most, 500), min(20, most // 4),
                                 key="emb_min_ratings", help="Items with few ratings have noisy embeddings.")
run_id, k = run.info.id, min(5, n_factors)
try:
    frame, ratio = shared_views.pca(run_id, k, min_ratings)  # computed once per run and settings, for every viewer
except ValueError as exc:
    st.warning(lit(exc))
    st.stop()
n_components = len(ratio)  # fewer when only a few items pass the minimum
options = [f"pc{i + 1}" for i in range(n_components)]
def component(pc: str) -> str:
    return f"{pc.upper()} ({ratio[int(pc[2:]) - 1]:.0%} of how items differ)"


x = controls[1].selectbox("Horizontal axis", options, 0, key="pc_x", format_func=component,
                          help="Each component is a direction in the items' learned traits; the first ones explain "
                               "the most of how the items differ.")
y = controls[2].selectbox("Vertical axis", options, min(1, n_components - 1), key="pc_y", format_func=component)
has = run.items is not None
color = controls[3].selectbox("Colour by", [c for c in COLOR_LABELS if has or c not in ("genre", "year")],
                              format_func=COLOR_LABELS.get, key="emb_color")
st.caption(f"{len(frame):,} items with at least {min_ratings} ratings. Each point is an item, placed by its "
           "learned traits: items close together are liked by the same people. "
           f"{x.upper()} explains {ratio[int(x[2:]) - 1]:.1%} of the variance, {y.upper()} "
           f"{ratio[int(y[2:]) - 1]:.1%}: that share of how the items differ lies along each axis.")
st.plotly_chart(shared_views.pca_map(run_id, k, min_ratings, x, y, None if color == "none" else color),
                config=charts.CONFIG, key="pca_map")

st.subheader("The ends of each component")
st.caption("What the items at one end share and the other end lacks is what the component means.")
n = st.slider("Items at each end", 3, 25, 10, key="emb_n")
for c in range(1, n_components + 1):
    low, high = shared_views.extremes(run_id, k, min_ratings, c, n)
    with st.expander(f"PC{c} ({ratio[c - 1]:.1%} of the variance)", expanded=c <= 2):
        left, right = st.columns(2)
        left.caption("Lowest")
        left.dataframe(cells(low), hide_index=True, column_config=widgets.COLUMNS, key=f"low_{c}")
        right.caption("Highest")
        right.dataframe(cells(high), hide_index=True, column_config=widgets.COLUMNS, key=f"high_{c}")
st.plotly_chart(shared_views.variance(run_id, k, min_ratings), config=charts.CONFIG, key="variance")
