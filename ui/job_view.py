"""The Train page's job view: the person's training job (from ?job=ID, the session, or their latest active job),
its progress, live curves, Stop, and Resume or Restart for an interrupted job; polled from the job queue in the
store's database (a worker process writes the progress), which shows a job only to its owner (or an admin)."""
from __future__ import annotations

import math
import socket

import streamlit as st

from cf_core.access import PermissionDenied
from cf_core.jobs import Job, JobSnapshot
from cf_core.progress import ProgressSnapshot
from cf_core.store import StoreDamaged

from . import charts, state, widgets
from .safe import lit

POLL_SECONDS = 1.0


def current() -> Job | None:
    """The session's job; for someone else's ?job= URL a notice and nothing of that job."""
    try:
        return state.current_job()
    except PermissionDenied:
        st.session_state.pop("job_id", None)
        del st.query_params["job"]
        st.warning("That training job is not yours, so nothing of it is shown here.", icon=":material/block:")
        return None


def show(job: Job | None) -> None:
    """The job's progress, polled every second while it is active; a note when the server forgot it."""
    if job is None:
        if st.session_state.get("job_id"):
            st.warning("That training job is not in the queue (it was mistyped, or the queue was reset). If it "
                       "finished, its run is on the Runs page.")
        return
    st.query_params["job"] = job.id
    job_was_active = job.active

    @st.fragment(run_every=POLL_SECONDS if job_was_active else None)
    def poll() -> None:
        """Polls the job's progress snapshot; the worker thread never calls Streamlit."""
        snap = read(job)
        if snap is None:
            return
        follow(job, snap, job_was_active)
        st.subheader(f"Job: {lit(job.name)}")
        if snap.status == "queued":
            queued(job, snap)
        elif snap.status == "running":
            running(job, snap)
        elif snap.status == "interrupted":
            interrupted(job, snap)
        elif snap.status == "failed":
            failed(job, snap)
        else:
            ended(snap)
        curves(snap)

    poll()


def read(job: Job) -> JobSnapshot | None:
    """The job's snapshot from the queue, or None (with a message) when it cannot be shown."""
    try:
        return state.jobs().snapshot(job.id, state.who())
    except (PermissionDenied, KeyError):  # signed out in another tab, or the queue was reset
        st.warning("This training job cannot be shown any more: reload the page.", icon=":material/block:")
    except StoreDamaged as exc:  # the fragment reruns on its own, outside app.py's handler
        st.error(str(exc), icon=":material/database:")
    return None


def follow(job: Job, snap: JobSnapshot, job_was_active: bool) -> None:
    """Redraw the whole page when the job saved its run (once: it becomes the current run) or ended or started
    since the page was drawn."""
    if snap.run_id and st.session_state.get("_applied_job") != job.id:
        st.session_state["_applied_job"] = job.id
        state.set_current_run(snap.run_id)
        # The sidebar was drawn before this fragment ran (a short job can end before the page is drawn): redraw
        # the whole page once, so it says which run is now current.
        st.rerun()
    if snap.active != job_was_active:
        st.rerun()  # the job ended (or started) since this page was drawn: redraw it all, and stop polling


def queued(job: Job, snap: JobSnapshot) -> None:
    """A queued job: whether a worker will take it, and how many go first."""
    if not snap.workers:
        st.warning("Queued, but no training worker is running, so nothing will train it yet. Whoever runs "
                   "the server starts one with `python -m cf_core worker` (`make run` and `make serve` start "
                   "one by themselves).", icon=":material/warning:")
    elif snap.ahead:
        st.info(f"Queued: {snap.ahead} training job(s) go first on this device; this one starts when "
                "they end.", icon=":material/schedule:")
    else:
        st.info("Queued: a worker takes it within a second.", icon=":material/schedule:")
    if st.button("Remove from the queue", key="stop", icon=":material/stop:"):
        state.jobs().stop(job.id, state.who())
        st.rerun()


def running(job: Job, snap: JobSnapshot) -> None:
    """A running job: its progress bar, Stop, and its latest checkpoint."""
    progress_bar(snap.progress)
    if snap.stop_requested:
        st.caption("Stopping after this batch; the best model so far is kept.")
    elif st.button("Stop", key="stop", icon=":material/stop:"):
        state.jobs().stop(job.id, state.who())
        st.toast("Stopping after this batch; the best model so far is kept.")
    if snap.progress.checkpoint_epoch:
        st.caption(f"Saved so far: a checkpoint after epoch {snap.progress.checkpoint_epoch} (if this training is "
                   "cut off, it can go on from there).")


def progress_bar(p: ProgressSnapshot) -> None:
    """The net's pretraining sweeps, the preparation, or the epochs (sweeps) done, with the time left."""
    eta = f" · about {p.eta:.0f} s left" if p.eta is not None else ""
    if p.pretrain:  # the net's embeddings are being fitted first
        sweep, sweeps = p.pretrain
        st.progress(sweep / sweeps, text="Starting the embeddings from a Bayesian fit: "
                                         f"sweep {sweep}/{sweeps}{eta} · "
                                         f"on {p.device}")
    elif not p.n_epochs:
        st.progress(0.0, text=f"Preparing the data and the model · on {p.device}")
    else:
        epoch = min(p.n_epochs, math.floor(p.epoch) + 1)
        unit = "Sweep" if p.optimizer == "gibbs" else "Epoch"
        st.progress(p.fraction, text=f"{unit} {epoch}/{p.n_epochs}{eta} · on {p.device}")


def failed(job: Job, snap: JobSnapshot) -> None:
    """A failed job: why, and a way to start it again."""
    st.error(f"Training failed: {lit(snap.error)}", icon=":material/error:")
    if st.button("Try again from the beginning", key="restart", icon=":material/restart_alt:"):
        again(job, "restart")


def ended(snap: JobSnapshot) -> None:
    """A done (or stopped) job: how it did, and links to explore its run."""
    metrics = snap.metrics
    verb = "Stopped early" if snap.status == "stopped" else "Done"
    rmse = (f": validation RMSE {metrics['valid_rmse']:.4f}, MAE {metrics['valid_mae']:.4f}"
            if metrics.get("valid_rmse") is not None else "")
    if metrics.get("valid_ndcg") is not None:  # implicit feedback: its top K
        k = metrics.get("valid_ranking_k", 10)
        rmse = (f": NDCG@{k} {metrics['valid_ndcg']:.4f} and Recall@{k} {metrics['valid_recall']:.4f} on the "
                f"validation part (most popular items: {metrics['valid_popular_ndcg']:.4f} and "
                f"{metrics['valid_popular_recall']:.4f})")
    st.success(f"{verb} in {snap.elapsed:.0f} s{rmse}. This run is now the current run.",
               icon=":material/check_circle:")
    widgets.warn_if_no_better(metrics)
    links = st.columns(len(widgets.EXPLORE_PAGES))
    for col, (page, label) in zip(links, widgets.EXPLORE_PAGES):
        col.page_link(page, label=label)


def curves(snap: JobSnapshot) -> None:
    """The live loss curve and the RMSE per epoch (or a word on when they appear)."""
    p = snap.progress
    implicit = p.optimizer.startswith("implicit:")
    loss_unit = {"implicit:als": "ALS objective", "implicit:bce": "cross-entropy", "implicit:bpr": "BPR loss"}
    left, right = st.columns(2)
    with left:
        if p.batches:
            title = "Training MSE of each sample" if p.optimizer == "gibbs" else "Training loss (smoothed)"
            st.plotly_chart(charts.loss_curve(p.batches, title, loss_unit.get(p.optimizer, "MSE")),
                            config=charts.CONFIG, key="loss_chart")
        elif snap.active:
            st.caption("The loss curve appears with the first batches.")
    with right:
        if p.epochs:
            st.plotly_chart(charts.epoch_metrics(p.epochs, title="How far the interactions' scores are from 1"
                                                 if implicit else None), config=charts.CONFIG, key="metrics_chart")
        elif snap.active:
            st.caption("The per-epoch figures appear after the first epoch." if implicit else
                       "Train and validation RMSE appear after the first epoch.")
    if implicit:
        st.caption("Implicit feedback: the run predicts no ratings, so there is no validation RMSE; it is judged by "
                   "its top K on the Evaluate page once it is done.")
    if p.optimizer == "gibbs":
        st.caption("Gibbs sampling: each epoch is one sweep that draws every user's and item's weights from "
                   "their posterior. The first sweeps are burn-in; after them the model predicts the average of "
                   "the draws' predictions so far, which is what the RMSE curves show and what is kept. A single "
                   "draw fits worse than the average.")


def again(job: Job, how: str) -> None:
    """Queue the job again (resume, restart, keep); a message when it cannot be."""
    try:
        state.jobs().resume(job.id, state.who(), how)
    except (ValueError, PermissionDenied) as exc:
        st.error(lit(exc), icon=":material/error:")
        return
    st.session_state.pop("_applied_job", None)
    st.rerun()


def interrupted(job: Job, snap: JobSnapshot) -> None:
    """An interrupted job: what happened, and the three ways on."""
    reached = snap.progress.checkpoint_epoch if snap.can_resume else None
    # The reason is always this program's own words (the reaper's or a shutting-down worker's), never a user's.
    reason = (snap.error or "Its worker stopped answering.").rstrip(".")
    st.warning(f"This training was cut off: {reason[0].lower() + reason[1:]}. "
               + (f"It has a checkpoint after epoch {reached}." if reached else
                  "It stopped before its first checkpoint, so it can only start again."),
               icon=":material/warning:")
    cols = st.columns(3)
    if reached:
        if cols[0].button(f"Resume from epoch {reached}", key="resume", type="primary", icon=":material/play_arrow:",
                          help="Goes on exactly where the checkpoint left off: the same result as if it had never "
                               "stopped."):
            again(job, "resume")
        if cols[1].button("Keep the best model so far", key="keep", icon=":material/save:",
                          help="Saves the best epoch the checkpoint reached as a run, without training further."):
            again(job, "keep")
    if cols[2].button("Start again from the beginning", key="restart", icon=":material/restart_alt:"):
        again(job, "restart")


def training_place(config) -> tuple[str, int | None | str]:
    """Where a job with `config` will most likely train (its device, else a GPU while a GPU worker is alive), and
    the memory to check it against: this machine's when its CPU workers all run here, else none (the web server
    never touches a GPU; the worker checks again on its own machine)."""
    try:
        workers = state.jobs().workers()
    except Exception:  # the store is away: the queue's own message shows elsewhere on the page
        workers = []
    device = config.device if config.device != "auto" else (
        "cuda" if any(w["kind"] == "cuda" for w in workers) else "cpu")
    here = socket.gethostname()
    local = device == "cpu" and all(w["host"] == here for w in workers if w["kind"] == "cpu")
    return device, "here" if local else None
