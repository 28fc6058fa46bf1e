"""Train: choose the model, optimizer and schedule, find a learning rate, and train in the background with live curves.

The pieces are named and live apart: the settings form (`ui.train_form`), the learning-rate finder
(`ui.lr_finder`) and the job view (`ui.job_view`); this page puts them in order and prepares the data between them.
"""
import pandas as pd
import streamlit as st

from cf_core.config import TrainConfig, data_stats, resolve
from cf_core.cost import TooCostly, check_cost
from cf_core.jobs import Job
from cf_core.splits import TRAIN_COLUMNS, cold_count, split_for_training
from ui import job_view, lr_finder, state, train_form, widgets
from ui.safe import lit


def training_data(ds: state.Dataset, choice: train_form.Choice) -> tuple[TrainConfig, pd.DataFrame, pd.DataFrame]:
    """The TrainConfig the form describes, and the ratings it trains and validates on; when they cannot train, the
    reason and nothing more of the page."""
    try:
        config = train_form.read_config(ds)
        config.validate()
        columns = TRAIN_COLUMNS + (["timestamp"] if config.day else [])  # the day block reads the ratings' time
        if ds.valid is not None:
            return config, ds.ratings.df[columns], ds.valid.df[columns]
        train_df, valid_df = split_for_training(ds.ratings.df, choice.how, choice.valid_frac, st.session_state["seed"],
                                                keep_time=config.day)
        return config, train_df, valid_df
    except ValueError as exc:
        st.error(f"These settings cannot train: {lit(exc)}", icon=":material/error:")
        st.stop()


def what_will_train(config: TrainConfig, train_df: pd.DataFrame, valid_df: pd.DataFrame) -> None:
    """What the settings cost (nothing more of the page when too much), and the settings after choosing from the
    data, in words."""
    stats = data_stats(train_df)
    resolved = resolve(config, stats)
    try:  # what the settings cost where they will train; the worker checks again on its own machine
        for line in check_cost(resolved, stats, *job_view.training_place(resolved)):
            st.warning(line, icon=":material/schedule:")
    except TooCostly as exc:
        st.error(f"These settings cannot train: {lit(exc)}.", icon=":material/error:")
        st.stop()
    with st.expander("What will train (the settings after choosing from the data)"):
        st.dataframe(train_form.settings_table(resolved), hide_index=True, key="what_will_train")
        if st.checkbox("Show every setting as the engine sees them (for experts)", key="all_settings",
                       help="The full configuration, including what does not apply to this fit."):
            st.json(resolved.to_dict())
        st.caption(f"{len(train_df):,} training and {len(valid_df):,} validation ratings; "
                   f"{cold_count(train_df, valid_df):,} validation ratings have a user or item unseen in training.")


def start_training(ds: state.Dataset, job: Job | None, config: TrainConfig, train_df: pd.DataFrame,
                   valid_df: pd.DataFrame) -> None:
    """Start training (not while the session's job is active): the job is queued and the page follows it."""
    busy = job is not None and job.active
    if st.button("Start training", key="start", type="primary", icon=":material/play_arrow:", disabled=busy,
                 help="Stop the running job first" if busy else None):
        name = st.session_state["run_name"].strip() or (
            f"Implicit feedback ({(config.implicit_loss or 'ALS').upper()})" if config.feedback == "implicit"
            else train_form.MODEL_LABELS[config.model])
        job = state.jobs().submit(train_df, valid_df, config, owner=state.who(), name=name, dataset=ds.name,
                                  items=ds.items)
        state.remember_job(job)
        st.rerun()
    if job is None:
        job_view.show(job)  # says so when the session's job is gone (the server restarted)


st.title("Train")
job = job_view.current()
ds = widgets.require_dataset()
if ds is None:
    job_view.show(job)  # a job started before a reload still shows, with no dataset picked
    st.stop()
if job is not None:  # the job (running, or its result) is what the person watches: on top, not below the fold
    job_view.show(job)
    st.divider()

# The sigmoid checkbox is not drawn while the Bayesian fit is chosen; writing its value back keeps the user's choice
# for when they return to an optimizer (Streamlit forgets the state of a widget that a run does not draw).
if "use_y_range" in st.session_state:
    st.session_state["use_y_range"] = st.session_state["use_y_range"]

choice = train_form.draw(ds)
config, train_df, valid_df = training_data(ds, choice)
what_will_train(config, train_df, valid_df)
lr_finder.show(config, train_df, choice)
start_training(ds, job, config, train_df, valid_df)
