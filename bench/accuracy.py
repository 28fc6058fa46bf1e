"""Accuracy against the best published method on MovieLens 100k, with myFM (Bayesian FM, Gibbs) as the reference
in the same process: random 80/20 split, seed 42, implicit information from the training part only.

    (myFM 0.4 is pip-installed on first use, with setuptools<81, whose pkg_resources it imports)
    .venv/bin/python bench/accuracy.py [--sweeps 120] [--myfm-iter 300] [--skip-myfm]
    .venv/bin/python bench/accuracy.py --robustness     # ratings x2 and x0.2, another seed, per-user and time splits

Prints one JSON line per fit (feature set, RMSE, seconds) and appends them to bench/results/accuracy.jsonl.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

from common import ROOT, emit, machine, ml100k

from cf_core.config import TrainConfig
from cf_core.recommender import Recommender
from cf_core.splits import random_split, split


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - truth) ** 2)))


def ours(train: pd.DataFrame, valid: pd.DataFrame, sweeps: int, implicit: bool) -> dict:
    t = time.perf_counter()
    rec = Recommender(TrainConfig(implicit=implicit, epochs=sweeps)).fit(train, None)
    seconds = time.perf_counter() - t
    return {"model": "collab-studio", "features": "ids + implicit both ways" if implicit else "ids",
            "sweeps": sweeps, "rmse": rec.evaluate(valid)["rmse"], "seconds": round(seconds, 1)}


def _myfm():
    """myFM, installed into this environment first if it is missing (a benchmark's reference, not a dependency)."""
    try:
        import myfm
    except ImportError:
        import subprocess
        import sys

        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "myfm==0.4.0", "setuptools<81"], check=True)
        import myfm
    return myfm


def reference(train: pd.DataFrame, valid: pd.DataFrame, n_iter: int, implicit: bool, rank: int = 10) -> dict:
    """myFM with relation blocks: user ids (+ the items each user rated), item ids (+ the users who rated each),
    each implicit row weighted 1/sqrt(count), from the training part only."""
    myfm = _myfm()
    from scipy import sparse as sps

    users = np.unique(train["user"])
    items = np.unique(train["item"])
    u_index = {u: k for k, u in enumerate(users)}
    i_index = {i: k for k, i in enumerate(items)}
    nu, ni = len(users), len(items)
    tu = train["user"].map(u_index).to_numpy()
    ti = train["item"].map(i_index).to_numpy()
    rated = sps.csr_matrix((np.ones(len(train)), (tu, ti)), shape=(nu, ni))

    def block(index: dict, keys: np.ndarray, n: int, implicit_rows: sps.csr_matrix | None) -> sps.csr_matrix:
        rows = np.array([index.get(k, -1) for k in keys])
        ids = sps.csr_matrix((np.ones((rows >= 0).sum()), (np.flatnonzero(rows >= 0), rows[rows >= 0])),
                             shape=(len(keys), n))
        if implicit_rows is None:
            return ids
        counts = np.asarray(implicit_rows.sum(1)).ravel()
        weighted = sps.diags(1 / np.sqrt(np.maximum(counts, 1))) @ implicit_rows
        extra = sps.vstack([weighted[r] if r >= 0 else sps.csr_matrix((1, implicit_rows.shape[1])) for r in rows])
        return sps.hstack([ids, extra], format="csr")

    def relations(frame: pd.DataFrame) -> list:
        uk, u_map = np.unique(frame["user"], return_inverse=True)
        ik, i_map = np.unique(frame["item"], return_inverse=True)
        return [myfm.RelationBlock(u_map, block(u_index, uk, nu, rated if implicit else None)),
                myfm.RelationBlock(i_map, block(i_index, ik, ni, rated.T.tocsr() if implicit else None))]

    sizes = [nu] + ([ni] if implicit else []) + [ni] + ([nu] if implicit else [])  # one prior per block
    groups = [g for g, size in enumerate(sizes) for _ in range(size)]
    t = time.perf_counter()
    fm = myfm.MyFMRegressor(rank=rank, random_seed=42)
    fm.fit(None, train["rating"].to_numpy(float), X_rel=relations(train), grouping=groups, n_iter=n_iter,
           n_kept_samples=n_iter - 20)
    pred = fm.predict(None, relations(valid))
    seconds = time.perf_counter() - t
    return {"model": "myfm-0.4", "features": "ids + implicit both ways" if implicit else "ids", "sweeps": n_iter,
            "rmse": rmse(pred, valid["rating"].to_numpy(float)), "seconds": round(seconds, 1)}


def robustness(ratings: pd.DataFrame) -> list[dict]:
    """The default fit with and without the implicit blocks on other scales, seeds and splits (RMSE in the
    original rating units)."""
    rows = []
    for label, mult, how, seed in [("ratings x2", 2.0, "random", 42), ("ratings x0.2", 0.2, "random", 42),
                                   ("seed 1", 1.0, "random", 1), ("per-user split", 1.0, "user", 42),
                                   ("each user's latest 20%", 1.0, "time", 42)]:
        frame = ratings[["user", "item", "rating", "timestamp"]].copy()
        frame["rating"] *= mult
        train, valid = split(frame, how, 0.2, seed)
        train, valid = train[["user", "item", "rating"]], valid[["user", "item", "rating"]]
        for implicit in (False, True):
            t = time.perf_counter()
            rec = Recommender(TrainConfig(implicit=implicit, seed=seed)).fit(train, None)
            rows.append({"check": label, "implicit": implicit, "rmse": rec.evaluate(valid)["rmse"] / mult,
                         "seconds": round(time.perf_counter() - t, 1), "machine": machine()})
            emit(**rows[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, nargs="+", default=[120])
    parser.add_argument("--myfm-iter", type=int, default=300)
    parser.add_argument("--skip-myfm", action="store_true")
    parser.add_argument("--robustness", action="store_true")
    args = parser.parse_args()
    ratings, _ = ml100k()
    if args.robustness:
        rows = robustness(ratings)
        with open(ROOT / "bench" / "results" / "accuracy-robustness.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        return
    train, valid = random_split(ratings[["user", "item", "rating"]], 0.2, seed=42)
    rows = []
    for implicit in (False, True):
        for sweeps in args.sweeps:
            rows.append(dict(ours(train, valid, sweeps, implicit), machine=machine()))
            emit(**rows[-1])
        if not args.skip_myfm:
            rows.append(dict(reference(train, valid, args.myfm_iter, implicit), machine=machine()))
            emit(**rows[-1])
    with open(ROOT / "bench" / "results" / "accuracy.jsonl", "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


if __name__ == "__main__":
    main()
