"""Describing a ratings table: headline numbers, ratings per user and per item, and the lesson's cross-tab."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .types import Ratings


def ratings_per_user(ratings: Ratings) -> pd.Series:
    """Number of ratings per user, most active first (for long-tail plots)."""
    return ratings.df["user"].value_counts().rename("n_ratings").rename_axis("user")


def ratings_per_item(ratings: Ratings) -> pd.Series:
    """Number of ratings per item, most rated first (for long-tail plots)."""
    return ratings.df["item"].value_counts().rename("n_ratings").rename_axis("item")


def _count_stats(counts: pd.Series) -> dict[str, float]:
    q = counts.quantile([0.25, 0.5, 0.75, 0.9])
    return {"min": int(counts.min()), "p25": float(q[0.25]), "median": float(q[0.5]), "p75": float(q[0.75]),
            "p90": float(q[0.9]), "max": int(counts.max()), "mean": float(counts.mean())}


def summarize(ratings: Ratings) -> dict:
    """Headline numbers: sizes, sparsity, scale, mean, rating histogram and per-user/per-item count quantiles.

    The histogram maps each rating value to its count when there are at most 50 distinct values; continuous
    ratings are binned into 20 equal-width bins keyed by the bin's lower edge.
    """
    r = ratings.df["rating"].to_numpy()
    values, counts = np.unique(r, return_counts=True)
    if len(values) <= 50:
        hist = {float(v): int(c) for v, c in zip(values, counts, strict=True)}
    else:
        c, edges = np.histogram(r, bins=20)
        hist = {float(e): int(n) for e, n in zip(edges[:-1], c, strict=True)}
    return {
        "n_users": ratings.n_users,
        "n_items": ratings.n_items,
        "n_ratings": ratings.n_ratings,
        "sparsity": ratings.sparsity,
        "rating_scale": ratings.rating_scale,
        "mean_rating": float(r.mean(dtype=np.float64)),
        "rating_histogram": hist,
        "ratings_per_user": _count_stats(ratings_per_user(ratings)),
        "ratings_per_item": _count_stats(ratings_per_item(ratings)),
    }


def crosstab(ratings: Ratings, n_users: int = 15, n_items: int = 15) -> pd.DataFrame:
    """The most active users x the most rated items, NaN where unrated (the fast.ai lesson's cross-tab).

    Rows and columns are ordered by activity/popularity, ties by id.
    """
    def top(counts: pd.Series, n: int) -> list:
        frame = counts.rename("n").reset_index()
        key = frame.columns[0]
        return frame.sort_values(["n", key], ascending=[False, True])[key].head(n).tolist()

    users = top(ratings_per_user(ratings), n_users)
    items = top(ratings_per_item(ratings), n_items)
    df = ratings.df
    sub = df[df["user"].isin(users) & df["item"].isin(items)]
    table = sub.pivot(index="user", columns="item", values="rating")
    return table.reindex(index=users, columns=items)
