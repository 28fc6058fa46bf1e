"""Ranking metrics (cf_core/ranking.py) against hand-computed cases, and a run's top K against most popular."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from cf_core.ranking import at_k, ranking, top_k


def test_the_metrics_match_a_hand_computed_case_with_a_user_who_has_fewer_than_k_relevant_items():
    # user 0: ranked 0, 1, 2; relevant 1 and 5 (hit at place 2). user 1: ranked 3, 4 and no third candidate;
    # relevant 3 alone (hit at place 1), fewer than K = 3.
    top = np.array([[0, 1, 2], [3, 4, -1]])
    got = at_k(top, [np.array([1, 5]), np.array([3])], n_items=6)
    d2 = 1 / math.log2(3)
    assert got["precision"] == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert got["recall"] == pytest.approx((1 / 2 + 1) / 2)
    assert got["ndcg"] == pytest.approx((d2 / (1 + d2) + 1) / 2)  # user 0's ideal: two hits in the first places
    assert got["map"] == pytest.approx(((1 / 2) / 2 + 1) / 2)  # AP: precision at the hit, over min(R, K)
    assert got["coverage"] == pytest.approx(5 / 6)  # items 0..4 shown; -1 is no item


def test_a_perfect_ranking_scores_one_and_a_miss_scores_zero():
    perfect = at_k(np.array([[4, 2, 0]]), [np.array([0, 2, 4, 5])], n_items=6)
    assert perfect["precision"] == perfect["ndcg"] == perfect["map"] == 1.0 and perfect["recall"] == 0.75
    miss = at_k(np.array([[1, 3]]), [np.array([0])], n_items=4)
    assert miss["precision"] == miss["recall"] == miss["ndcg"] == miss["map"] == 0.0


def test_top_k_skips_the_users_training_items_and_orders_ties_by_item():
    scores = torch.tensor([[1.0, 2.0, 2.0, 0.0, 2.0], [5.0, 5.0, 5.0, 5.0, 5.0]])
    indptr, seen = np.array([0, 1, 4]), np.array([1, 0, 1, 2])  # user 0 saw item 1; user 1 items 0, 1, 2
    top = top_k(lambda u: scores[u], np.array([0, 1]), indptr, seen, n_items=5, k=3)
    assert top[0].tolist() == [2, 4, 0]  # 2 and 4 tie at 2 (item 1, also 2, is excluded); then 0
    assert top[1].tolist() == [3, 4, -1]  # two candidates left for three places


@pytest.fixture(scope="module")
def grouped():
    """Two taste groups, each rating items from its own half of the catalogue (and the other half's most popular
    items, so popularity alone points the wrong way for half of the users)."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(300):
        group = u % 2
        own = np.arange(40) + 40 * group
        for i in rng.choice(own, 12, replace=False):
            rows.append((u, int(i), 5.0 if rng.random() < 0.8 else 3.0))
        for i in rng.choice(np.arange(40) + 40 * (1 - group), 3, replace=False):
            rows.append((u, int(i), 2.0))
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


def test_a_fit_ranks_held_out_items_better_than_most_popular_and_never_recommends_a_training_item(grouped):
    from cf_core.recommender import Recommender
    from cf_core.splits import user_split

    train, valid = user_split(grouped, 0.2, seed=1)
    rec = Recommender(epochs=40, seed=0).fit(train, valid)
    got = ranking(rec, valid, k=5, like=4)
    assert got["users"] > 250 and got["k"] == 5
    assert got["model"]["ndcg"] > got["most_popular"]["ndcg"] + 0.05, got
    assert got["model"]["recall"] > got["most_popular"]["recall"], got
    users = np.arange(rec.n_users)
    top = top_k(lambda u: torch.zeros(len(u), rec.n_items), users, rec.rated_indptr, rec.rated_items,
                rec.n_items, 5)
    for u in users[:50]:
        assert not set(top[u]) & set(rec.rated_items[rec.rated_indptr[u]:rec.rated_indptr[u + 1]])


def test_held_out_items_the_model_never_saw_are_counted_and_left_out(grouped):
    from cf_core.recommender import Recommender

    rec = Recommender(optimizer="adam", epochs=2, seed=0).fit(grouped)
    valid = pd.DataFrame({"user": [0, 0, 999], "item": [1, 12345, 1], "rating": [5.0, 5.0, 5.0]})
    got = ranking(rec, valid, k=10)
    assert got["held_out_unknown_to_the_model"] == 2 and got["relevant"] == 1 and got["users"] == 1
    with pytest.raises(ValueError, match="K must be at least 1"):
        ranking(rec, valid, k=0)
