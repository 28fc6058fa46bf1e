"""Implicit feedback on MovieLens 100k: our weighted ALS (cf_core/wals.py) against the `implicit` library's ALS and
BPR, in the same process, by the same ranking metrics (cf_core/ranking.py) on the same split.

    (implicit 0.7.2 is pip-installed on first use: a benchmark's reference, not a dependency)
    .venv/bin/python bench/implicit_feedback.py [--seed 42] [--skip-reference] [--grid small|none]
    .venv/bin/python bench/implicit_feedback.py --scale [--pairs 20000000] [--factors 64] [--sweeps 2]
        # seconds per ALS sweep (ours and implicit's) and per BPR epoch (implicit's) on synthetic pairs shaped as
        # MovieLens 20M (138,493 users, 26,744 items), and peak memory

Every rated pair is a positive (count 1); each user's pairs are split 80/20 at random (`splits.user_split`); a
user's training items are excluded from their top 10. Prints one JSON line per fit (model, settings, NDCG@10,
Recall@10, Precision@10, MAP@10, coverage, seconds) and writes them to bench/results/implicit_feedback.jsonl, then
a last line comparing ours (its defaults) with the best reference fit.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as implicit asks (its own threads do the work); before numpy

import argparse
import itertools
import time

import numpy as np
import torch
from common import emit, machine, ml100k, save_results

from cf_core.ranking import at_k, top_k
from cf_core.splits import user_split
from cf_core.wals import ALPHA, REG, REG_EXPONENT, SWEEPS, WALS, default_factors

K = 10
# Our defaults (cf_core/wals.py, config) and the small grid around them, tried for ours and for implicit's ALS.
GRID = {"factors": (16, 32, 64, 128), "reg": (0.01, 0.1, 1.0), "alpha": (1.0, 10.0), "iterations": (8, 15)}
EXPONENTS = (0.0, 1.0)  # ours: the shared penalty (as implicit's), and the one that grows with a row's interactions
BPR_GRID = {"factors": (32, 64, 128), "regularization": (0.001, 0.01, 0.1), "iterations": (100,)}


def _implicit():
    try:
        import implicit
    except ImportError:
        import subprocess
        import sys

        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "implicit==0.7.2"], check=True)
        import implicit
    return implicit


class Split:
    """The training pairs (CSR by user) and each test user's held-out items."""

    def __init__(self, seed: int):
        ratings, _ = ml100k()
        pairs = ratings[["user", "item"]].assign(rating=1.0)
        train, valid = user_split(pairs, 0.2, seed)
        self.users, self.items = np.unique(pairs["user"]), np.unique(pairs["item"])
        code_u = {u: n for n, u in enumerate(self.users)}
        code_i = {i: n for n, i in enumerate(self.items)}
        self.u = train["user"].map(code_u).to_numpy()
        self.i = train["item"].map(code_i).to_numpy()
        order = np.lexsort((self.i, self.u))
        self.u, self.i = self.u[order], self.i[order]
        self.indptr = np.r_[0, np.cumsum(np.bincount(self.u, minlength=len(self.users)))]
        vu, vi = valid["user"].map(code_u).to_numpy(), valid["item"].map(code_i).to_numpy()
        self.test_users = np.unique(vu)
        self.relevant = [np.sort(vi[vu == x]) for x in self.test_users]

    def score(self, X: np.ndarray, Y: np.ndarray) -> dict:
        Xt, Yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(Y, dtype=torch.float32)
        top = top_k(lambda q: Xt[q] @ Yt.T, self.test_users, self.indptr, self.i, len(self.items), K)
        return at_k(top, self.relevant, len(self.items))

    def matrix(self):
        import scipy.sparse as sps

        return sps.csr_matrix((np.ones(len(self.u), np.float32), (self.u, self.i)),
                              shape=(len(self.users), len(self.items)))


def ours(split: Split, factors: int, reg: float = REG, alpha: float = ALPHA, iterations: int = SWEEPS,
         reg_exponent: float = REG_EXPONENT, seed: int = 0) -> dict:
    t = time.perf_counter()
    u, i = torch.as_tensor(split.u), torch.as_tensor(split.i)
    fit = WALS(u, i, torch.ones(len(u)), len(split.users), len(split.items), factors, reg, alpha, seed,
               reg_exponent=reg_exponent)
    for _ in range(iterations):
        fit.sweep()
    seconds = time.perf_counter() - t
    return {"model": "collab-studio wals", "factors": factors, "reg": reg, "alpha": alpha, "iterations": iterations,
            "reg_exponent": reg_exponent, **split.score(fit.W["user"].numpy(), fit.W["item"].numpy()),
            "seconds": round(seconds, 3)}


def reference_als(split: Split, factors: int = 100, reg: float = 0.01, alpha: float = 1.0, iterations: int = 15,
                  label: str = "") -> dict:
    implicit = _implicit()
    model = implicit.cpu.als.AlternatingLeastSquares(factors=factors, regularization=reg, alpha=alpha,
                                                     iterations=iterations, random_state=42)
    m = split.matrix()
    t = time.perf_counter()
    model.fit(m, show_progress=False)
    seconds = time.perf_counter() - t
    return {"model": f"implicit-0.7.2 als{label}", "factors": factors, "reg": reg, "alpha": alpha,
            "iterations": iterations, **split.score(model.user_factors, model.item_factors),
            "seconds": round(seconds, 3)}


def reference_bpr(split: Split, factors: int = 100, regularization: float = 0.01, iterations: int = 100,
                  label: str = "") -> dict:
    implicit = _implicit()
    model = implicit.cpu.bpr.BayesianPersonalizedRanking(factors=factors, regularization=regularization,
                                                         iterations=iterations, random_state=42)
    m = split.matrix()
    t = time.perf_counter()
    model.fit(m, show_progress=False)
    seconds = time.perf_counter() - t
    return {"model": f"implicit-0.7.2 bpr{label}", "factors": factors, "reg": regularization,
            "iterations": iterations, **split.score(model.user_factors, model.item_factors),
            "seconds": round(seconds, 3)}


def scale(n_pairs: int, factors: int, sweeps: int, skip_reference: bool) -> list[dict]:
    """Seconds per sweep on n_pairs synthetic pairs (popular items drawn more often, Zipf-like), ours and implicit's."""
    import scipy.sparse as sps
    from common import peak_rss_mb

    n_users, n_items = 138_493, 26_744
    rng = np.random.default_rng(0)
    user = rng.integers(0, n_users, n_pairs)
    item = np.minimum((rng.pareto(1.2, n_pairs) * 200).astype(np.int64), n_items - 1)
    key = np.unique(user.astype(np.int64) * n_items + item)
    user, item = key // n_items, key % n_items
    rows = []
    u, i = torch.as_tensor(user), torch.as_tensor(item)
    t = time.perf_counter()
    fit = WALS(u, i, torch.ones(len(u)), n_users, n_items, factors, seed=0)
    setup = time.perf_counter() - t
    times = []
    for _ in range(sweeps):
        t = time.perf_counter()
        fit.sweep()
        times.append(time.perf_counter() - t)
    rows.append({"model": "collab-studio wals", "pairs": len(key), "factors": factors, "setup_seconds": round(setup, 1),
                 "seconds_per_sweep": round(float(np.median(times)), 2), "peak_rss_mb": round(peak_rss_mb())})
    emit(**rows[-1])
    del fit
    rows.append(_our_bpr_epoch(user, item, factors))
    emit(**rows[-1])
    if skip_reference:
        return rows
    implicit = _implicit()
    m = sps.csr_matrix((np.ones(len(key), np.float32), (user, item)), shape=(n_users, n_items))
    for name, model in (("als", implicit.cpu.als.AlternatingLeastSquares(factors=factors, iterations=sweeps,
                                                                        random_state=42)),
                        ("bpr", implicit.cpu.bpr.BayesianPersonalizedRanking(factors=factors, iterations=sweeps,
                                                                             random_state=42))):
        t = time.perf_counter()
        model.fit(m, show_progress=False)
        rows.append({"model": f"implicit-0.7.2 {name}", "pairs": len(key), "factors": factors,
                     "seconds_per_sweep": round((time.perf_counter() - t) / sweeps, 2),
                     "peak_rss_mb": round(peak_rss_mb())})
        emit(**rows[-1])
    return rows


def _median(fit, repeats: int = 3) -> dict:
    """The last of `repeats` runs of `fit`, with the median of their seconds."""
    rows = [fit() for _ in range(repeats)]
    return dict(rows[-1], seconds=float(np.median([r["seconds"] for r in rows])),
                seconds_each=[r["seconds"] for r in rows])


def _our_bpr_epoch(user: np.ndarray, item: np.ndarray, factors: int) -> dict:
    """Seconds of one BPR epoch of ours (the dot product with biases, Adam, autograd) on the same pairs."""
    import pandas as pd
    from common import peak_rss_mb

    from cf_core.config import TrainConfig
    from cf_core.recommender import Recommender

    frame = pd.DataFrame({"user": user, "item": item, "rating": np.ones(len(user), np.float32)})
    rec = Recommender(TrainConfig(feedback="implicit", optimizer="adam", implicit_loss="bpr", n_factors=factors,
                                  epochs=1))
    t = time.perf_counter()
    rec.fit(frame)
    return {"model": "collab-studio bpr", "pairs": len(frame), "factors": factors, "batch_size": rec.config.batch_size,
            "seconds_per_sweep": round(time.perf_counter() - t, 2), "fit_seconds": round(rec.history.seconds, 2),
            "peak_rss_mb": round(peak_rss_mb())}


def _grid(grid: dict) -> list[dict]:
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--grid", choices=("small", "none"), default="small")
    parser.add_argument("--scale", action="store_true")
    parser.add_argument("--pairs", type=int, default=20_000_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--sweeps", type=int, default=2)
    args = parser.parse_args()
    if args.scale:
        save_results("implicit_feedback-scale", [dict(r, machine=machine()) for r in
                                                 scale(args.pairs, args.factors, args.sweeps, args.skip_reference)])
        return
    torch.manual_seed(0)
    split = Split(args.seed)
    rows = []
    # one untimed fit of each first: the first call in a process pays for loading and warming up kernels
    ours(split, 8, iterations=1)
    if not args.skip_reference:
        reference_als(split, 8, iterations=1)
        reference_bpr(split, 8, iterations=1)

    def record(row: dict) -> None:
        rows.append(dict(row, split=f"ml-100k per-user 80/20 seed {args.seed}", machine=machine()))
        emit(**rows[-1])

    # the defaults' seconds: the median of three fits each (one fit's time varies by a third here)
    record(dict(_median(lambda: ours(split, default_factors(len(split.u)))), defaults=True))
    if not args.skip_reference:
        record(dict(_median(lambda: reference_als(split, label=" (defaults)")), defaults=True))
        record(dict(_median(lambda: reference_bpr(split, label=" (defaults)")), defaults=True))
    if args.grid == "small":
        for settings in _grid(GRID):
            for exponent in EXPONENTS:
                record(ours(split, **settings, reg_exponent=exponent))
            if not args.skip_reference:
                record(reference_als(split, **settings))
        if not args.skip_reference:
            for settings in _grid(BPR_GRID):
                record(reference_bpr(split, **settings))
    save_results("implicit_feedback", rows)
    if args.skip_reference:
        return
    mine = rows[0]
    refs = [r for r in rows if r["model"].startswith("implicit")]
    best_ndcg, best_recall = max(refs, key=lambda r: r["ndcg"]), max(refs, key=lambda r: r["recall"])
    als_default = next(r for r in refs if r["model"] == "implicit-0.7.2 als (defaults)")
    emit(target="NDCG@10 and Recall@10 above the best of implicit's ALS and BPR, in no more time than its ALS",
         ours_ndcg=round(mine["ndcg"], 4), ours_recall=round(mine["recall"], 4), ours_seconds=mine["seconds"],
         best_ndcg=round(best_ndcg["ndcg"], 4), best_ndcg_by=f"{best_ndcg['model']} {best_ndcg.get('factors')}",
         best_recall=round(best_recall["recall"], 4), implicit_als_seconds=als_default["seconds"],
         met=bool(mine["ndcg"] > best_ndcg["ndcg"] and mine["recall"] > best_recall["recall"]
                  and mine["seconds"] <= als_default["seconds"]))


if __name__ == "__main__":
    main()
