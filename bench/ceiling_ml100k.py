"""How low can biased matrix factorization go on the README's MovieLens 100k split? Three references, not the product.

    .venv/bin/python bench/ceiling_ml100k.py [--seeds 6] [--samples 200]

The issue asks the default dot-product-with-biases model for a valid RMSE of at most 0.905 on the random 80/20 split
(seed 42). This script measures, on that split, what the same model reaches by other means:

1. `ensemble`: our default training run with several seeds, their pre-sigmoid outputs averaged. The average is the
   variance of one run taken away; what is left is the bias of the training objective.
2. `map`: the exact minimum of a close objective, by alternating least squares (every user's and item's factors and
   bias solved in closed form in turn): squared error plus the per-rating L2 penalty (lambda * n_u * |p_u|^2), no
   sigmoid, 64 factors, biases unpenalized, for several lambdas. It shows what the penalty itself allows.
3. `bpmf`: Bayesian probabilistic matrix factorization with biases (Salakhutdinov and Mnih 2008), by Gibbs sampling,
   with Gaussian priors whose mean and precision per dimension are sampled too (libFM's hyperpriors), and the noise
   precision sampled. Its prediction is the average over posterior samples: the usual best for this model on small
   data, at many times the cost.

Prints one JSON line per reference.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import Timer, emit, machine, ml100k

from cf_core.models import sigmoid_range
from cf_core.recommender import Recommender
from cf_core.splits import random_split


class Split:
    """The split as index tensors (float64), with validation rows whose user or item is unseen marked cold."""

    def __init__(self, train, valid):
        users, items = np.unique(train["user"]), np.unique(train["item"])
        self.nu, self.ni = len(users), len(items)
        self.u = torch.from_numpy(np.searchsorted(users, train["user"].to_numpy()))
        self.i = torch.from_numpy(np.searchsorted(items, train["item"].to_numpy()))
        self.r = torch.from_numpy(train["rating"].to_numpy(dtype=np.float64))
        vu, vi = valid["user"].to_numpy(), valid["item"].to_numpy()
        self.vu_known = torch.from_numpy(np.isin(vu, users))
        self.vi_known = torch.from_numpy(np.isin(vi, items))
        self.vu = torch.from_numpy(np.minimum(np.searchsorted(users, vu), self.nu - 1))
        self.vi = torch.from_numpy(np.minimum(np.searchsorted(items, vi), self.ni - 1))
        self.vr = torch.from_numpy(valid["rating"].to_numpy(dtype=np.float64))
        self.mu = float(self.r.mean())

    def predict(self, P: torch.Tensor, Q: torch.Tensor, k: int) -> torch.Tensor:
        """Predictions for the validation rows from factors P, Q whose column k is the bias; cold sides contribute 0."""
        pu, qi = P[self.vu] * self.vu_known[:, None], Q[self.vi] * self.vi_known[:, None]
        return self.mu + (pu[:, :k] * qi[:, :k]).sum(1) + pu[:, k] + qi[:, k]

    def rmse(self, pred: torch.Tensor) -> float:
        return float((pred.clamp(1, 5) - self.vr).pow(2).mean().sqrt())


def solve_side(idx, n_rows, X, y, prior_prec, prior_mean, alpha=1.0, gen=None):
    """Per row of one side, the Gaussian conditional of its weights w given ratings y ~ N(X w, 1/alpha).

    prior_prec: (n_rows, d) or (d,) diagonal precisions; returns the mean, or a sample when `gen` is given.
    """
    d = X.shape[1]
    gram = torch.zeros(n_rows, d, d, dtype=X.dtype)
    for start in range(0, len(idx), 8192):  # chunks bound the outer products' memory (8192 x d x d)
        x = X[start:start + 8192]
        gram.index_add_(0, idx[start:start + 8192], x[:, :, None] * x[:, None, :])
    rhs = torch.zeros(n_rows, d, dtype=X.dtype).index_add_(0, idx, X * y[:, None])
    prec = alpha * gram + torch.diag_embed(prior_prec.expand(n_rows, d))
    chol = torch.linalg.cholesky(prec)
    mean = torch.cholesky_solve((alpha * rhs + prior_prec * prior_mean)[:, :, None], chol)[:, :, 0]
    if gen is None:
        return mean
    z = torch.randn(n_rows, d, 1, generator=gen, dtype=X.dtype)
    return mean + torch.linalg.solve_triangular(chol.transpose(1, 2), z, upper=True)[:, :, 0]


def features(F: torch.Tensor, rows: torch.Tensor, k: int) -> torch.Tensor:
    """The other side's factors for each rating, with a column of ones in place of its bias (for this side's bias)."""
    return torch.cat([F[rows, :k], torch.ones(len(rows), 1, dtype=F.dtype)], 1)


def alternating(s: Split, k: int, sweeps: int, lam: float | None = None, samples: int = 0, seed: int = 0):
    """ALS for the MAP (lam given), or Gibbs sampling for BPMF (lam None): yields validation predictions per sweep."""
    gen = torch.Generator().manual_seed(seed)
    P = torch.randn(s.nu, k + 1, generator=gen, dtype=torch.float64) * 0.1
    Q = torch.randn(s.ni, k + 1, generator=gen, dtype=torch.float64) * 0.1
    P[:, k] = Q[:, k] = 0
    n_u = torch.bincount(s.u, minlength=s.nu).double()[:, None]
    n_i = torch.bincount(s.i, minlength=s.ni).double()[:, None]
    d, alpha = k + 1, 1.0
    hyper = {side: (torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64)) for side in "PQ"}
    for sweep in range(sweeps):
        if lam is None:  # sample the hyperparameters: noise precision, and per dimension the prior mean and precision
            err = s.r - (s.mu + (P[s.u, :k] * Q[s.i, :k]).sum(1) + P[s.u, k] + Q[s.i, k])
            alpha = float(torch._standard_gamma(torch.tensor(1.0 + len(s.r) / 2, dtype=torch.float64), generator=gen)
                          / (1.0 + 0.5 * err.pow(2).sum()))
            for side, W in (("P", P), ("Q", Q)):
                m, _ = hyper[side]
                n = W.shape[0]
                shape = torch.full((d,), 1.0 + (n + 1) / 2, dtype=torch.float64)
                prec = torch._standard_gamma(shape, generator=gen) / (1.0 + 0.5 * ((W - m).pow(2).sum(0) + m.pow(2)))
                m = W.sum(0) / (n + 1) + (1 / (prec * (n + 1))).sqrt() * torch.randn(d, generator=gen, dtype=torch.float64)
                hyper[side] = (m, prec)
        for side in "PQ":
            own, other, F, W_n = (s.u, s.i, Q, n_u) if side == "P" else (s.i, s.u, P, n_i)
            X, y = features(F, other, k), s.r - s.mu - F[other, k]
            if lam is None:
                m, prec = hyper[side]
                new = solve_side(own, len(W_n), X, y, prec, m, alpha, gen)
            else:  # per-rating L2 on the factors (lam * count), none on the bias; a tiny ridge keeps it solvable
                prior = torch.cat([lam * W_n.expand(-1, k), torch.full_like(W_n, 1e-6)], 1)
                new = solve_side(own, len(W_n), X, y, prior, torch.zeros(d, dtype=torch.float64))
            if side == "P":
                P = new
            else:
                Q = new
        yield s.predict(P, Q, k)


def ensemble(train, valid, s: Split, seeds: int) -> dict:
    logits, singles = [], []
    with Timer() as t:
        for seed in range(seeds):
            rec = Recommender(seed=seed).fit(train)
            u = torch.from_numpy(rec.user_map.encode(valid["user"].to_numpy(), "ignore"))
            i = torch.from_numpy(rec.item_map.encode(valid["item"].to_numpy(), "ignore"))
            warm = (u >= 0) & (i >= 0)
            with torch.no_grad():
                logits.append(rec.model.raw(u.clamp(min=0), i.clamp(min=0)).double())
            fallback = torch.from_numpy(rec._fallback(u.numpy(), i.numpy()))
            as_rating = lambda x: torch.where(warm, sigmoid_range(x, *rec.model.y_range), fallback)  # noqa: E731
            singles.append(s.rmse(as_rating(logits[-1])))
    return {"what": f"ensemble of {seeds} default dotbias runs (pre-sigmoid outputs averaged)",
            "valid_rmse": round(s.rmse(as_rating(torch.stack(logits).mean(0))), 4),
            "single_runs_valid_rmse": [round(x, 4) for x in singles], "seconds": round(t.seconds, 1)}


def map_als(s: Split, lams=(0.07, 0.1, 0.15, 0.2, 0.3), k: int = 64, sweeps: int = 10) -> dict:
    scores = {}
    with Timer() as t:
        for lam in lams:
            scores[lam] = round(min(s.rmse(p) for p in alternating(s, k, sweeps, lam=lam)), 4)
    return {"what": f"exact MAP by ALS, {k} factors, per-rating L2, best sweep of {sweeps}",
            "valid_rmse": min(scores.values()), "by_lambda": scores, "seconds": round(t.seconds, 1)}


def bpmf(s: Split, k: int, samples: int, burn: int = 20) -> dict:
    """Average the predictions of `samples` Gibbs sweeps after `burn`; RMSE and seconds so far at a few counts."""
    total, n, curve, t0 = None, 0, {}, time.perf_counter()
    for sweep, pred in enumerate(alternating(s, k, burn + samples), 1):
        if sweep <= burn:
            continue
        total, n = (pred if total is None else total + pred), n + 1
        if n in (25, 50, 100, 200, 400) or n == samples:
            curve[n] = {"valid_rmse": round(s.rmse(total / n), 4), "seconds": round(time.perf_counter() - t0, 1)}
    return {"what": f"BPMF with biases by Gibbs sampling, {k} factors, {burn} burn-in sweeps, {samples} samples",
            "valid_rmse": curve[samples]["valid_rmse"], "seconds": curve[samples]["seconds"], "by_samples": curve}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--only", default="ensemble,map,bpmf", help="which references, comma separated")
    args = ap.parse_args()
    ratings, _ = ml100k()
    train, valid = random_split(ratings, 0.2, 42)
    s = Split(train, valid)
    where = {"data": "ml-100k random 80/20 seed 42", "machine": machine()}
    only = args.only.split(",")
    if "ensemble" in only:
        emit(**ensemble(train, valid, s, args.seeds), **where)
    if "map" in only:
        emit(**map_als(s), **where)
    if "bpmf" in only:
        for k in (10, 32):
            emit(**bpmf(s, k, args.samples), **where)


if __name__ == "__main__":
    main()
