"""Session state and caches: the runs store and job manager, the session's dataset, its job and its current run.

All Streamlit caching lives here (never in cf_core). Who is asking comes from ui.auth on every run (a cookie, never
session state), and every store and job call passes that principal, so cf_core decides what it may see and do.
The keys this module owns in st.session_state:
    dataset the `Dataset` picked on the Data page
    job_id  the session's latest training job (also in st.query_params["job"] on the Train page)
    run_id  the current run the explore pages show (?run=ID on any page sets it, for a run of one's own)
    share   the share-link token this tab was opened with (?share=TOKEN), which lets it see that one run
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st
import torch

from cf_core import datasets
from cf_core.access import SYSTEM, PermissionDenied, Principal
from cf_core.data import (
    Ratings,
    ratings_per_item,
    ratings_per_user,
    read_items,
    read_ratings,
    summarize,
)
from cf_core.jobs import Job, JobQueue
from cf_core.launch import worker_threads
from cf_core.store import (
    Run,
    RunInfo,
    RunNotFound,
    RunStore,
    Share,
    ShareError,
    default_root,
)
from cf_core.uploads import UploadNotFound, UploadStore
from cf_core.worker import Worker

from . import auth

BUILTIN_NAME = "MovieLens 100k"
ROLES = ("user", "item", "rating", "timestamp")


@dataclass
class Dataset:
    """The ratings a session trains on, with item metadata when it has some."""

    name: str
    ratings: Ratings
    items: pd.DataFrame | None = None
    valid: Ratings | None = None      # a validation file of the person's own (MovieLens' u1.test, a later month)
    valid_name: str | None = None
    upload_id: str | None = None      # the kept upload it was read from (None: the built-in data)


# ---------------------------------------------------------------- shared across sessions
def _root() -> str:
    root = default_root()
    return root if "://" in root else str(Path(root).resolve())


@st.cache_resource(show_spinner=False)
def _store(root: str) -> RunStore:
    return RunStore(root)


@st.cache_resource(show_spinner=False)
def _jobs(root: str) -> JobQueue:
    queue = JobQueue(_store(root))
    if os.environ.get("COLLAB_STUDIO_WORKERS") == "inline":
        # The old way, kept for a quick try and for measuring against: training in a thread of the web server. It
        # leaves a core to the pages (on 2 cores the net on MovieLens 100k took 36 s with 2 torch threads, 17 s
        # with 1, while a Train page polled).
        torch.set_num_threads(worker_threads())
        Worker(queue, "auto").start_thread()
    return queue


@st.cache_resource(show_spinner=False)
def _uploads(root: str) -> UploadStore:
    return UploadStore(root)


def uploads() -> UploadStore:
    """Everyone's uploads, each kept for its owner only (the store checks who asks)."""
    return _uploads(_root())


def keep_upload(ratings_file, items_file, roles: dict, valid_file=None) -> None:
    """Keep a successfully read upload for this person, once per set of files (a change of columns updates it)."""
    key = (ratings_file.file_id, items_file.file_id if items_file else None, valid_file.file_id if valid_file else None)
    kept = st.session_state.get("_kept_upload")
    if kept and kept[0] == key:
        uploads().set_roles(kept[1], roles, who())
        return
    upload = uploads().save(who(), ratings_file.getvalue(), ratings_file.name,
                            items_file.getvalue() if items_file else None, items_file.name if items_file else None,
                            roles, valid_file.getvalue() if valid_file else None,
                            valid_file.name if valid_file else None)
    st.session_state["_kept_upload"] = (key, upload.id)
    ds = dataset()
    if ds is not None and ds.upload_id is None and ds.name == ratings_file.name:
        ds.upload_id = upload.id  # the dataset just read is this upload: a reload reads it again
        store().remember(who(), "dataset", f"upload:{upload.id}")


def store() -> RunStore:
    """The runs store under $COLLAB_STUDIO_RUNS (or ./runs), one per server."""
    return _store(_root())


def jobs() -> JobQueue:
    """The job queue in the store's database: jobs outlive the page, the browser tab and the web server."""
    return _jobs(_root())


def who() -> Principal:
    """Who this run of the script is for (local mode's owner, a signed-in person, or an anonymous visitor)."""
    return auth.principal()


def bind_session(me: Principal) -> None:
    """Tie this tab's session state to one person: when the person changes (a tab that reconnects after someone
    else signed in with the same browser), forget everything the previous person had picked, uploaded or trained."""
    if "_who" in st.session_state and st.session_state["_who"] != me.name:
        for key in list(st.session_state.keys()):
            del st.session_state[key]
    if "_who" not in st.session_state:
        st.session_state["_who"] = me.name
        restore(me)


def restore(me: Principal) -> None:
    """A new session (a reload, a new tab, a server restart) of a signed-in person gets back the dataset and the
    current run they had: both are remembered in the store, per person."""
    if not me.signed_in:
        return
    chosen = store().recall(me, "dataset")
    try:
        if chosen == "builtin":
            st.session_state["dataset"] = load_builtin()
            st.session_state.setdefault("source", "builtin")
        elif chosen and chosen.startswith("upload:"):
            st.session_state["dataset"] = dataset_from_upload(chosen[len("upload:"):])
            st.session_state.setdefault("source", "mine")
            st.session_state.setdefault("my_upload", chosen[len("upload:"):])
    except (UploadNotFound, PermissionDenied):  # deleted, or no longer theirs: forget it
        store().remember(me, "dataset", None)
    except Exception:  # unreadable this time (a read that failed, a cache away): start without it, but keep it in
        pass  # memory for the next session, where it may read again (forgetting lost it for good)
    run_id = store().recall(me, "run")
    if run_id and "run_id" not in st.session_state:
        try:
            store().info(run_id, me)
            st.session_state["run_id"] = run_id
        except (RunNotFound, PermissionDenied):
            store().remember(me, "run", None)


def dataset_from_upload(upload_id: str) -> Dataset:
    """One of this person's uploads, read again with the columns they chose. Raises DataError, PermissionDenied or
    UploadNotFound."""
    kept = uploads().get(upload_id, who())
    ratings_bytes, items_bytes, valid_bytes = uploads().read(upload_id, who())
    ratings = read_upload(ratings_bytes, kept.name, kept.roles)
    items = read_upload_items(items_bytes, kept.items_name) if items_bytes is not None else None
    valid = read_upload(valid_bytes, kept.valid_name, kept.roles) if valid_bytes is not None else None
    return Dataset(kept.name, ratings, items, valid, kept.valid_name if valid is not None else None,
                   upload_id=upload_id)


# ---------------------------------------------------------------- datasets
@st.cache_data(show_spinner="Loading MovieLens 100k…", max_entries=2)
def _builtin(cache: str) -> tuple[Ratings, pd.DataFrame]:
    # `cache` only keys the cache entry: movielens_100k() reads $COLLAB_STUDIO_CACHE itself.
    return datasets.movielens_100k()


def load_builtin() -> Dataset:
    """MovieLens 100k from the local cache (fetching it if needed; `make run` fetches it before starting)."""
    ratings, items = _builtin(str(datasets.cache_dir()))
    return Dataset(BUILTIN_NAME, ratings, items)


def read_upload(data: bytes, name: str, roles: dict[str, str | None] | None = None) -> Ratings:
    """Parse uploaded ratings bytes, with explicit column names for the roles the user corrected.

    Raises cf_core.data.DataError for anything wrong with the file.
    """
    return read_ratings(data, name=name, **{r: c for r, c in (roles or {}).items() if c})


def read_upload_items(data: bytes, name: str) -> pd.DataFrame:
    """Parse an uploaded items file (item, title, year, genres). Raises DataError."""
    return read_items(data, name=name)


def dataset() -> Dataset | None:
    """The session's dataset, if one was picked."""
    return st.session_state.get("dataset")


def forget_dataset() -> None:
    """No dataset picked (after a failed read that was meant to replace it), now and on the next visit."""
    st.session_state.pop("dataset", None)
    st.session_state.pop("lr_result", None)
    store().remember(who(), "dataset", None)


def set_dataset(ds: Dataset) -> None:
    """Make `ds` the session's dataset (remembered for this person's next visit) and forget an LR-finder result
    computed on another one."""
    st.session_state["dataset"] = ds
    st.session_state.pop("lr_result", None)
    if ds.name == BUILTIN_NAME and ds.upload_id is None:
        store().remember(who(), "dataset", "builtin")
    elif ds.upload_id:
        store().remember(who(), "dataset", f"upload:{ds.upload_id}")


# ---------------------------------------------------------------- jobs
def current_job() -> Job | None:
    """The job named by ?job=ID, else the session's last job, else this person's latest job still queued or running,
    or cut off and waiting to be resumed (a tab opened after a restart finds it); None when there is none.

    Raises PermissionDenied for someone else's job (the page shows nothing of it).
    """
    job_id = st.query_params.get("job") or st.session_state.get("job_id")
    if not job_id:
        me = who()
        active = [j for j in jobs().jobs(me) if (j.active or j.status == "interrupted") and j.owner == me.name]
        if not active:
            return None
        job_id = active[-1].id
    job = jobs().get(job_id, who())
    st.session_state["job_id"] = job_id
    return job


def remember_job(job: Job) -> None:
    """Keep the job id in the session and in the URL, so coming back or another tab with ?job=ID shows it."""
    st.session_state["job_id"] = job.id
    st.query_params["job"] = job.id


# ---------------------------------------------------------------- the current run
def apply_run_param() -> None:
    """?run=ID makes that run current; applied once per distinct value so loading another run later sticks."""
    run_id = st.query_params.get("run")
    if run_id and run_id != st.session_state.get("_run_param"):
        st.session_state["_run_param"] = run_id
        st.session_state["run_id"] = run_id


def apply_share_param() -> Share | None:
    """?share=TOKEN opens a share link: its run becomes current and the token stays in the URL across pages.

    Returns the share, None without one; raises ShareError (a message for the visitor) for a link that does not open.
    """
    token = st.query_params.get("share") or st.session_state.get("share")
    if not token:
        return None
    opened = st.session_state.get("share") == token  # recorded when this session opened it; now only checked
    try:
        link = (store().check_share if opened else store().open_share)(token, who())
    except ShareError:
        st.session_state.pop("share", None)
        raise
    if not opened:
        st.session_state["share"] = token
        set_current_run(link.run_id)
    st.query_params["share"] = token  # a reload, or a page switch, keeps the link
    return link


def share_token() -> str | None:
    return st.session_state.get("share")


def share_url(token: str) -> str:
    """An absolute link to the Evaluate page of a share when the browser's URL is known, else a relative one."""
    from urllib.parse import urlsplit

    parts = urlsplit(st.context.url or "")
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rsplit('/', 1)[0]}" if parts.netloc else ""
    return f"{base}/evaluate?share={token}"


def my_runs(everyone: bool = False) -> list[RunInfo]:
    """The runs this person owns, newest first; in local mode (its one person owns everything), or for an admin who
    asks for `everyone`, all runs, including those indexed before runs had owners."""
    me = who()
    return store().list_all(me) if auth.mode() == "local" or (everyone and me.admin) else store().list(me)


def runs_i_can_see() -> list[RunInfo]:
    """Their own runs, then those shared with them, then (for this tab's share link) the shared run."""
    me = who()
    seen = {info.id: info for info in my_runs() + store().shared_with(me)}
    run_id, token = current_run_id(), share_token()
    if token and run_id and run_id not in seen:
        try:
            seen[run_id] = store().info(run_id, me, token)
        except (RunNotFound, PermissionDenied):
            pass
    return list(seen.values())


def run_info(run_id: str) -> RunInfo:
    """A run's index row if this person may see it. Raises RunNotFound or PermissionDenied."""
    return store().info(run_id, who(), share_token())


def set_current_run(run_id: str | None) -> None:
    """Make a run the one the explore pages show (remembered for this person's next visit, unless it came through a
    share link of this tab)."""
    st.session_state["run_id"] = run_id
    if share_token() is None or run_id is None:
        store().remember(who(), "run", run_id)


def current_run_id() -> str | None:
    return st.session_state.get("run_id")


@st.cache_resource(show_spinner="Loading the run…", max_entries=4)
def _load(root: str, run_id: str) -> Run:
    # Reached only through load_run, after the store has said that this session may see the run.
    return _store(root).load(run_id, SYSTEM)


def load_run(run_id: str) -> Run:
    """A run this person may see, loaded once per server and shared by the sessions exploring it.

    Raises RunNotFound or PermissionDenied (ShareError for a revoked link).
    """
    info = run_info(run_id)
    run = _load(_root(), run_id)
    run.info = info  # a rename since the run was cached shows at once
    return run


@st.cache_resource(show_spinner=False)
def _problems(root: str) -> dict:
    return {}  # run id -> what is wrong with its files, or None; run files never change once saved


def damaged_runs(run_ids: list[str]) -> dict[str, str]:
    """The runs among `run_ids` whose files are damaged, with what is wrong (checked once per run per server)."""
    known = _problems(_root())
    for run_id in run_ids:
        if run_id not in known:
            known[run_id] = store().problem(run_id)
    return {r: known[r] for r in run_ids if known[r]}


def forget_run(run_id: str) -> None:
    """Delete a run (the store checks that this person may) and drop it from the caches and from this session."""
    store().delete(run_id, who())
    _problems(_root()).pop(run_id, None)
    _load.clear()
    _predictions.clear()
    if current_run_id() == run_id:
        set_current_run(None)


def current_run() -> Run | None:
    """The current run, or None when there is none. Raises RunNotFound for an id the store does not have."""
    run_id = current_run_id()
    return load_run(run_id) if run_id else None


def predictions(run_id: str) -> pd.DataFrame:
    """The run's validation ratings with predictions (user, item, rating, prediction, cold); empty without any.

    Raises RunNotFound or PermissionDenied when this person may not see the run.
    """
    run_info(run_id)
    return _predictions(run_id)


@st.cache_data(show_spinner="Predicting the validation ratings…", max_entries=4)
def _predictions(run_id: str) -> pd.DataFrame:
    run = _load(_root(), run_id)
    if run.valid is None or not len(run.valid):
        return pd.DataFrame(columns=["user", "item", "rating", "prediction", "cold"])
    return run.recommender.predict_frame(run.valid)


def describe(ds: Dataset) -> dict:
    """summarize() plus the per-user and per-item counts of the dataset, computed once per dataset per session."""
    cached = st.session_state.get("_describe")
    if cached is None or cached[0] is not ds:
        cached = (ds, {"summary": summarize(ds.ratings), "per_user": ratings_per_user(ds.ratings),
                       "per_item": ratings_per_item(ds.ratings)})
        st.session_state["_describe"] = cached
    return cached[1]
