"""The day block's Gram matrices (cf_core/day_grams.py) against an outer product per rating, summed row by row."""
import pytest
import torch

import cf_core.day_grams
from cf_core.day_grams import DayGrams


@pytest.mark.parametrize("chunk", [1 << 18, 3])  # one chunk of (user, day) pairs; many
def test_each_sides_gram_matrices_are_the_sum_of_its_ratings_feature_outer_products(monkeypatch, chunk):
    monkeypatch.setattr(cf_core.day_grams, "CHUNK", chunk)
    g = torch.Generator().manual_seed(0)
    n_users, n_items, n_days, k = 9, 7, 4, 3
    pairs = torch.randperm(n_users * n_items, generator=g)[:40]
    user, item = pairs // n_items, pairs % n_items
    day = torch.randint(0, n_days, (40,), generator=g)  # several ratings share a (user, day): sessions
    vectors = {side: torch.randn(n, k, generator=g, dtype=torch.float64)
               for side, n in (("user", n_users), ("item", n_items), ("day", n_days))}
    grams = DayGrams(user, item, day, n_users, n_items, n_days)
    assert len(grams.pair_user) < 40  # the pairs are fewer than the ratings
    index = {"user": user, "item": item, "day": day}
    for side, n_rows in (("user", n_users), ("item", n_items), ("day", n_days)):
        a, b = (other for other in ("user", "item", "day") if other != side)
        for bias in (False, True):
            expected = torch.zeros(n_rows, k + bias, k + bias, dtype=torch.float64)
            for n in range(40):
                f = vectors[a][index[a][n]] + vectors[b][index[b][n]]
                f = torch.cat([f, torch.ones(1, dtype=torch.float64)]) if bias else f
                expected[index[side][n]] += torch.outer(f, f)
            torch.testing.assert_close(grams.grams(side, vectors, bias), expected)
