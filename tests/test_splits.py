import numpy as np
import pandas as pd
import pytest

from cf_core.splits import cold_count, random_split, split, time_split, user_split


@pytest.fixture
def df():
    rng = np.random.default_rng(1)
    n = 1000
    return pd.DataFrame({"user": rng.integers(0, 50, n), "item": rng.integers(0, 80, n),
                         "rating": rng.integers(1, 6, n).astype(float), "timestamp": rng.integers(0, 10**6, n)})


def test_random_split_matches_documented_permutation(df):
    train, valid = random_split(df, 0.2, 42)
    perm = np.random.default_rng(42).permutation(len(df))
    assert len(train) == 800 and len(valid) == 200
    assert train["timestamp"].tolist() == df["timestamp"].to_numpy()[perm[:800]].tolist()
    t2, _ = random_split(df, 0.2, 42)
    assert t2.equals(train)


def test_user_split_holds_out_a_share_of_each_user(df):
    train, valid = user_split(df, 0.25, 0)
    assert len(train) + len(valid) == len(df)
    counts = df.groupby("user").size()
    vcounts = valid.groupby("user").size().reindex(counts.index, fill_value=0)
    assert (vcounts == np.floor(counts * 0.25)).all()


def test_time_split_takes_latest_of_each_user(df):
    train, valid = time_split(df, 0.2)
    for user, g in valid.groupby("user"):
        assert g["timestamp"].min() >= train[train["user"] == user]["timestamp"].max()


def test_time_split_needs_timestamps(df):
    with pytest.raises(ValueError, match="timestamp"):
        split(df.drop(columns="timestamp"), "time")


def test_bad_fraction_and_name(df):
    with pytest.raises(ValueError, match="between 0 and 1"):
        random_split(df, 1.5)
    with pytest.raises(ValueError, match="split must be one of"):
        split(df, "weird")


def test_cold_count():
    train = pd.DataFrame({"user": [1, 2], "item": [10, 20], "rating": [1.0, 2.0]})
    valid = pd.DataFrame({"user": [1, 3, 2], "item": [20, 10, 30], "rating": [1.0, 2.0, 3.0]})
    assert cold_count(train, valid) == 2


@pytest.mark.parametrize("how", ["random", "user", "time"])
def test_split_for_training_keeps_only_training_columns(df, how):
    from cf_core.splits import split_for_training

    train, valid = split_for_training(df, how, 0.2, 0)
    full_train, full_valid = split(df, how, 0.2, 0)
    assert list(train.columns) == list(valid.columns) == ["user", "item", "rating"]
    assert train.equals(full_train[["user", "item", "rating"]]) and valid.equals(full_valid[["user", "item", "rating"]])
