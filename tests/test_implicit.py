"""Implicit feedback through the Recommender, the store and the CLI: who interacted with what, fitted by weighted
ALS (cf_core/wals.py) and judged by its top K against the most popular items."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from cf_core.config import TrainConfig
from cf_core.recommender import Recommender
from cf_core.splits import user_split


@pytest.fixture(scope="module")
def interactions():
    """Three taste groups, each choosing mostly from its own 30 items, plus a few popular items everyone picks:
    the structure implicit feedback carries, which popularity alone misses. `rating`: a star rating, 5 for the
    group's own items, 2 for the others (for `like`)."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(240):
        g = u % 3
        own = rng.choice(np.arange(30) + 30 * g, 10, replace=False)
        other = rng.choice(np.arange(90), 3, replace=False)
        rows += [(u, int(i), 5.0) for i in own] + [(u, int(i), 2.0) for i in set(other) - set(own)]
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


def test_an_implicit_fit_ranks_each_users_held_out_items_far_better_than_most_popular(interactions):
    train, valid = user_split(interactions, 0.2, seed=1)
    rec = Recommender(TrainConfig(feedback="implicit", seed=0)).fit(train, valid)
    cfg = rec.config
    assert (cfg.model, cfg.optimizer, cfg.n_factors, cfg.epochs) == ("dot", "als", 16, 8)  # from the data's size
    got = rec.evaluate(valid)
    assert got["rmse"] is None  # no rating to predict: the top K is the measure
    ranked = got["ranking"]
    assert ranked["model"]["ndcg"] > 1.5 * ranked["most_popular"]["ndcg"], ranked
    assert ranked["model"]["recall"] > 1.5 * ranked["most_popular"]["recall"], ranked
    scores = rec.predict_frame(valid)["prediction"]
    assert scores.between(0, 1).all()  # a preference, not a rating
    assert rec.history.epochs[-1]["train_rmse"] < rec.history.epochs[0]["train_rmse"]


def test_like_trains_on_the_liked_ratings_alone_and_too_high_a_bar_is_refused(interactions):
    rec = Recommender(TrainConfig(feedback="implicit", like=4)).fit(interactions)
    assert len(rec.rated_items) == int((interactions["rating"] >= 4).sum())
    with pytest.raises(ValueError, match="at least 6, the rating that counts as liked: choose a lower one"):
        Recommender(TrainConfig(feedback="implicit", like=6)).fit(interactions)


def test_counts_weigh_the_interactions(interactions):
    counted = interactions.assign(rating=np.where(interactions["rating"] > 3, 20.0, 1.0))
    plain = Recommender(TrainConfig(feedback="implicit", seed=0)).fit(counted)
    weighted = Recommender(TrainConfig(feedback="implicit", seed=0, counts=True)).fit(counted)
    assert not np.allclose(plain.model.item_factors.weight.detach(), weighted.model.item_factors.weight.detach())


@pytest.mark.parametrize("bad, message", [
    (dict(optimizer="gibbs"), "implicit feedback trains the dot product, by weighted ALS or by SGD"),
    (dict(model="nn"), "implicit feedback trains the dot product, by weighted ALS or by SGD"),
    (dict(implicit_loss="hinge"), "implicit_loss must be bce or bpr"),
    (dict(negatives=0), "negatives must be at least 1"),
    (dict(alpha=-1.0), "alpha must be zero or positive"),
    (dict(feedback="clicks"), "feedback must be explicit or implicit"),
])
def test_settings_that_do_not_apply_to_implicit_feedback_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{"feedback": "implicit", **bad}).validate()


def test_an_implicit_run_saves_loads_and_ranks_the_same(interactions, tmp_path):
    from cf_core.access import LOCAL
    from cf_core.ranking import ranking
    from cf_core.store import RunStore

    train, valid = user_split(interactions, 0.2, seed=1)
    rec = Recommender(TrainConfig(feedback="implicit")).fit(train)
    store = RunStore(tmp_path)
    loaded = store.load(store.save(rec, owner="local", valid=valid, train=train), LOCAL, device="cpu").recommender
    assert loaded.config.feedback == "implicit" and loaded.rating_scale == (0.0, 1.0)
    assert ranking(loaded, valid) == ranking(rec, valid)


def test_the_cli_trains_implicit_feedback_and_prints_its_top_k(interactions, tmp_path):
    path = tmp_path / "plays.csv"
    interactions.rename(columns={"rating": "plays"}).to_csv(path, index=False)
    for extra, optimizer in (([], "als"), (["--optimizer", "adam", "--implicit-loss", "bpr"], "adam")):
        run = subprocess.run([sys.executable, "-m", "cf_core", "train", "--ratings", str(path), "--rating-col",
                              "plays", "--feedback", "implicit", "--counts", *extra, "--out", str(tmp_path / "runs"),
                              "--quiet"], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        out = json.loads(run.stdout.strip().splitlines()[-1])
        assert out["optimizer"] == optimizer and out["valid_rmse"] is None
        assert out["ranking"]["model"]["ndcg"] > out["ranking"]["most_popular"]["ndcg"]


def test_a_new_user_who_chose_a_few_items_gets_their_groups_items_without_retraining(interactions):
    from cf_core import analysis

    rec = Recommender(TrainConfig(feedback="implicit", seed=0)).fit(interactions[interactions["user"] >= 30])
    for group in range(3):
        chosen = {int(i): 1.0 for i in np.arange(4) + 30 * group}
        top = analysis.recommend_new_user(rec, chosen, None, 10)
        assert not set(top["item"]) & set(chosen)  # what they chose is not recommended back
        assert (top["item"] // 30 == group).mean() >= 0.8, (group, top["item"].tolist())


def test_the_fold_in_is_the_user_sides_exact_step():
    import torch

    from cf_core.wals import WALS, fold_in

    u = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    i = torch.tensor([0, 1, 2, 1, 3, 0, 2, 3, 4])
    fit = WALS(u, i, torch.ones(9), 3, 5, 3, reg=0.2, alpha=2.0, cg_steps=0)
    fit.sweep()
    Y = fit.W["item"].double()
    exact = fit.sides["user"].exact(Y, Y.T @ Y + 0.2 * torch.eye(3, dtype=torch.float64))  # plus its own penalty
    for row in range(3):
        mine = i[u == row]
        assert torch.allclose(fold_in(Y, mine, torch.ones(len(mine)), 0.2, 2.0), exact[row], atol=1e-8)


@pytest.mark.parametrize("loss", ["bce", "bpr"])
def test_the_lessons_dot_product_learns_from_interactions_and_sampled_negatives(interactions, loss):
    """The dot product with biases by Adam, against items drawn at random: a sigmoid and binary cross-entropy
    (bce) or pairwise ranking (bpr); both rank far above the most popular items."""
    train, valid = user_split(interactions, 0.2, seed=1)
    rec = Recommender(TrainConfig(feedback="implicit", optimizer="adam", implicit_loss=loss, seed=0)).fit(train)
    cfg = rec.config
    assert (cfg.model, cfg.implicit_loss, cfg.n_factors, cfg.epochs) == ("dotbias", loss, 64, 20)
    ranked = rec.evaluate(valid)["ranking"]
    assert ranked["model"]["ndcg"] > 1.5 * ranked["most_popular"]["ndcg"], ranked
    assert rec.history.epochs[-1]["train_rmse"] < rec.history.epochs[0]["train_rmse"]  # the loss falls
    from cf_core import analysis

    scores = analysis.recommend(rec, 0, None, 5)["predicted_rating"]  # the chance of choosing: a sigmoid of logits
    assert scores.between(0, 1).all() and scores.is_monotonic_decreasing and scores.iloc[0] > 0.05, scores.tolist()
