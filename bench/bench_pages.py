"""Seconds for what the explore pages compute at MovieLens 25M size: the PCA map of 59,047 items, the joint
plot of 5M predictions (aggregated to a density, with the Plotly figure built), and the runs list.

    .venv/bin/python bench/bench_pages.py

Each figure is paired with the reference way: a PCA/joint plot that ships every point (a Plotly scatter of
all points, serialised to JSON as the browser would receive it).
"""
from __future__ import annotations

import tempfile

import numpy as np
import pandas as pd
from common import Timer, emit, machine

from cf_core import analysis
from cf_core.config import TrainConfig
from cf_core.recommender import Recommender
from cf_core.access import LOCAL
from cf_core.store import RunStore
from ui.charts import joint_density, pca_scatter


def fake_trained(n_users=162_541, n_items=59_047, n_factors=50) -> Recommender:
    """A Recommender of ML-25M's shape with random weights (the pages' cost does not depend on the values)."""
    rng = np.random.default_rng(0)
    users = np.arange(1, n_users + 1)
    items = np.arange(1, n_items + 1)
    df = pd.DataFrame({"user": np.concatenate([users, rng.integers(1, n_users + 1, n_items)]),
                       "item": np.concatenate([rng.integers(1, n_items + 1, n_users), items]),
                       "rating": rng.integers(1, 6, n_users + n_items).astype(np.float32)}).drop_duplicates(["user", "item"])
    rec = Recommender(TrainConfig(n_factors=n_factors, epochs=1, device="cpu"))
    rec.build(df)
    return rec


def main() -> None:
    where = {"machine": machine()}
    rec = fake_trained()
    items = pd.DataFrame({"item": rec.item_map.ids, "title": [f"Movie {i}" for i in rec.item_map.ids],
                          "year": 1950 + rec.item_map.ids % 70,
                          "genres": np.array(["Drama|Romance", "Comedy", "Action|Thriller", "Horror"])[rec.item_map.ids % 4]})
    with Timer() as t:
        frame, _ = analysis.item_pca(rec, items, n_components=3, min_ratings=0)
        frame["genre"] = frame["genres"].str.split("|").str[0]  # as the Embeddings page colours it
        payload = pca_scatter(frame, color="genre").to_json()
    emit(what="ours: PCA map of item embeddings (PCA + figure JSON)", items=len(frame), seconds=round(t.seconds, 3),
         json_kb=round(len(payload) / 1024), **where)

    rng = np.random.default_rng(0)
    actual = rng.integers(1, 11, 5_000_000) / 2
    pred = np.clip(actual + rng.normal(0, 0.8, len(actual)), 0.5, 5)
    with Timer() as t:
        d = analysis.density(pred, actual, bins=60)
        payload = joint_density(d).to_json()
    emit(what="ours: joint plot of 5M predictions (density + figure JSON)", points=len(pred), seconds=round(t.seconds, 3),
         json_kb=round(len(payload) / 1024), **where)
    import plotly.graph_objects as go
    with Timer() as t:
        n = 1_000_000  # shipping every point: 1M of the 5M already shows the cost
        payload = go.Figure(go.Scattergl(x=actual[:n], y=pred[:n], mode="markers")).to_json()
    emit(what="reference: scatter of 1M raw points (figure JSON)", points=n, seconds=round(t.seconds, 3),
         json_kb=round(len(payload) / 1024), **where)

    store = RunStore(tempfile.mkdtemp())
    small = Recommender(TrainConfig(epochs=1, device="cpu"))
    small.build(pd.DataFrame({"user": [1, 2, 3], "item": [1, 2, 2], "rating": [1.0, 2.0, 3.0]}))
    for k in range(50):
        store.save(small, owner="local", name=f"run {k}", metrics={"valid_rmse": 0.9})
    with Timer() as t:
        runs = store.list(LOCAL)
        histories = [store.history(r.id, LOCAL) for r in runs]
    emit(what="ours: runs list with 50 runs and their histories", runs=len(runs), seconds=round(t.seconds, 3), **where)


if __name__ == "__main__":
    main()
