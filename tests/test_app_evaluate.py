"""App test of the Evaluate page: the joint density plot, errors by rating and by activity, runs compared."""
import numpy as np

from cf_core import analysis
from tests.app_helpers import app, chart_keys, explore, figure, open_page, values


def test_empty_state_links_to_train_and_runs(app_env):
    at = open_page(app(), "views/evaluate.py")
    assert not at.exception
    assert "No run to explore yet" in at.info[0].value


def test_unknown_run_is_a_message(app_env):
    at = explore("x" * 22, "views/evaluate.py")
    assert not at.exception
    assert "no run here that you may open" in at.error[0].value and "x" * 22 not in at.error[0].value


def test_shared_run_is_evaluated(saved_run, trained, split_planted):
    _, valid = split_planted
    at = explore(saved_run, "views/evaluate.py")
    assert not at.exception and not at.error
    expected = trained.evaluate(valid)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Validation RMSE"] == f"{expected['rmse']:.4f}"
    assert metrics["Validation MAE"] == f"{expected['mae']:.4f}"
    assert metrics["Validation ratings"] == f"{len(valid):,}"
    assert chart_keys(at) == {"joint", "by_rating", "by_activity"}  # one run: nothing to compare it with

    joint = figure(at, "joint")
    heat = next(t for t in joint["data"] if t["type"] == "heatmap")
    assert np.nansum(values(heat["customdata"]).astype(float)) == len(valid)  # every rating lands in a bin
    at.slider(key="bins").set_value(20).run()
    heat = next(t for t in figure(at, "joint")["data"] if t["type"] == "heatmap")
    assert len(values(heat["x"])) == 20

    from cf_core.ranking import ranking

    # the top-K table: this model's figures beside the most popular items', at the K chosen
    def ranking_table(at):
        return next(d.value for d in at.dataframe if "most popular items" in d.value.columns)

    table = ranking_table(at)
    expected = ranking(trained, valid, 10)
    assert list(table.columns) == ["metric", "this model", "most popular items"] and len(table) == 5
    assert table["this model"].iloc[2] == round(expected["model"]["ndcg"], 4)
    assert table["most popular items"].iloc[2] == round(expected["most_popular"]["ndcg"], 4)
    at.number_input(key="top_k").set_value(3).run()
    assert ranking_table(at)["this model"].iloc[2] == round(ranking(trained, valid, 3)["model"]["ndcg"], 4)
    at.number_input(key="hit_like").set_value(4.0).run()  # only the ratings of 4 or more are hits
    assert ranking_table(at)["this model"].iloc[2] == round(ranking(trained, valid, 3, like=4.0)["model"]["ndcg"], 4)

    by_activity = analysis.error_by_activity(trained, trained.predict_frame(valid))
    bars = figure(at, "by_activity")["data"][0]
    assert list(values(bars["x"])) == by_activity["user_ratings"].astype(str).tolist()
    assert np.allclose(values(bars["y"]), by_activity["rmse"], atol=1e-5)


def test_a_run_with_nan_predictions_says_so_instead_of_a_mean_that_skips_them(app_env, trained, split_planted):
    """Evaluate showed RMSE 0.83 'over 20,000 ratings' for a model whose predictions were NaN for most of them."""
    import copy

    import torch

    from cf_core.store import RunStore

    train, valid = split_planted
    broken = copy.deepcopy(trained)
    with torch.no_grad():
        broken.model.user_factors.weight[::2] = float("nan")
        if hasattr(broken.model, "draws"):  # a Bayesian fit predicts ratings from its kept draws
            broken.model.draws.users[:, ::2] = float("nan")
    run_id = RunStore().save(broken, owner="local", name="broken", valid=valid, train=train[["user", "item", "rating"]])
    at = explore(run_id, "views/evaluate.py")
    assert not at.exception and "predictions are not numbers" in at.error[0].value and not at.metric


def test_runs_are_compared_when_there_are_several(saved_run, trained):
    from cf_core.store import RunStore

    RunStore().save(trained, owner="local", name="second", metrics={"valid_rmse": 0.9, "valid_mae": 0.7})
    at = explore(saved_run, "views/evaluate.py")
    assert not at.exception and "runs_metrics" in chart_keys(at)
