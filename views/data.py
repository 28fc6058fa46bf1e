"""Data: pick MovieLens 100k, upload ratings (and items), or reopen one of your uploads; correct the inferred
columns, and look at the data. Uploads are kept per owner (cf_core.uploads) and shown to nobody else."""
import streamlit as st

from cf_core.access import PermissionDenied
from cf_core.data import DataError, crosstab, preview
from cf_core.uploads import UploadNotFound
from ui import charts, state, widgets
from ui.safe import cells, lit

AUTO = "(inferred)"

st.title("Data")
if state.dataset() is None:
    st.markdown("**Collab Studio learns what people like from their ratings, and recommends what they will like "
                "next.** Bring a table of who rated what (or use the built-in movie ratings), train a model, and "
                "explore what it learned.\n\n1. **Data**: pick the ratings below.  \n2. **Train**: press Start "
                "training (every setting has a sensible default).  \n3. **Explore**: see how well it predicts, "
                "which movies are alike, and what it recommends; share a link with colleagues.")
mine = state.uploads().list(state.who())
SOURCES = {"builtin": f"Built-in: {state.BUILTIN_NAME}", "upload": "Upload a file",
           "mine": f"Your uploads ({len(mine)})"}
source = st.radio("Ratings", [s for s in SOURCES if s != "mine" or mine], key="source", horizontal=True,
                  format_func=SOURCES.get)


def forget_after_failure() -> None:
    """Drop the dataset a failed file was meant to replace; the sidebar, drawn before this page, is redrawn once
    (the file stays in its uploader, so the rerun reads it again, says why it fails, and finds nothing to drop)."""
    if state.dataset() is not None:
        state.forget_dataset()
        st.rerun()


def _size(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 1e6 else f"{max(n / 1e3, 0.1):,.1f} kB"


def reopen(upload_id: str) -> None:
    """Read one of this person's uploads again and make it the dataset."""
    try:
        state.set_dataset(state.dataset_from_upload(upload_id))
    except (DataError, PermissionDenied, UploadNotFound) as exc:
        st.session_state["_reopen_error"] = str(exc)


def attach(upload_id: str, items_file, valid_file) -> None:
    """Check each extra file reads, keep it with the upload, and use the upload with it."""
    kept = state.uploads().get(upload_id, state.who())
    try:
        if items_file is not None:
            state.read_upload_items(items_file.getvalue(), items_file.name)
        if valid_file is not None:
            state.read_upload(valid_file.getvalue(), valid_file.name, kept.roles)
    except DataError as exc:  # nothing is kept from a file that does not read
        st.error(lit(exc), icon=":material/error:")
        return
    for kind, f in (("items", items_file), ("valid", valid_file)):
        if f is not None:
            state.uploads().attach(upload_id, kind, f.getvalue(), f.name, state.who())
    reopen(upload_id)
    st.rerun()


def forget(upload_id: str) -> None:
    try:
        state.uploads().delete(upload_id, state.who())
    except (PermissionDenied, UploadNotFound) as exc:
        st.session_state["_reopen_error"] = str(exc)

if source == "builtin":
    st.caption("100,000 ratings (1-5 stars) by 943 users on 1,682 movies, with titles, years and genres "
               "(GroupLens Research).")
    widgets.load_builtin_button("load_builtin")
elif source == "mine":
    by_id = {u.id: u for u in mine}
    picked = st.selectbox("Upload", list(by_id), key="my_upload", format_func=lambda i: (
        f"{by_id[i].name}" + (f" + {by_id[i].items_name}" if by_id[i].items_name else "")
        + (f" + validation {by_id[i].valid_name}" if by_id[i].valid_name else "")
        + f" · {by_id[i].created_text} · {_size(by_id[i].size)}"))
    cols = st.columns(2)
    cols[0].button("Use this upload", key="reopen", type="primary", icon=":material/upload_file:", on_click=reopen,
                   args=(picked,))
    cols[1].button("Delete it", key="forget_upload", icon=":material/delete:", on_click=forget, args=(picked,))
    if "_reopen_error" in st.session_state:
        st.error(lit(st.session_state.pop("_reopen_error")), icon=":material/error:")
    st.caption("Your uploads are kept on this server for you only, with the columns you chose.")
    with st.expander("Add an items or validation file to this upload"):
        st.caption("Titles and genres, or your own held-out ratings, for ratings you uploaded before: no need to "
                   "upload the ratings again.")
        extra = st.file_uploader("Items file (item id, title, year, genres)", key="add_items_file")
        extra_valid = st.file_uploader("Validation file (held-out ratings in the same columns)", key="add_valid_file")
        if st.button("Add to this upload", key="attach", icon=":material/attach_file:",
                     disabled=extra is None and extra_valid is None):
            attach(picked, extra, extra_valid)
else:
    st.caption("CSV, TSV, `::` or `|` separated text, Parquet or Excel; a long table (user, item, rating"
               "[, timestamp]) or a user x item matrix. Columns are inferred from their names "
               "(where those say nothing, from their values); correct them below.")
    limit = int(st.get_option("server.maxUploadSize"))
    st.caption(f"Files up to {limit:,} MB each (this server's limit). What you upload is yours: it is kept for you "
               "under Your uploads, and shown to nobody else (a run you share shows its ratings, not your files).")
    upload = st.file_uploader(f"Ratings file (up to {limit:,} MB)", key="ratings_file")
    items_upload = st.file_uploader(f"Items file (optional: item id, title, year, genres; up to {limit:,} MB)",
                                    key="items_file")
    valid_upload = st.file_uploader(f"Validation file (optional: your own held-out ratings, such as MovieLens' "
                                    f"u1.test, in the same columns; up to {limit:,} MB)", key="valid_file",
                                    help="With one, training uses the whole ratings file and measures on this one, "
                                         "instead of holding out a share of the ratings file.")
    if upload is not None:
        data = upload.getvalue()
        try:
            head = preview(data, name=upload.name, n=10)
            st.dataframe(cells(head), hide_index=True, height=200)
            columns = list(head.columns)
        except DataError as exc:
            st.error(lit(exc), icon=":material/error:")
            columns = None
            forget_after_failure()  # what this file was meant to replace must not look as if it had loaded
        if columns is not None:
            picks = st.columns(4)
            roles = {}
            for role, col in zip(state.ROLES, picks):
                with col:
                    choice = st.selectbox(f"{role} column", [AUTO, *columns], key=f"col_{role}")
                roles[role] = None if choice == AUTO else choice
            key = (upload.file_id, tuple(roles.items()), items_upload.file_id if items_upload else None,
                   valid_upload.file_id if valid_upload else None)
            try:
                if st.session_state.get("_upload_key") != key:
                    ratings = state.read_upload(data, upload.name, roles)
                    items = (state.read_upload_items(items_upload.getvalue(), items_upload.name)
                             if items_upload else None)
                    valid = (state.read_upload(valid_upload.getvalue(), valid_upload.name, roles)
                             if valid_upload else None)
                    state.set_dataset(state.Dataset(upload.name, ratings, items, valid,
                                                    valid_upload.name if valid_upload else None))
                    st.session_state["_upload_key"] = key
                    state.keep_upload(upload, items_upload, roles, valid_upload)
                    st.rerun()  # redraw from the top, so the sidebar shows the new dataset too
                read = state.dataset().ratings
                found, names = read.columns, {"rating": "count"} if read.feedback == "counts" else {}
                st.success("Read as " + ", ".join(f"{names.get(role, role)} = {lit(found[role])}"
                                                  for role in state.ROLES if role in found),
                           icon=":material/check_circle:")
            except DataError as exc:
                st.session_state.pop("_upload_key", None)
                forget_after_failure()
                st.error(lit(exc), icon=":material/error:")
                st.caption("Choose the right columns above, or fix the file and upload it again.")

ds = state.dataset()
if ds is None:
    st.info("No dataset yet: use the built-in MovieLens 100k or upload a ratings file above.", icon=":material/info:")
    st.stop()

ratings = ds.ratings
described = state.describe(ds)
st.page_link(widgets.TRAIN_PAGE, label="Next: train a model on this data", icon=":material/arrow_forward:")
summary = described["summary"]
st.subheader(lit(ds.name))
for note in ratings.warnings + (ds.valid.warnings if ds.valid is not None else []):
    st.warning(lit(note))
implicit = ratings.feedback != "explicit"
if implicit:
    st.info("This file has no ratings: it is read as **implicit feedback**, who chose what"
            + (", and how often (the counts)" if ratings.feedback == "counts" else "") + ". The Train page fits "
            "an implicit-feedback model to it, judged by how well its top recommendations find what people went on "
            "to choose.", icon=":material/touch_app:")
cols = st.columns(5)
cols[0].metric("Users", f"{summary['n_users']:,}")
cols[1].metric("Items", f"{summary['n_items']:,}")
cols[2].metric("Interactions" if implicit else "Ratings", f"{summary['n_ratings']:,}")
cols[3].metric("Sparsity", f"{summary['sparsity']:.2%}")
lo, hi = summary["rating_scale"]
if ratings.feedback == "implicit":
    cols[4].metric("Counts", "none", help="Each (user, item) pair is one interaction.")
else:
    cols[4].metric("Counts" if implicit else "Rating scale", f"{lo:g} to {hi:g}",
                   help=f"mean {summary['mean_rating']:.2f}")
if ds.valid is not None:
    st.caption(f"Validation file {lit(ds.valid_name)}: {ds.valid.n_ratings:,} ratings. Training uses every rating "
               "above and measures on these.")
if ratings.n_duplicates and not implicit:
    st.caption(f"{ratings.n_duplicates:,} repeated (user, item) ratings were dropped: the latest one is kept.")

left, right = st.columns(2)
with left:
    if ratings.feedback != "implicit":  # (plain interactions are all 1: nothing to chart)
        st.plotly_chart(charts.rating_histogram(summary["rating_histogram"], counts=implicit), config=charts.CONFIG,
                        key="rating_hist")
    else:
        st.caption("Every pair counts once: there are no ratings or counts to chart.")
with right:
    st.dataframe(cells(ratings.df.head(100)), hide_index=True, height=380)

left, right = st.columns(2)
with left:
    st.plotly_chart(charts.long_tail(described["per_user"], "user", "interactions" if implicit else "ratings"),
                    config=charts.CONFIG, key="per_user")
with right:
    st.plotly_chart(charts.long_tail(described["per_item"], "item", "interactions" if implicit else "ratings"),
                    config=charts.CONFIG, key="per_item")

st.subheader("Cross-tab")
st.caption("The lesson's view of the matrix to fill in: the most active users against the most rated items.")
n = st.slider("Users and items", 5, 30, 15, key="crosstab_n")
titles = dict(zip(ds.items["item"], ds.items["title"])) if ds.items is not None else None
st.plotly_chart(charts.crosstab_heatmap(crosstab(ratings, n, n), titles), config=charts.CONFIG, key="crosstab")

if ds.items is not None:
    with st.expander(f"Items ({len(ds.items):,})"):
        st.dataframe(cells(ds.items.head(200)), hide_index=True)
