"""The Train page's job view: the person's training job (from ?job=ID or the session), its progress, live curves
and Stop, polled from the job manager, which shows a job only to its owner (or an admin)."""
from __future__ import annotations

import math

import streamlit as st

from cf_core.access import PermissionDenied
from cf_core.jobs import Job

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
            st.warning("That training job is not on this server any more (it restarted). If it finished, its run is "
                       "on the Runs page.")
        return
    st.query_params["job"] = job.id
    job_was_active = job.active

    @st.fragment(run_every=POLL_SECONDS if job_was_active else None)
    def poll() -> None:
        """Polls the job's progress snapshot; the worker thread never calls Streamlit."""
        snap = state.jobs().snapshot(job.id, state.who())
        active = snap["status"] in ("queued", "running")
        if snap["run_id"] and st.session_state.get("_applied_job") != job.id:
            st.session_state["_applied_job"] = job.id
            state.set_current_run(snap["run_id"])
        if active != job_was_active:
            st.rerun()  # the job ended (or started) since this page was drawn: redraw it all, and stop polling
        st.subheader(f"Job: {lit(job.name)}")
        if snap["status"] == "queued":
            st.info("Queued: another training is using this device; this one starts when it ends.",
                    icon=":material/schedule:")
        elif snap["status"] == "running":
            if snap["pretrain"]:  # the net's embeddings are being fitted first
                sweep, sweeps = snap["pretrain"]
                eta = f" · about {snap['eta']:.0f} s left" if snap["eta"] is not None else ""
                st.progress(sweep / sweeps, text="Starting the embeddings from a Bayesian fit: "
                                                 f"sweep {sweep}/{sweeps}{eta} · "
                                                 f"on {snap['device']}")
            elif not snap["n_epochs"]:
                st.progress(0.0, text=f"Preparing the data and the model · on {snap['device']}")
            else:
                epoch = min(snap["n_epochs"], math.floor(snap["epoch"]) + 1)
                eta = f" · about {snap['eta']:.0f} s left" if snap["eta"] is not None else ""
                unit = "Sweep" if snap["optimizer"] == "gibbs" else "Epoch"
                st.progress(snap["fraction"], text=f"{unit} {epoch}/{snap['n_epochs']}{eta} · on {snap['device']}")
            if st.button("Stop", key="stop", icon=":material/stop:"):
                state.jobs().stop(job.id, state.who())
                st.toast("Stopping after this batch; the best model so far is kept.")
        elif snap["status"] == "failed":
            st.error(f"Training failed: {lit(snap['error'])}", icon=":material/error:")
        else:
            metrics = snap["metrics"]
            verb = "Stopped early" if snap["status"] == "stopped" else "Done"
            rmse = (f": validation RMSE {metrics['valid_rmse']:.4f}, MAE {metrics['valid_mae']:.4f}"
                    if "valid_rmse" in metrics else "")
            st.success(f"{verb} in {snap['elapsed']:.0f} s{rmse}. This run is now the current run.",
                       icon=":material/check_circle:")
            widgets.warn_if_no_better(metrics)
            links = st.columns(len(widgets.EXPLORE_PAGES))
            for col, (page, label) in zip(links, widgets.EXPLORE_PAGES):
                col.page_link(page, label=label)
        left, right = st.columns(2)
        with left:
            if snap["batches"]:
                title = "Training MSE of each sample" if snap["optimizer"] == "gibbs" else "Training loss (smoothed)"
                st.plotly_chart(charts.loss_curve(snap["batches"], title), key="loss_chart")
            elif active:
                st.caption("The loss curve appears with the first batches.")
        with right:
            if snap["epochs"]:
                st.plotly_chart(charts.epoch_metrics(snap["epochs"]), key="metrics_chart")
            elif active:
                st.caption("Train and validation RMSE appear after the first epoch.")
        if snap["optimizer"] == "gibbs":
            st.caption("Gibbs sampling: each epoch is one sweep that draws every user's and item's weights from "
                       "their posterior. The first sweeps are burn-in; after them the model is the average of the "
                       "draws so far, which is what the RMSE curves show and what is kept. A single draw fits worse "
                       "than the average.")

    poll()
