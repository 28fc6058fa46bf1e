"""Train/validation splits: random (seeded), per-user holdout, and by time (each user's latest ratings).

Each returns two DataFrames with the columns of the input. Users or items that land only in the validation
part are kept there (the Recommender predicts them with its fallback); `cold_count` counts them.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _frame(data: Any) -> pd.DataFrame:
    return getattr(data, "df", data)


def _check_frac(valid_frac: float) -> None:
    if not 0 < valid_frac < 1:
        raise ValueError(f"valid_frac must be between 0 and 1, not {valid_frac}")


def random_split(data: Any, valid_frac: float = 0.2, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows permuted by numpy.random.default_rng(seed).permutation; the first 1 - valid_frac train."""
    _check_frac(valid_frac)
    df = _frame(data)
    perm = np.random.default_rng(seed).permutation(len(df))
    n_train = int(round(len(df) * (1 - valid_frac)))
    return df.iloc[perm[:n_train]].reset_index(drop=True), df.iloc[perm[n_train:]].reset_index(drop=True)


def _holdout(df: pd.DataFrame, rank: np.ndarray, valid_frac: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Send to validation the rows whose within-user rank falls in each user's last valid_frac (users with one
    rating stay in train)."""
    counts = df.groupby("user", sort=False)["user"].transform("size").to_numpy()
    n_valid = np.floor(counts * valid_frac).astype(np.int64)
    is_valid = rank >= counts - n_valid
    return df[~is_valid].reset_index(drop=True), df[is_valid].reset_index(drop=True)


def user_split(data: Any, valid_frac: float = 0.2, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-user holdout: a random valid_frac of each user's ratings goes to validation."""
    _check_frac(valid_frac)
    df = _frame(data)
    key = np.random.default_rng(seed).random(len(df))
    order = np.lexsort((key, df["user"].to_numpy()))
    rank = np.empty(len(df), dtype=np.int64)
    rank[order] = pd.Series(df["user"].to_numpy()[order]).groupby(df["user"].to_numpy()[order]).cumcount().to_numpy()
    return _holdout(df, rank, valid_frac)


def time_split(data: Any, valid_frac: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's latest valid_frac of ratings (by timestamp) goes to validation."""
    _check_frac(valid_frac)
    df = _frame(data)
    if "timestamp" not in df.columns:
        raise ValueError("a split by time needs a timestamp column, and these ratings have none")
    rank = df.groupby("user", sort=False)["timestamp"].rank(method="first").to_numpy().astype(np.int64) - 1
    return _holdout(df, rank, valid_frac)


SPLITS = {"random": random_split, "user": user_split, "time": time_split}


def split(data: Any, how: str = "random", valid_frac: float = 0.2, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Dispatch by name: random, user or time."""
    if how not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {how!r}")
    if how == "time":
        return time_split(data, valid_frac)
    return SPLITS[how](data, valid_frac, seed)


TRAIN_COLUMNS = ["user", "item", "rating"]


def split_for_training(data: Any, how: str = "random", valid_frac: float = 0.2,
                       seed: int = 42, keep_time: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`split`, keeping only the columns training uses (user, item, rating, and with `keep_time` the timestamp, for
    the Bayesian fit's day block): at 25M ratings a timestamp column costs 200 MB in each copy."""
    df = _frame(data)
    for needed, what in ((how == "time", "a split by time (each user's latest ratings)"),
                         (keep_time, "the day block (learning from when each rating was given)")):
        if needed and "timestamp" not in df:
            raise ValueError(f"{what} needs a timestamp column, and this data has none")
    cols = TRAIN_COLUMNS + (["timestamp"] if how == "time" or keep_time else [])
    train, valid = split(df[cols], how, valid_frac, seed)
    if how == "time" and not keep_time:
        train, valid = train[TRAIN_COLUMNS], valid[TRAIN_COLUMNS]
    return train, valid


def cold_count(train: pd.DataFrame, valid: pd.DataFrame) -> int:
    """Validation rows whose user or item never appears in training."""
    known_u = valid["user"].isin(pd.unique(train["user"]))
    known_i = valid["item"].isin(pd.unique(train["item"]))
    return int((~(known_u & known_i)).sum())
