"""Recommend: top-N for an existing user, items similar to an item, and recommendations for a new user (fold-in)."""
import numpy as np
import pandas as pd
import streamlit as st

from cf_core import analysis
from cf_core.ids import UnknownIdError
from ui import widgets
from ui.safe import cells, lit

PICK_LIMIT = 5000  # items offered in the pickers, most rated first
# The score first: genres can be long and would push it out of view.
RECS = ("title", "predicted_rating", "n_ratings", "year", "genres", "item")
HISTORY = ("title", "rating", "year", "genres", "item")
SIMILAR = ("title", "similarity", "n_ratings", "year", "genres", "item")

st.title("Recommend")
run = widgets.require_run()
if run is None:
    st.stop()
rec = run.recommender
lo, hi = rec.rating_scale

order = np.argsort(-rec.item_counts, kind="stable")[:PICK_LIMIT]
popular = list(rec.item_map.decode(order))
titles, years = {}, {}
if run.items is not None:
    titles = dict(zip(run.items["item"].tolist(), run.items["title"].tolist()))
    if "year" in run.items:
        years = dict(zip(run.items["item"].tolist(), run.items["year"].tolist()))


def label(item) -> str:
    """"Title (year)" where the run has titles (the id only when two titles would read the same), else the id."""
    title = titles.get(item) or titles.get(str(item))
    if not title:
        return str(item)
    year = years.get(item, years.get(str(item)))
    return f"{title} ({int(year)})" if year is not None and not pd.isna(year) else f"{title} (id {item})"


implicit = rec.config.feedback == "implicit"  # what people chose: scores, interactions, nothing to rate
unit = "interactions" if implicit else "ratings"
columns = {**widgets.COLUMNS, **({"predicted_rating": st.column_config.NumberColumn(
    "score (0 to 1)", format="%.2f", help="How likely the model thinks the person is to choose it"),
    "n_ratings": st.column_config.NumberColumn("interactions", help="How many times it was chosen in training"),
    "rating": st.column_config.NumberColumn("count")} if implicit else {})}
controls = st.columns(2)
n = controls[0].slider("How many", 5, 50, 10, key="rec_n")
min_ratings = controls[1].slider(f"Only items with at least this many {unit}", 0, 200, 10, key="rec_min_ratings")
for_user, similar, new_user = st.tabs(["For a user", "Similar items", "For a new user"])

with for_user:
    busiest = np.argsort(-rec.user_counts, kind="stable")[:5]
    top_user = rec.user_map.decode(busiest[:1])[0]
    user = st.text_input("User id", str(top_user), key="rec_user",
                         help="Any user id from the ratings the run was trained on: what the model recommends to "
                              "them, beside what they rated highest.")
    st.caption(f"Users with the most {unit}: " + ", ".join(
        f"{lit(u)} ({int(c):,} {unit})" for u, c in zip(rec.user_map.decode(busiest), rec.user_counts[busiest])))
    try:
        recs = analysis.recommend(rec, user, run.items, n, min_ratings)
    except UnknownIdError as exc:
        st.error(f"{lit(exc)}. Pick a user id that was in the training data.")
    else:
        left, right = st.columns(2)
        left.caption("Recommended (not chosen in training)" if implicit else "Recommended (not rated in training)")
        left.dataframe(cells(recs), hide_index=True, column_order=RECS, column_config=columns, key="user_recs")
        if run.train is not None:
            right.caption("What they chose most" if implicit else "What they rated highest")
            right.dataframe(cells(analysis.user_history(rec, run.train, user, run.items, n)), hide_index=True,
                            column_order=HISTORY, column_config=columns, key="user_history")

with similar:
    item = st.selectbox("Item", popular, format_func=label, key="similar_item")
    st.dataframe(cells(analysis.similar_items(rec, item, run.items, n, min_ratings)), hide_index=True,
                 column_order=SIMILAR, column_config=columns, key="similar_table")
    st.caption("Nearest by the cosine similarity of the item embeddings.")

with new_user:
    st.caption("Pick a handful of items you chose (this run learned from what people chose), as if you were a new "
               "user: the model works out your tastes from them (without training again) and recommends at once."
               if rec.config.feedback == "implicit" else
               "Rate a handful of items as if you were a new user: the model works out your tastes from them "
               "(without training again) and recommends at once.")
    chosen = st.multiselect("Items you chose" if implicit else "Items you have an opinion on", popular[:500],
                            format_func=label, key="new_items", max_selections=20,
                            help=f"Up to 20 of the 500 items with the most {unit}"
                                 + ("." if implicit else "; then rate each below."))
    ratings = {}
    step = 0.5 if hi - lo <= 10 else 1.0
    middle = lo + round((hi - lo) / 2 / step) * step  # choosing an item is not yet an opinion of it
    for item in chosen:
        if rec.config.feedback == "implicit":  # an implicit run learned what people chose: choosing is enough
            ratings[item] = 1.0
            continue
        ratings[item] = st.slider(f"Your rating of {lit(label(item))}", float(lo), float(hi), float(middle), step,
                                  key=f"new_rating_{item}")
    if ratings:
        st.dataframe(cells(analysis.recommend_new_user(rec, ratings, run.items, n, min_ratings)), hide_index=True,
                     column_order=RECS, column_config=columns, key="new_user_recs")
    else:
        st.info("Pick a few items above to get recommendations.")
