"""Biases: the items and users the model rates lowest and highest regardless of taste ("the worst movies of all
time")."""
import streamlit as st

from ui import charts, shared_views, widgets
from ui.safe import cells

st.title("Biases")
run = widgets.require_run()
if run is None:
    st.stop()
rec = run.recommender
st.caption("A bias is the part of a rating that has nothing to do with taste: what the model adds to every "
           "prediction for that film (or that person). A film with a low bias is rated low even by the people who "
           "like its kind of film (the lesson's \"worst movies of all time\"); a person with a high bias rates "
           "everything generously.")

controls = st.columns(2)
min_ratings = controls[0].slider("Minimum number of ratings", 0, 300, 20, key="bias_min_ratings",
                                 help="A film rated once can have any bias; the lesson looks at films with many "
                                      "ratings.")
n = controls[1].slider("Rows", 5, 50, 15, key="bias_n")

items, users = shared_views.biases(run.info.id, min_ratings)  # once per run and minimum, for every viewer
if not items.attrs["learned"] and rec.config.feedback != "implicit":  # (an implicit run: said below)
    st.info("This model has no bias terms: the tables show the damped baseline offsets computed from the data instead.")
# The numbers first: long titles would push them out of view.
item_cols = [c for c in ("title", "bias", "n_ratings", "mean_rating", "year", "item") if c in items]
numbers = widgets.COLUMNS



def both_ends(table, cols, what: str, low: str, high: str, histogram: bool = True) -> None:
    """The n lowest and n highest biases (the table's first and last rows) side by side, and their histogram."""
    st.subheader(f"{what.capitalize()}s")
    if not len(table):
        st.warning(f"No {what} has {min_ratings} ratings: lower the minimum.")
        return
    left, right = st.columns(2)
    left.caption(low)
    left.dataframe(cells(table.head(n)[cols]), hide_index=True, column_config=numbers, key=f"{what}s_low")
    right.caption(high)
    right.dataframe(cells(table.tail(n).iloc[::-1][cols]), hide_index=True, column_config=numbers, key=f"{what}s_high")
    if histogram:
        st.plotly_chart(shared_views.bias_histogram(run.info.id, min_ratings, what), config=charts.CONFIG,
                        key=f"{what}_bias_hist")


if rec.config.feedback == "implicit" and not items.attrs["learned"]:  # ALS: how often each was chosen instead
    st.info("This run learned from implicit feedback (what people chose), which has no bias terms: here are the "
            "items and people by how many interactions they have instead.", icon=":material/info:")
    both_ends(items.sort_values("n_ratings", kind="stable"),
              [c for c in ("title", "n_ratings", "year", "item") if c in items], "item", "Least chosen", "Most chosen",
              histogram=False)
    both_ends(users.sort_values("n_ratings", kind="stable"), [c for c in users.columns if c not in ("bias",
              "mean_rating")], "user", "Fewest interactions", "Most interactions", histogram=False)
    st.stop()
both_ends(items, item_cols, "item", "Lowest bias: the worst, whoever watches", "Highest bias: liked by everyone")
both_ends(users, list(users.columns), "user", "Lowest bias: the harshest raters", "Highest bias: the most generous")
