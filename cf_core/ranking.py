"""Ranking metrics of a run's top K, for every run: Precision@K, Recall@K, NDCG@K, MAP@K and catalogue coverage,
for the model and for "most popular items", the baseline every model must beat.

The protocol (as Microsoft Recommenders', RecBole's and `implicit`'s evaluation on held-out interactions):
- a user is ranked where they are in training and have at least one relevant held-out item; the candidates are every
  item the model knows except the user's training items (which they have already seen);
- relevant: the user's held-out items the model knows (with `like`, only those rated at least `like`); a held-out
  item new to the model can be in nobody's top K and is left out of the relevant ones (their number is reported);
- ties in score are ordered by the item's index in the model (first seen in training first), so the figures are
  deterministic; with many ties (the popularity baseline's) another order would score a little differently.
Per user, with hits h_1..h_K (1 where the item ranked i is relevant) and R relevant items:
  Precision@K = sum h / K; Recall@K = sum h / R; NDCG@K = sum h_i / log2(i + 1) over the same sum for min(R, K) hits
  in the first places; AP@K = sum_i h_i Precision@i / min(R, K). Each is averaged over the ranked users. Coverage: the
  share of the model's items that appear in at least one ranked user's top K.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:
    from .recommender import Recommender

METRICS = ("precision", "recall", "ndcg", "map", "coverage")
MAX_USERS = 10_000  # ranked users at most (a seeded sample beyond): every item is scored for each
MAX_PAIRS = 20_000_000  # and at most this many (user, item) scores: 338 users of MovieLens 25M's 59,047 items
USER_CHUNK = 256  # users scored at a time


def at_k(top: np.ndarray, relevant: list[np.ndarray], n_items: int) -> dict[str, float]:
    """The metrics of each user's ranked items `top` (users x K item indices, best first; -1: no item, where a user
    had fewer than K candidates) against their relevant items (one array per user, none empty)."""
    n, k = top.shape
    if not n:
        return {m: float("nan") for m in METRICS}
    n_rel = np.array([len(r) for r in relevant])
    owner = np.repeat(np.arange(n), n_rel)
    rel_keys = owner.astype(np.int64) * (n_items + 1) + np.concatenate(relevant)
    keys = np.arange(n, dtype=np.int64)[:, None] * (n_items + 1) + top
    hits = np.isin(keys, rel_keys) & (top >= 0)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)[np.minimum(n_rel, k) - 1]
    found = hits.sum(1)
    precision_at = np.cumsum(hits, 1) / np.arange(1, k + 1)
    shown = top[top >= 0]
    return {"precision": float((found / k).mean()), "recall": float((found / n_rel).mean()),
            "ndcg": float(((hits * discount).sum(1) / ideal).mean()),
            "map": float(((precision_at * hits).sum(1) / np.minimum(n_rel, k)).mean()),
            "coverage": float(len(np.unique(shown)) / n_items) if n_items else float("nan")}


def top_k(score: Callable[[torch.Tensor], torch.Tensor], users: np.ndarray, indptr: np.ndarray,
          seen: np.ndarray, n_items: int, k: int, device: Any = "cpu") -> np.ndarray:
    """Each user's K best items by `score` (user indices -> users x n_items scores), their training items
    (`seen`, CSR over users by `indptr`) excluded; ties by item index. -1 where a user has fewer candidates."""
    out = np.full((len(users), k), -1, dtype=np.int64)
    for start in range(0, len(users), USER_CHUNK):
        u = users[start:start + USER_CHUNK]
        s = score(torch.as_tensor(u, device=device)).float().clone()
        counts = indptr[u + 1] - indptr[u]
        rows = np.repeat(np.arange(len(u)), counts)
        cols = np.concatenate([seen[indptr[x]:indptr[x + 1]] for x in u]) if len(rows) else np.zeros(0, np.int64)
        s[torch.as_tensor(rows, device=s.device), torch.as_tensor(cols, dtype=torch.long, device=s.device)] = -np.inf
        order = torch.sort(s, dim=1, descending=True, stable=True).indices[:, :k].cpu().numpy()
        valid = np.arange(min(k, n_items))[None, :] < (n_items - counts)[:, None]
        out[start:start + len(u), :order.shape[1]] = np.where(valid[:, :order.shape[1]], order, -1)
    return out


def ranking(rec: Recommender, valid: pd.DataFrame, k: int = 10, like: float | None = None,
            max_users: int = MAX_USERS, seed: int = 0) -> dict[str, Any]:
    """The model's and the most popular items' ranking metrics at K on the held-out ratings `valid` (user, item,
    and with `like` rating columns), by the protocol above; of a seeded sample of the users where there are more
    than `max_users`, or than MAX_PAIRS scores of every item."""
    if k < 1:
        raise ValueError(f"K must be at least 1, not {k}")
    held = valid if like is None else valid[valid["rating"].to_numpy(dtype=float) >= like]
    user = rec.user_map.encode(held["user"].to_numpy(), "ignore")
    item = rec.item_map.encode(held["item"].to_numpy(), "ignore")
    known = (user >= 0) & (item >= 0)
    pairs = pd.DataFrame({"user": user[known], "item": item[known]}).drop_duplicates()
    users = np.unique(pairs["user"].to_numpy())
    n_items, device = rec.n_items, rec.device
    cap = max(1, min(max_users, MAX_PAIRS // max(n_items, 1)))
    if len(users) > cap:
        users = np.sort(np.random.default_rng(seed).choice(users, cap, replace=False))
    pairs = pairs[pairs["user"].isin(users)].sort_values(["user", "item"], kind="stable")
    relevant = np.split(pairs["item"].to_numpy(), np.cumsum(pairs.groupby("user").size().to_numpy())[:-1]) \
        if len(pairs) else []
    all_items = torch.arange(n_items, device=device)
    model = rec.model

    def model_score(u: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return rec.predict_tensor(model, u.repeat_interleave(n_items), all_items.repeat(len(u))).view(len(u), -1)

    popularity = torch.as_tensor(rec.item_counts, dtype=torch.float32, device=device)
    out: dict[str, Any] = {"k": k, "users": int(len(users)), "relevant": int(len(pairs)),
                           "held_out_unknown_to_the_model": int((~known).sum()), "like": like}
    for name, score in (("model", model_score), ("most_popular", lambda u: popularity.expand(len(u), -1))):
        top = top_k(score, users, rec.rated_indptr, rec.rated_items, n_items, k, device)
        out[name] = at_k(top, relevant, n_items)
    return out


def flat_metrics(metrics: dict) -> dict:
    """An evaluation's figures as a run keeps them: an implicit-feedback run's top K (`ranking`) as flat numbers
    (ndcg, recall, precision, map, coverage, and the most popular items' ndcg and recall, at ranking_k)."""
    ranked = metrics.get("ranking")
    if ranked is None:
        return metrics
    flat = {k: v for k, v in metrics.items() if k != "ranking"}
    flat.update({name: ranked["model"][name] for name in ("ndcg", "recall", "precision", "map", "coverage")})
    flat.update(popular_ndcg=ranked["most_popular"]["ndcg"], popular_recall=ranked["most_popular"]["recall"],
                ranking_k=ranked["k"])
    return flat
