"""Seconds for what the explore pages compute at MovieLens 25M size: the PCA map of 59,047 items, the joint
plot of 5M predictions (aggregated to a density, with the Plotly figure built), and the runs list.

    .venv/bin/python bench/bench_pages.py

Each figure is paired with the reference way: a PCA/joint plot that ships every point (a Plotly scatter of
all points, serialised to JSON as the browser would receive it). The runs list reads 50 saved runs with real
training histories (MovieLens 100k fitted with the defaults and with Adam, as the Train page saves them). Prints
JSON lines and writes them to bench/results/pages-cpu.jsonl (whole).
"""
from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from common import Timer, emit, machine, ml100k, save_results

from cf_core import analysis
from cf_core.access import LOCAL
from cf_core.config import TrainConfig
from cf_core.recommender import Recommender
from cf_core.splits import random_split
from cf_core.store import RunStore
from ui.charts import joint_density, pca_scatter


def fake_trained(n_users=162_541, n_items=59_047, n_factors=50) -> Recommender:
    """A Recommender of ML-25M's shape with random weights (the pages' cost does not depend on the values)."""
    rng = np.random.default_rng(0)
    users = np.arange(1, n_users + 1)
    items = np.arange(1, n_items + 1)
    df = pd.DataFrame({"user": np.concatenate([users, rng.integers(1, n_users + 1, n_items)]),
                       "item": np.concatenate([rng.integers(1, n_items + 1, n_users), items]),
                       "rating": rng.integers(1, 6, n_users + n_items).astype(np.float32)})
    df = df.drop_duplicates(["user", "item"])
    rec = Recommender(TrainConfig(n_factors=n_factors, epochs=1, device="cpu"))
    rec.build(df)
    return rec


def save_real_runs(store: RunStore, n_runs: int) -> None:
    """`n_runs` runs in `store` with real training histories, as the Train page saves them: MovieLens 100k (random
    80/20, seed 42) fitted with the defaults (the Bayesian fit: an entry a sweep) and with Adam (a loss a batch: the
    longest histories), saved in turn with their metrics, items and ratings."""
    ratings, items = ml100k()
    train, valid = random_split(ratings[["user", "item", "rating"]], 0.2, 42)
    fits = []
    for config in (TrainConfig(device="cpu"), TrainConfig(optimizer="adam", device="cpu")):
        with Timer() as t:
            rec = Recommender(config).fit(train, valid)
        m = rec.evaluate(valid)
        fits.append((rec, {"valid_rmse": m["rmse"], "valid_mae": m["mae"], "valid_baseline_rmse": m["baseline_rmse"],
                           "train_seconds": round(t.seconds, 3), "fit_seconds": round(rec.history.seconds, 3),
                           "epochs": len(rec.history.epochs), "best_epoch": rec.history.best_epoch}))
    for k in range(n_runs):
        rec, metrics = fits[k % len(fits)]
        store.save(rec, owner="local", name=f"run {k}", dataset="ratings.csv", metrics=metrics, items=items,
                   valid=valid, train=train)


def runs_list(n_runs: int = 50) -> dict:
    """The Runs page's reads: the list, and each run's history (for the comparison chart)."""
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(folder)
        save_real_runs(store, n_runs)
        with Timer() as t:
            runs = store.list(LOCAL)
            histories = [store.history(r.id, LOCAL) for r in runs]
        meta_kb = statistics.mean(Path(folder, r.id, "meta.json").stat().st_size for r in runs) / 1024
    return {"what": f"ours: runs list with {n_runs} runs and their histories", "runs": len(runs),
            "seconds": round(t.seconds, 3), "history_epochs": sorted({len(h["epochs"]) for h in histories}),
            "history_losses": sorted({len(h["loss"]) for h in histories}), "meta_json_kb": round(meta_kb, 1)}


def main() -> None:
    where = {"machine": machine()}
    rec = fake_trained()
    genres = np.array(["Drama|Romance", "Comedy", "Action|Thriller", "Horror"])
    items = pd.DataFrame({"item": rec.item_map.ids, "title": [f"Movie {i}" for i in rec.item_map.ids],
                          "year": 1950 + rec.item_map.ids % 70, "genres": genres[rec.item_map.ids % 4]})
    with Timer() as t:
        frame, _ = analysis.item_pca(rec, items, n_components=3, min_ratings=0)
        frame["genre"] = frame["genres"].str.split("|").str[0]  # as the Embeddings page colours it
        payload = pca_scatter(frame, color="genre").to_json()
    rows = [emit(what="ours: PCA map of item embeddings (PCA + figure JSON)", items=len(frame),
                 seconds=round(t.seconds, 3), json_kb=round(len(payload) / 1024), **where)]

    rng = np.random.default_rng(0)
    actual = rng.integers(1, 11, 5_000_000) / 2
    pred = np.clip(actual + rng.normal(0, 0.8, len(actual)), 0.5, 5)
    with Timer() as t:
        d = analysis.density(pred, actual, bins=60)
        payload = joint_density(d).to_json()
    rows.append(emit(what="ours: joint plot of 5M predictions (density + figure JSON)", points=len(pred),
                     seconds=round(t.seconds, 3), json_kb=round(len(payload) / 1024), **where))
    import plotly.graph_objects as go
    with Timer() as t:
        n = 1_000_000  # shipping every point: 1M of the 5M already shows the cost
        payload = go.Figure(go.Scattergl(x=actual[:n], y=pred[:n], mode="markers")).to_json()
    rows.append(emit(what="reference: scatter of 1M raw points (figure JSON)", points=n, seconds=round(t.seconds, 3),
                     json_kb=round(len(payload) / 1024), **where))
    rows.append(emit(**runs_list(), **where))
    save_results("pages-cpu", rows)


if __name__ == "__main__":
    main()
