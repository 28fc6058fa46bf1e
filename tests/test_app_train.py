"""App test of the Train page: settings, the LR finder, a real short training run reaching the page, stop, and jobs
that survive a new session (?job=ID) without leaking into other sessions."""
import json
import time

import pandas as pd
import pytest

from cf_core.config import DEFAULT_LR, PRETRAINED_LR_FACTOR
from tests.app_helpers import app, open_page


def with_data(at):
    """The built-in data, unless the session already has it back (a reload restores the person's dataset)."""
    if any(b.key == "empty_load_builtin" for b in at.button):
        at.button(key="empty_load_builtin").click().run()
    return at


def train_page(epochs: int | None = 2, optimizer: str | None = None):
    at = with_data(open_page(app(), "views/train.py"))
    if optimizer:
        at.selectbox(key="optimizer").set_value(optimizer).run()
    if epochs:
        at.number_input(key="epochs").set_value(epochs).run()
    return at


def resolved_config(at) -> dict:
    """The settings after choosing from the data, from the expert view of "What will train"."""
    if not at.checkbox(key="all_settings").value:
        at.checkbox(key="all_settings").check().run()
    return json.loads(at.json[0].value)


def settings_shown(at) -> dict:
    """The "What will train" table, setting -> value in words."""
    return dict(at.dataframe[0].value.values.tolist())


def train_to_done(at):
    """Start training and wait until the job is done (no exception on the page on the way)."""
    at = wait_for(at.button(key="start").click().run())
    assert not at.exception and _snap(at).status == "done", _snap(at)
    return at


def wait_for(at, statuses=("done", "stopped", "failed"), timeout=60.0):
    """Rerun the page (as the polling fragment does) until the session's job reaches one of `statuses`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        if _snap(at).status in statuses:
            return at.run()
        time.sleep(0.2)
    raise AssertionError("the job did not finish in time")


def _job(at):
    from cf_core.access import LOCAL
    from ui.state import _jobs, _root

    return _jobs(_root()).get(at.session_state["job_id"], LOCAL)


def _snap(at):
    from cf_core.access import LOCAL
    from ui.state import _jobs, _root

    return _jobs(_root()).snapshot(at.session_state["job_id"], LOCAL)


def test_empty_state_offers_the_builtin_data(app_env):
    at = open_page(app(), "views/train.py")
    assert not at.exception
    assert "No dataset yet" in at.info[0].value
    at.button(key="empty_load_builtin").click().run()
    assert not at.exception and at.button(key="start")


@pytest.mark.parametrize("model, optimizer", [("dotbias", "auto"), ("dotbias", "adam"), ("nn", "auto"), ("dot", "sgd")])
def test_the_empty_fields_placeholders_are_what_trains(app_env, model, optimizer):
    """Each "auto (...)" shows the value the engine then chooses (cf_core.config, not a copy on the page)."""
    at = train_page(epochs=None)
    at.selectbox(key="model").set_value(model).run()
    at.selectbox(key="optimizer").set_value(optimizer).run()
    resolved = resolved_config(at)
    assert at.number_input(key="n_factors").placeholder == f"auto ({resolved['n_factors']})"
    epochs = at.number_input(key="epochs").placeholder
    assert epochs.startswith(f"auto ({resolved['epochs']}")
    if resolved["optimizer"] == "gibbs":
        assert f"the first {resolved['burn_in']} not averaged" in epochs
    if model == "nn":  # the base strength (on MovieLens' spread; what trains is scaled to this data's)
        from cf_core.config import DEFAULT_LAYER_WD

        wd = at.number_input(key="layer_wd").placeholder
        assert wd == f"auto ({DEFAULT_LAYER_WD[resolved['pretrain']]:g} on MovieLens' spread)"


def test_settings_resolve_and_bad_settings_are_explained(app_env):
    at = train_page(epochs=None)
    at.selectbox(key="model").set_value("nn").run()
    at.text_input(key="layers").set_value("32,16").run()
    assert not at.exception
    resolved = resolved_config(at)
    assert resolved["layers"] == [32, 16] and resolved["n_factors"] == 50
    assert 1e-3 < resolved["layer_wd"] < 1e-2  # auto: 3e-3 for a pretrained net, scaled with the spread of the ratings
    at.number_input(key="layer_wd").set_value(0.01).run()
    assert resolved_config(at)["layer_wd"] == 0.01
    assert resolved["y_range"] == [0.5, 5.5]  # auto: the scale widened by 1/8
    # starts from a Bayesian fit
    assert resolved["pretrain"] and resolved["lr"] == DEFAULT_LR["adam"] * PRETRAINED_LR_FACTOR
    assert at.number_input(key="lr").placeholder == f"auto ({DEFAULT_LR['adam'] * PRETRAINED_LR_FACTOR:g})"
    at.checkbox(key="pretrain").uncheck().run()
    resolved = resolved_config(at)
    assert not resolved["pretrain"] and resolved["lr"] == DEFAULT_LR["adam"]
    assert resolved["optimizer"] == "adam" and "gibbs" not in at.selectbox(key="optimizer").options
    at.selectbox(key="split_how").set_value("time").run()
    assert not at.exception and not at.error
    at.number_input(key="y_lo").set_value(5.0)
    at.number_input(key="y_hi").set_value(1.0).run()
    assert not at.exception
    assert "y_range must be (low, high)" in at.error[0].value


def test_auto_fit_is_bayesian_for_the_dot_product_and_adam_is_a_click_away(app_env):
    at = train_page(epochs=None)
    resolved = resolved_config(at)
    assert resolved["optimizer"] == "gibbs" and resolved["y_range"] is None and resolved["n_factors"] == 10
    assert "Auto: Bayesian" in at.selectbox(key="optimizer").format_func("auto")
    assert at.number_input(key="lr").disabled and at.checkbox(key="use_y_range_gibbs").disabled
    assert not at.checkbox(key="use_y_range_gibbs").value  # shown off: the Bayesian fit has no sigmoid
    assert "no learning rate" in at.info[0].value  # the LR finder explains itself instead of failing
    at.selectbox(key="optimizer").set_value("adam").run()
    resolved = resolved_config(at)
    assert resolved["optimizer"] == "adam" and resolved["y_range"] == [0.5, 5.5] and resolved["n_factors"] == 64
    assert not at.number_input(key="lr").disabled and at.button(key="lr_find")
    at.number_input(key="y_lo").set_value(1.0)
    at.number_input(key="y_hi").set_value(5.0)
    at.checkbox(key="use_y_range").uncheck().run()
    at.selectbox(key="optimizer").set_value("gibbs").run()  # a y_range typed for Adam does not block the Bayesian fit
    assert not at.error and resolved_config(at)["y_range"] is None
    at.selectbox(key="optimizer").set_value("adam").run()
    assert not at.checkbox(key="use_y_range").value  # kept (AppTest keeps it anyway; test_browser.py checks the page)


def test_lr_finder_plots_and_suggestion_is_used(app_env):
    at = train_page(optimizer="adam")
    at.button(key="lr_find").click().run()
    assert not at.exception
    assert any(c for c in at.get("plotly_chart"))
    suggestion = at.session_state["lr_result"][2]
    assert 1e-6 <= suggestion <= 10
    at.button(key="use_suggestion").click().run()
    assert at.number_input(key="lr").value == float(f"{suggestion:.3g}")


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_the_finder_offers_no_suggestion_for_plain_sgd(app_env, optimizer):
    """Its suggestions for SGD trained worse than the automatic rate, and the dot product without biases learned
    nothing at them: the curve is shown, the suggestion is not offered, and the page says why in words."""
    at = train_page(optimizer=optimizer)
    at.button(key="lr_find").click().run()
    assert not at.exception and at.get("plotly_chart")
    assert not [b for b in at.button if b.key == "use_suggestion"]
    assert any("leave the learning rate empty" in i.value for i in at.info)


def test_training_progress_reaches_the_page(app_env):
    at = train_page(epochs=2)
    at.text_input(key="run_name").set_value("tiny")
    at.button(key="start").click().run()
    assert not at.exception
    job_id = at.session_state["job_id"]
    assert at.query_params["job"] == job_id
    at = wait_for(at)
    snap = _snap(at)
    assert snap.status == "done" and len(snap.progress.epochs) == 2 and snap.progress.batches
    assert not at.exception
    assert "Done" in at.success[0].value and "validation RMSE" in at.success[0].value
    assert snap.progress.optimizer == "gibbs"
    assert any("Gibbs sampling: each epoch is one sweep" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 2  # loss curve and RMSE per epoch
    assert at.session_state["run_id"] == snap.run_id  # the new run is the session's current run
    assert 0.3 < snap.metrics["valid_rmse"] < 0.9 * snap.metrics["valid_baseline_rmse"]  # well below the mean

    # Leaving the page and coming back shows the job again.
    at.switch_page("views/evaluate.py").run()
    assert not at.exception and at.metric  # the new run is explored at once
    at.switch_page("views/train.py").run()
    assert "Done" in at.success[0].value and at.query_params["job"] == job_id

    # A new tab with ?job=ID shows the same job; a different session without it sees none.
    other = app()
    other.query_params["job"] = job_id
    with_data(open_page(other, "views/train.py"))
    assert not other.exception and "Done" in other.success[0].value
    stranger = with_data(open_page(app(), "views/train.py"))  # no ?job=: an ended job is not brought back
    assert not stranger.exception and not stranger.success and "job_id" not in stranger.session_state


def test_stop_keeps_the_best_model(app_env):
    at = train_page(epochs=400, optimizer="adam")
    at.button(key="start").click().run()
    deadline = time.time() + 30
    while _snap(at).status != "running" or not _snap(at).progress.epochs:
        assert time.time() < deadline
        time.sleep(0.05)
    at.run()
    at.button(key="stop").click().run()
    at = wait_for(at)
    snap = _snap(at)
    assert snap.status == "stopped" and 1 <= len(snap.progress.epochs) < 400
    assert "Stopped early" in at.success[0].value
    assert at.session_state["run_id"] == snap.run_id


def test_auto_choice_on_the_page_follows_the_training_part_not_the_whole_table(app_env, monkeypatch):
    import cf_core.config

    # 3,000 ratings, 2,400 of them train: with the switch at 2,700 the fit that runs is Gibbs sampling, so the page
    # must say so too (it used to decide on all 3,000 and show Adam).
    monkeypatch.setattr(cf_core.config, "GIBBS_MAX_RATINGS", 2700)
    at = train_page(epochs=None)
    assert resolved_config(at)["optimizer"] == "gibbs"
    assert at.selectbox(key="optimizer").format_func("auto") == "Auto: Bayesian (Gibbs sampling)"
    at.selectbox(key="model").set_value("nn").run()
    assert at.checkbox(key="pretrain").value and resolved_config(at)["pretrain"]


def test_data_without_times_offers_no_split_by_time(app_env):
    """'Each user's latest ratings' on data without timestamps crashed the page (KeyError) and hid Start training."""
    from cf_core.data import read_ratings
    from ui import state

    at = app()
    frame = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3] * 5, "item": [1, 2, 1, 3, 2, 3] * 5,
                          "rating": [1, 2, 3, 4, 5, 3] * 5})
    at.session_state["dataset"] = state.Dataset("no-times.csv", read_ratings(frame.drop_duplicates(["user", "item"])))
    at.session_state["split_how"] = "time"  # chosen on a dataset that had times
    at = open_page(at, "views/train.py")
    assert not at.exception
    assert at.selectbox(key="split_how").options == ["Random", "Per user"]
    assert at.button(key="start") and not at.error


def test_a_run_no_better_than_the_mean_says_so(app_env):
    """A run that ends at the global mean's RMSE (here SGD at a rate far too small) says so plainly."""
    at = train_page(epochs=2, optimizer="sgd")
    at.number_input(key="lr").set_value(1e-6).run()
    at.button(key="start").click().run()
    at = wait_for(at)
    assert not at.exception
    assert any("no better than giving everyone the average rating" in w.value for w in at.warning)
    good = wait_for(train_page(epochs=3).button(key="start").click().run())
    assert not any("no better than" in w.value for w in good.warning)


def test_reset_to_defaults(app_env):
    """The previous run's settings (betas, rate, model) silently carried into the next; Reset puts them back."""
    at = train_page(epochs=7, optimizer="adam")
    at.number_input(key="beta1").set_value(0.5).run()
    at.number_input(key="lr").set_value(0.3).run()
    at.selectbox(key="model").set_value("nn").run()
    at.button(key="reset_settings").click().run()
    assert not at.exception
    assert at.number_input(key="beta1").value == 0.9 and at.number_input(key="lr").value is None
    assert at.selectbox(key="model").value == "dotbias" and at.number_input(key="epochs").value is None
    assert at.selectbox(key="optimizer").value == "auto"


def test_an_ended_job_without_curves_does_not_promise_them(app_env):
    """A job that failed before its first batch said "The loss curve appears with the first batches" for ever."""
    from cf_core.access import LOCAL
    from ui.state import _jobs, _root

    job = _jobs(_root()).submit(pd.DataFrame({"user": [1], "item": [1]}), None, __import__("cf_core.config").config
                                .TrainConfig(epochs=1), owner=LOCAL)
    at = app()
    at.query_params["job"] = job.id
    at = wait_for(open_page(at, "views/train.py"))
    assert not at.exception and at.error and "Training failed" in at.error[0].value
    assert not any("appear" in c.value for c in at.caption)


@pytest.mark.parametrize("model, optimizer", [("nn", "adamw"), ("dotbias", "auto"), ("dotbias", "momentum")])
def test_every_train_control_has_plain_help(app_env, model, optimizer):
    """With the net chosen, 5 of 25 controls had help, and those spoke jargon."""
    at = train_page(epochs=None)
    at.selectbox(key="model").set_value(model).run()
    at.selectbox(key="optimizer").set_value(optimizer).run()
    controls = [*at.selectbox, *at.number_input, *at.slider, *at.checkbox, *at.text_input]
    missing = [w.label for w in controls if not (w.help or "").strip()]
    assert not at.exception and len(controls) >= 18 and missing == []


def test_what_will_train_is_a_readable_table_of_what_applies(app_env):
    """It was JSON with wd, eps and schedule for a Gibbs fit."""
    at = train_page(epochs=None)
    gibbs = settings_shown(at)
    assert gibbs["How it learns"] == "Bayesian (Gibbs sampling)" and "Learning rate" not in gibbs
    assert not any(k in gibbs for k in ("Weight decay", "Adam's eps", "Schedule", "Hidden layers"))
    at.selectbox(key="model").set_value("nn").run()
    at.selectbox(key="optimizer").set_value("adam").run()
    net = settings_shown(at)
    assert net["Model"] == "Neural net" and "Hidden layers" in net and "Adam's betas" in net and "Momentum" not in net


def test_an_interrupted_job_offers_resume_and_goes_on_from_its_checkpoint(app_env, monkeypatch):
    """A job whose worker stopped answering (killed, its machine gone) is shown as cut off, with the three ways on;
    Resume queues it again and a worker finishes it from its checkpoint."""
    from cf_core.access import LOCAL
    from ui.state import _jobs, _root

    monkeypatch.setenv("COLLAB_STUDIO_CHECKPOINT_EPOCHS", "2")
    monkeypatch.setenv("COLLAB_STUDIO_CHECKPOINT_SECONDS", "0")
    at = train_page(epochs=60, optimizer="adam")
    at.number_input(key="batch_size").set_value(32).run()
    at.button(key="start").click().run()
    queue = _jobs(_root())
    deadline = time.time() + 60
    while (_snap(at).progress.checkpoint_epoch or 0) < 4:
        assert time.time() < deadline, _snap(at)
        time.sleep(0.05)
    assert queue.reap(timeout=-1) == 1  # as if its heartbeats had stopped: the worker drops it at its next report
    at.run()
    assert not at.exception
    assert "This training was cut off" in at.warning[0].value and "checkpoint after epoch" in at.warning[0].value
    labels = [b.label for b in at.button]
    assert any(label.startswith("Resume from epoch") for label in labels)
    assert "Keep the best model so far" in labels and "Start again from the beginning" in labels
    at.button(key="resume").click().run()
    assert not at.exception and _snap(at).status in ("queued", "running", "done")
    at = wait_for(at)
    snap = _snap(at)
    assert snap.status == "done" and snap.progress.resumed_from >= 4 and len(snap.progress.epochs) == 60
    assert "Done" in at.success[0].value and at.session_state["run_id"] == snap.run_id
    assert len(queue.store.list_all(LOCAL)) == 1  # the dropped attempt saved nothing


def test_a_job_that_ended_before_the_page_was_drawn_makes_its_run_current_in_the_sidebar(app_env, split_planted):
    """A short job could end before the page after Start training was drawn: the sidebar still said "Current run:
    none yet" (CI saw it in Chromium)."""
    from cf_core.access import LOCAL
    from cf_core.config import TrainConfig
    from ui.state import _jobs, _root

    train, valid = split_planted
    job = _jobs(_root()).submit(train, valid, TrainConfig(epochs=1), owner=LOCAL, name="quick one")
    deadline = time.time() + 60
    while _jobs(_root()).snapshot(job.id, LOCAL).status != "done":
        assert time.time() < deadline
        time.sleep(0.05)
    at = app()
    at.query_params["job"] = job.id
    at = open_page(at, "views/train.py")
    assert not at.exception
    assert any("Current run:" in c.value and "quick one" in c.value for c in at.sidebar.caption)


def test_settings_too_costly_are_refused_on_the_page_with_the_figures(app_env, monkeypatch):
    """Batch size 1 held the only job slot for over 15 minutes an epoch; 1024 Bayesian factors ended in an
    allocator traceback. The page says why, with the estimate, and offers no Start."""
    import cf_core.cost as cost_module

    at = train_page(epochs=None, optimizer="adam")
    monkeypatch.setattr(cost_module, "STEP_SECONDS", {"cpu": 5.0, "cuda": 5.0})  # the test data is small
    at.number_input(key="batch_size").set_value(1).run()
    assert not at.exception and any("steps an epoch" in e.value and "batch size of at least" in e.value
                                    for e in at.error), [e.value for e in at.error]
    assert not any(b.key == "start" for b in at.button)
    monkeypatch.setattr(cost_module, "STEP_SECONDS", {"cpu": 2.5e-3, "cuda": 1e-3})
    monkeypatch.setattr(cost_module, "available_bytes", lambda device: 1 << 20)
    at.selectbox(key="optimizer").set_value("gibbs").run()
    at.number_input(key="n_factors").set_value(512).run()
    assert any("GB of memory" in e.value and "use fewer factors" in e.value for e in at.error)
    assert not any(b.key == "start" for b in at.button)


def test_learning_from_what_each_person_rated_trains_from_the_page(app_env):
    """The Bayesian SVD++ option: a checkbox for the Bayesian fit, ticked by default, in the settings that train (off
    when unticked), and a run at the end."""
    at = train_page(epochs=6)
    assert not at.checkbox(key="implicit").disabled and at.checkbox(key="implicit").value
    assert resolved_config(at)["implicit"] is True
    at.checkbox(key="implicit").uncheck().run()
    assert resolved_config(at)["implicit"] is False
    at.checkbox(key="implicit").check().run()
    assert resolved_config(at)["implicit"] is True
    table = settings_shown(at)
    assert table["Learns from what each person chose to rate"] == "yes"
    at = train_to_done(at)
    at.selectbox(key="optimizer").set_value("adam").run()
    assert at.checkbox(key="implicit_off").disabled and resolved_config(at)["implicit"] is False


def test_learning_from_the_genres_and_the_day_trains_from_the_page(app_env):
    """The genres and day blocks: ticked (genres) and unticked (day) by default for the Bayesian fit, in the settings
    that train, and a run that kept them; both shown off for the optimizers."""
    at = train_page(epochs=4)
    assert at.checkbox(key="genres").value and not at.checkbox(key="day").value
    assert resolved_config(at)["genres"] is True and resolved_config(at)["day"] is False
    at.checkbox(key="day").check().run()
    assert resolved_config(at)["day"] is True
    table = settings_shown(at)
    assert table["Learns from the day of each rating"] == "yes"
    at = train_to_done(at)
    from cf_core.access import LOCAL
    from ui.state import store

    run = store().load(_snap(at).run_id, LOCAL)
    assert run.recommender.config.day and run.recommender.config.genres
    assert "timestamp" in run.valid.columns  # the Evaluate page's predictions use the day's terms too
    assert hasattr(run.recommender.model, "day")
    at.selectbox(key="optimizer").set_value("adam").run()
    assert at.checkbox(key="genres_off").disabled and at.checkbox(key="day_off").disabled
    assert resolved_config(at)["day"] is False and resolved_config(at)["genres"] is False
