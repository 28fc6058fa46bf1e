"""Data: pick MovieLens 100k or upload ratings (and items), correct the inferred columns, and look at the data."""
import streamlit as st

from cf_core.data import DataError, crosstab, preview
from ui import charts, state, widgets
from ui.safe import lit

AUTO = "(inferred)"

st.title("Data")
source = st.radio("Ratings", ["builtin", "upload"], key="source", horizontal=True,
                  format_func={"builtin": f"Built-in: {state.BUILTIN_NAME}", "upload": "Upload a file"}.get)

if source == "builtin":
    st.caption("100,000 ratings (1-5 stars) by 943 users on 1,682 movies, with titles, years and genres "
               "(GroupLens Research).")
    widgets.load_builtin_button("load_builtin")
else:
    st.caption("CSV, TSV, `::` or `|` separated text, Parquet or Excel; a long table (user, item, rating"
               "[, timestamp]) or a user x item matrix. Columns are inferred from their names; correct them below.")
    limit = int(st.get_option("server.maxUploadSize"))
    st.caption(f"Files up to {limit:,} MB each (this server's limit). What you upload is yours: it is kept with your "
               "session and your runs, and never shown to anyone you do not share a run with.")
    upload = st.file_uploader(f"Ratings file (up to {limit:,} MB)", key="ratings_file")
    items_upload = st.file_uploader(f"Items file (optional: item id, title, year, genres; up to {limit:,} MB)",
                                    key="items_file")
    if upload is not None:
        data = upload.getvalue()
        try:
            head = preview(data, name=upload.name, n=10)
            st.dataframe(head, hide_index=True, height=200)
            columns = list(head.columns)
        except DataError as exc:
            st.error(lit(exc), icon=":material/error:")
            columns = None
        if columns is not None:
            picks = st.columns(4)
            roles = {}
            for role, col in zip(state.ROLES, picks):
                with col:
                    choice = st.selectbox(f"{role} column", [AUTO, *columns], key=f"col_{role}")
                roles[role] = None if choice == AUTO else choice
            key = (upload.file_id, tuple(roles.items()), items_upload.file_id if items_upload else None)
            try:
                if st.session_state.get("_upload_key") != key:
                    ratings = state.read_upload(data, upload.name, roles)
                    items = state.read_upload_items(items_upload.getvalue(), items_upload.name) if items_upload else None
                    state.set_dataset(state.Dataset(upload.name, ratings, items))
                    st.session_state["_upload_key"] = key
                    st.rerun()  # redraw from the top, so the sidebar shows the new dataset too
                found = state.dataset().ratings.columns
                st.success("Read as " + ", ".join(f"{role} = {lit(found[role])}" for role in state.ROLES if role in found),
                           icon=":material/check_circle:")
            except DataError as exc:
                st.session_state.pop("_upload_key", None)
                st.error(lit(exc), icon=":material/error:")
                st.caption("Choose the right columns above, or fix the file and upload it again.")

ds = state.dataset()
if ds is None:
    st.info("No dataset yet: use the built-in MovieLens 100k or upload a ratings file above.", icon=":material/info:")
    st.stop()

ratings = ds.ratings
described = state.describe(ds)
summary = described["summary"]
st.subheader(lit(ds.name))
for note in ratings.warnings:
    st.warning(lit(note))
cols = st.columns(5)
cols[0].metric("Users", f"{summary['n_users']:,}")
cols[1].metric("Items", f"{summary['n_items']:,}")
cols[2].metric("Ratings", f"{summary['n_ratings']:,}")
cols[3].metric("Sparsity", f"{summary['sparsity']:.2%}")
lo, hi = summary["rating_scale"]
cols[4].metric("Rating scale", f"{lo:g} to {hi:g}", help=f"mean {summary['mean_rating']:.2f}")
if ratings.n_duplicates:
    st.caption(f"{ratings.n_duplicates:,} repeated (user, item) ratings were dropped: the latest one is kept.")

left, right = st.columns(2)
with left:
    st.plotly_chart(charts.rating_histogram(summary["rating_histogram"]), key="rating_hist")
with right:
    st.dataframe(ratings.df.head(100), hide_index=True, height=380)

left, right = st.columns(2)
with left:
    st.plotly_chart(charts.long_tail(described["per_user"], "user"), key="per_user")
with right:
    st.plotly_chart(charts.long_tail(described["per_item"], "item"), key="per_item")

st.subheader("Cross-tab")
st.caption("The lesson's view of the matrix to fill in: the most active users against the most rated items.")
n = st.slider("Users and items", 5, 30, 15, key="crosstab_n")
st.plotly_chart(charts.crosstab_heatmap(crosstab(ratings, n, n)), key="crosstab")

if ds.items is not None:
    with st.expander(f"Items ({len(ds.items):,})"):
        st.dataframe(ds.items.head(200), hide_index=True)
