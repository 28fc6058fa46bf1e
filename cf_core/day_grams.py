"""The Gram matrices of the Bayesian FM's rows when the day block is on, without an outer product per rating.

With the day, a rating's features for one side are the sum of the vectors of its two other sides: for a user's row
q_i + v_t, for an item's p_u + v_t, for a day's p_u + q_i. A row's Gram matrix sums (a + b)(a + b)^T over its
ratings, which is

    sum a a^T + sum b b^T + X + X^T,     X = sum a b^T.

The first two terms need one outer product per row of the other side, times a sparse matrix of counts (how many of
the row's ratings have that user, item or day). X goes through the (user, day) pairs: a user's ratings of one day
share p_u and v_t, and people rate in sessions (MovieLens 100k: 2,515 pairs for 100,000 ratings). For a user,
X = sum over their days of (the sum of that day's items' q_i) v_t^T; for a day, the same pairs with p_u; for an item,
the count of its ratings in each pair times p_u v_t^T. Summing an outer product per rating instead cost most of a
sweep with the day (measured while this was built: 2.9 s of 13 s, 30 sweeps on MovieLens 100k).
"""
from __future__ import annotations

import torch

from .bayes import _csr_of, _Sparse

SIDES = ("user", "item", "day")
CHUNK = 1 << 18  # (user, day) pairs per step: bounds the memory of their outer products at 25M ratings


def _counts(rows: torch.Tensor, cols: torch.Tensor, n_rows: int, n_cols: int) -> _Sparse:
    """The n_rows x n_cols matrix of how many entries have each (row, col)."""
    key, count = torch.unique(rows * n_cols + cols, return_counts=True)
    return _csr_of(key // n_cols, key % n_cols, count.double(), n_rows, n_cols)


def _outer(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Row by row x y^T, flattened (rows x k*k)."""
    return (x[:, :, None] * y[:, None, :]).reshape(len(x), -1)


class DayGrams:
    """The sparse matrices of the decomposition above, for ratings (user, item, day), built once per fit."""

    def __init__(self, user: torch.Tensor, item: torch.Tensor, day: torch.Tensor, n_users: int, n_items: int,
                 n_days: int):
        index, size = {"user": user, "item": item, "day": day}, {"user": n_users, "item": n_items, "day": n_days}
        self.size = size
        self.counts = {(side, other): _counts(index[side], index[other], size[side], size[other])
                       for side in SIDES for other in SIDES if other != side}
        key, pair = torch.unique(user * n_days + day, return_inverse=True)  # the (user, day) pairs, in that order
        self.pair_user, self.pair_day = key // n_days, key % n_days
        n_pairs = len(key)
        ones = torch.ones(len(user), dtype=torch.float64, device=user.device)
        self.pair_items = _csr_of(pair, item, ones, n_pairs, n_items)  # pairs x items: the ratings of each pair
        # Each side's rows x the pairs, in chunks of CHUNK pairs: for users and days, 1 where the pair is the row's;
        # for items, the item's ratings in the pair (0 or 1: a user rates an item once).
        cuts = list(range(0, n_pairs, CHUNK)) + [n_pairs]
        self.through = {side: [] for side in SIDES}
        for p0, p1 in zip(cuts[:-1], cuts[1:]):
            local = torch.arange(p1 - p0, device=user.device)
            chunk = ones[:p1 - p0]
            self.through["user"].append(_csr_of(self.pair_user[p0:p1], local, chunk, n_users, p1 - p0))
            self.through["day"].append(_csr_of(self.pair_day[p0:p1], local, chunk, n_days, p1 - p0))
            mine = (pair >= p0) & (pair < p1)
            self.through["item"].append(_csr_of(item[mine], pair[mine] - p0, ones[mine], n_items, p1 - p0))
        self.cuts = cuts

    def grams(self, side: str, vectors: dict[str, torch.Tensor], bias: bool) -> torch.Tensor:
        """Per row of `side`: the Gram matrix of its ratings' features, from each side's vectors (rows x k); with
        `bias`, features with a 1 appended ((k + 1) x (k + 1) each)."""
        a, b = (other for other in SIDES if other != side)
        A, B = vectors[a], vectors[b]
        k = A.shape[1]
        G = self.counts[side, a] @ _outer(A, A) + self.counts[side, b] @ _outer(B, B)
        P, V = vectors["user"][self.pair_user], vectors["day"][self.pair_day]
        S = self.pair_items @ vectors["item"] if side != "item" else None  # per pair, the sum of its items' q_i
        for c, (p0, p1) in enumerate(zip(self.cuts[:-1], self.cuts[1:])):
            if side == "user":  # X = sum q_i v_t^T
                cross = _outer(S[p0:p1], V[p0:p1])
            elif side == "day":  # X = sum p_u q_i^T
                cross = _outer(P[p0:p1], S[p0:p1])
            else:  # X = sum p_u v_t^T
                cross = _outer(P[p0:p1], V[p0:p1])
            X = (self.through[side][c] @ cross).reshape(-1, k, k)
            G = G + (X + X.transpose(1, 2)).reshape(len(X), k * k)
        G = G.reshape(-1, k, k)
        if not bias:
            return G
        full = torch.empty(len(G), k + 1, k + 1, dtype=G.dtype, device=G.device)
        full[:, :k, :k] = G
        total = self.counts[side, a] @ A + self.counts[side, b] @ B  # the sum of the features
        full[:, :k, k], full[:, k, :k] = total, total
        ones = torch.ones(self.size[a], 1, dtype=G.dtype, device=G.device)
        full[:, k, k] = (self.counts[side, a] @ ones)[:, 0]  # the number of ratings
        return full
