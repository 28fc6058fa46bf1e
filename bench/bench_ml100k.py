"""Accuracy and speed with defaults on MovieLens 100k (random 80/20 split, seed 42), beside Surprise's SVD.

    .venv/bin/python bench/bench_ml100k.py [--repeat 3]

Prints one JSON line per model: valid RMSE/MAE and training seconds (median of --repeat runs), on the exact
split the README quotes (rows permuted by numpy.random.default_rng(42).permutation, the first 80% train), and writes
them to bench/results/ml100k-{cpu,gpu}.jsonl (whole).

With defaults, training keeps the epoch with the best validation RMSE; here the validation set is also the test set,
so the line also gives `valid_rmse_last_epoch`, the RMSE of the last epoch, which no choice on the test set touched.
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np
from common import Timer, device_kind, emit, machine, ml100k, save_results

from cf_core.recommender import Recommender
from cf_core.splits import random_split


def bench_ours(train, valid, items, repeat: int, **config) -> dict:
    times, scores = [], []
    for _ in range(repeat):
        with Timer() as t:
            rec = Recommender(**config).fit(train, valid, items=items)
        times.append(t.seconds)
        scores.append(rec.evaluate(valid))
    return {"valid_rmse": round(scores[-1]["rmse"], 4), "valid_mae": round(scores[-1]["mae"], 4),
            "valid_rmse_last_epoch": round(rec.history.epochs[-1]["valid_rmse"], 4),
            "train_seconds": round(statistics.median(times), 3), "epochs": len(rec.history.epochs),
            "best_epoch": rec.history.best_epoch, "optimizer": rec.config.optimizer, "pretrain": rec.config.pretrain,
            "n_factors": rec.config.n_factors, "implicit": rec.config.implicit, "genres": rec.config.genres,
            "train_seconds_each": [round(x, 2) for x in times]}


def bench_surprise(train, valid, repeat: int) -> dict:
    from surprise import SVD, Dataset, Reader

    reader = Reader(rating_scale=(1, 5))
    trainset = Dataset.load_from_df(train[["user", "item", "rating"]], reader).build_full_trainset()
    times = []
    for _ in range(repeat):
        algo = SVD(random_state=0)
        with Timer() as t:
            algo.fit(trainset)
        times.append(t.seconds)
    pred = np.array([algo.predict(u, i).est for u, i in zip(valid["user"], valid["item"], strict=True)])
    err = pred - valid["rating"].to_numpy()
    return {"valid_rmse": round(float(np.sqrt((err**2).mean())), 4), "valid_mae": round(float(np.abs(err).mean()), 4),
            "train_seconds": round(statistics.median(times), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    ratings, items = ml100k()  # with the item table, as the app trains the built-in data (its genres)
    train, valid = random_split(ratings, 0.2, 42)
    where = {"data": "ml-100k random 80/20 seed 42", "n_train": len(train), "n_valid": len(valid), "machine": machine()}
    ours = {"dotbias defaults (Bayesian FM: what each user rated both ways and the genres, Gibbs sampling)": {},
            "dotbias, Adam (the lesson's optimizer; otherwise defaults)": {"optimizer": "adam"},
            "nn defaults (embeddings start from the Bayesian SVD++ fit)": {"model": "nn"},
            "nn, embeddings from noise (pretrain off; otherwise defaults)": {"model": "nn", "pretrain": False}}
    rows = [emit(what=what, **bench_ours(train, valid, items, args.repeat, **config), **where)
            for what, config in ours.items()]
    rows.append(emit(what="surprise SVD defaults", **bench_surprise(train, valid, args.repeat), **where))
    save_results(f"ml100k-{device_kind()}", rows)


if __name__ == "__main__":
    main()
