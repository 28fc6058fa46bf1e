"""Biases: the items and users the model rates lowest and highest regardless of taste ("the worst movies of all time")."""
import streamlit as st

from cf_core import analysis
from ui import charts, widgets

st.title("Biases")
run = widgets.require_run()
if run is None:
    st.stop()
rec = run.recommender

controls = st.columns(2)
min_ratings = controls[0].slider("Minimum number of ratings", 0, 300, 20, key="bias_min_ratings",
                                 help="A film rated once can have any bias; the lesson looks at films with many ratings.")
n = controls[1].slider("Rows", 5, 50, 15, key="bias_n")

items = analysis.item_bias_table(rec, run.items, min_ratings)
users = analysis.user_bias_table(rec, min_ratings)
if not items.attrs["learned"]:
    st.info("This model has no bias terms: the tables show the damped baseline offsets computed from the data instead.")
# The numbers first: long titles would push them out of view.
item_cols = [c for c in ("title", "bias", "n_ratings", "mean_rating", "year", "item") if c in items]
numbers = {"bias": st.column_config.NumberColumn(format="%.3f"), "mean_rating": st.column_config.NumberColumn(format="%.2f")}

st.subheader("Items")
if not len(items):
    st.warning(f"No item has {min_ratings} ratings: lower the minimum.")
else:
    left, right = st.columns(2)
    left.caption("Lowest bias: the worst, whoever watches")
    left.dataframe(items.head(n)[item_cols], hide_index=True, column_config=numbers, key="items_low")
    right.caption("Highest bias: liked by everyone")
    right.dataframe(items.tail(n).iloc[::-1][item_cols], hide_index=True, column_config=numbers, key="items_high")
    st.plotly_chart(charts.bias_histogram(items["bias"], "item"), key="item_bias_hist")

st.subheader("Users")
if not len(users):
    st.warning(f"No user has {min_ratings} ratings: lower the minimum.")
else:
    left, right = st.columns(2)
    left.caption("Lowest bias: the harshest raters")
    left.dataframe(users.head(n), hide_index=True, column_config=numbers, key="users_low")
    right.caption("Highest bias: the most generous")
    right.dataframe(users.tail(n).iloc[::-1], hide_index=True, column_config=numbers, key="users_high")
    st.plotly_chart(charts.bias_histogram(users["bias"], "user"), key="user_bias_hist")
