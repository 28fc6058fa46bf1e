"""Shared fixtures: small planted low-rank data the trainer must recover, and a quickly trained model."""
import numpy as np
import pandas as pd
import pytest
import torch

from cf_core.datasets import synthetic
from cf_core.recommender import Recommender
from cf_core.splits import random_split

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def planted():
    """2,000 ratings from a rank-4 model plus N(0, 0.3^2) noise."""
    return synthetic(n_users=120, n_items=80, n_ratings=4000, n_factors=4, noise=0.3, seed=3)


@pytest.fixture(scope="session")
def split_planted(planted):
    return random_split(planted.ratings, 0.2, 0)


@pytest.fixture(scope="session")
def movielens_shaped():
    """30,000 whole-star ratings 1..5 from a rank-3 model with popular and rare items, 80/20: big enough that
    per-row gradients are as diluted as on MovieLens 100k (with one rate for every weight, SGD's dot product stayed
    at the mean's RMSE here too)."""
    data = synthetic(n_users=300, n_items=200, n_ratings=30000, n_factors=3, noise=0.3, popularity=1.0, seed=11)
    ratings = data.ratings.assign(rating=data.ratings["rating"].round().clip(1, 5))
    return random_split(ratings, 0.2, 0)


@pytest.fixture(scope="session")
def items_meta(planted):
    ids = np.sort(planted.ratings["item"].unique())
    genres = ["Comedy", "Drama|Romance", "Action"]
    return pd.DataFrame({"item": ids, "title": [f"Movie {i}" for i in ids], "year": 1990 + ids % 10,
                         "genres": [genres[i % 3] for i in ids]})


@pytest.fixture(scope="session")
def trained(split_planted):
    train, valid = split_planted
    return Recommender(epochs=8, n_factors=8).fit(train, valid)


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    """The app's runs store and data cache in tmp dirs, and MovieLens 100k replaced by small generated data."""
    from cf_core import datasets
    from tests.app_helpers import fake_movielens_100k

    monkeypatch.setenv("COLLAB_STUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("COLLAB_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "movielens_100k", fake_movielens_100k)
    worker = start_worker(tmp_path / "runs")
    yield tmp_path
    worker.shutdown()


def start_worker(root, device="cpu"):
    """A training worker (the same code `python -m cf_core worker` runs) in a thread of this process."""
    from cf_core.jobs import JobQueue
    from cf_core.store import RunStore
    from cf_core.worker import Worker

    worker = Worker(JobQueue(RunStore(root)), device, poll=0.1)
    worker.start_thread()
    return worker


@pytest.fixture
def saved_run(app_env, trained, split_planted, items_meta):
    """The id of the `trained` model saved in the app's runs store, as a finished job saves it."""
    from cf_core.store import RunStore

    train, valid = split_planted
    metrics = {f"valid_{k}": v for k, v in trained.evaluate(valid).items()}
    metrics.update(epochs=len(trained.history.epochs), train_seconds=trained.history.seconds)
    return RunStore().save(trained, owner="local", name="planted", dataset="planted", metrics=metrics, items=items_meta,
                           valid=valid, train=train[["user", "item", "rating"]])


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session; skipped, with the reason, only where its binaries are missing."""
    from tests.pg_helpers import PostgresServer

    try:
        server = PostgresServer()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    with server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """The store's database: a SQLite file, then a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "index.sqlite")
    return request.getfixturevalue("postgres").new_database()
