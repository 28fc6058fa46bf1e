"""How low can the dot product with biases go on the README's MovieLens 100k split, and by which fit?

    .venv/bin/python bench/ceiling_ml100k.py [--seeds 6] [--only ensemble,map,bayes]

The issue asks the default dot-product-with-biases model for a valid RMSE of at most 0.905 on the random 80/20 split
(seed 42). Optimizers find one setting of the weights; this script measures, on that split, what lies beyond:

1. `ensemble`: the Adam fit (the lesson's optimizer, otherwise defaults) with several seeds, their pre-sigmoid
   outputs averaged. The average takes away the variance of one run; what is left is the bias of the objective.
2. `map`: the exact minimum of the same kind of objective, by alternating least squares (every user's, then every
   item's factors and bias solved in closed form): squared error plus a per-rating L2 penalty (lambda times the
   row's count, ALS-WR), no sigmoid, 64 factors, for several lambdas. Gradient descent with early stopping can
   land below it; an exact optimizer cannot.
3. `bayes`: the product's default, Bayesian PMF by Gibbs sampling (`cf_core/bayes.py`), with more or fewer sweeps
   and factors: the average over the posterior instead of one optimum.

Prints one JSON line per reference and writes them to bench/results/ceiling-ml100k-{cpu,gpu}.jsonl (whole; with
--only, to ceiling-ml100k-<those>-{cpu,gpu}.jsonl, so that a partial run leaves the full one alone).
"""
from __future__ import annotations

import argparse

import torch
from common import Timer, device_kind, emit, machine, ml100k, save_results

from cf_core.bayes import GibbsSampler
from cf_core.models import DotProductBias, sigmoid_range
from cf_core.recommender import Recommender
from cf_core.splits import random_split

ALL = "ensemble,map,bayes"

def _indices(rec: Recommender, valid) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    u = torch.from_numpy(rec.user_map.encode(valid["user"].to_numpy(), "ignore"))
    i = torch.from_numpy(rec.item_map.encode(valid["item"].to_numpy(), "ignore"))
    return u, i, (u >= 0) & (i >= 0)


def _rmse(pred: torch.Tensor, valid) -> float:
    truth = torch.from_numpy(valid["rating"].to_numpy()).double()
    return float((pred.double().clamp(1, 5) - truth).pow(2).mean().sqrt())


def ensemble(train, valid, seeds: int) -> dict:
    logits, singles = [], []
    with Timer() as t:
        for seed in range(seeds):
            rec = Recommender(optimizer="adam", seed=seed).fit(train)
            u, i, warm = _indices(rec, valid)
            with torch.no_grad():
                logits.append(rec.model.raw(u.clamp(min=0), i.clamp(min=0)).double())
            fallback = torch.from_numpy(rec.fallback(u.numpy(), i.numpy()))

            def as_rating(x, warm=warm, rec=rec, fallback=fallback):
                return torch.where(warm, sigmoid_range(x, *rec.model.y_range), fallback)
            singles.append(round(_rmse(as_rating(logits[-1]), valid), 4))
    return {"what": f"ensemble of {seeds} Adam fits (pre-sigmoid outputs averaged)",
            "valid_rmse": round(_rmse(as_rating(torch.stack(logits).mean(0)), valid), 4),
            "single_runs_valid_rmse": singles, "seconds": round(t.seconds, 1)}


def map_als(train, valid, lams=(0.05, 0.07, 0.1, 0.15, 0.2), k: int = 64, sweeps: int = 10) -> dict:
    """ALS-WR through the sampler's exact conditionals (`GibbsSampler.als_step`, its warm-up step, at each lambda)."""
    rec = Recommender(optimizer="gibbs", n_factors=k, epochs=1)
    rec.build(train)  # ids, fallbacks and a fresh model with the data's mean as its offset
    u, i, warm = _indices(rec, valid)
    fallback = torch.from_numpy(rec.fallback(u.numpy(), i.numpy()))
    data, scores = rec._train_tensors, {}
    with Timer() as t:
        for lam in lams:
            torch.manual_seed(0)
            model = DotProductBias(rec.n_users, rec.n_items, k, None, 0.1, rec.global_mean)
            sampler = GibbsSampler(model, data.user, data.item, data.rating)
            best = float("inf")
            for _ in range(sweeps):
                sampler.als_step(lam)
                sampler.write(sampler.W)
                with torch.no_grad():
                    pred = torch.where(warm, model(u.clamp(min=0), i.clamp(min=0)).double(), fallback)
                best = min(best, _rmse(pred, valid))
            scores[lam] = round(best, 4)
    return {"what": f"exact MAP by ALS-WR, {k} factors, best of {sweeps} sweeps", "valid_rmse": min(scores.values()),
            "by_lambda": scores, "seconds": round(t.seconds, 1)}


def bayes(train, valid) -> list[dict]:
    out = []
    for k, sweeps in ((10, 70), (10, 120), (10, 220), (16, 120), (32, 120)):
        with Timer() as t:
            rec = Recommender(optimizer="gibbs", n_factors=k, epochs=sweeps).fit(train)
        out.append({"what": f"Bayesian PMF (Gibbs), {k} factors, {sweeps} sweeps ({sweeps - 20} averaged)",
                    "valid_rmse": round(rec.evaluate(valid)["rmse"], 4), "seconds": round(t.seconds, 1)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--only", default=ALL, help="which references, comma separated")
    args = ap.parse_args()
    ratings, _ = ml100k()
    train, valid = random_split(ratings, 0.2, 42)
    where = {"data": "ml-100k random 80/20 seed 42", "machine": machine()}
    only, rows = args.only.split(","), []
    if "ensemble" in only:
        rows.append(emit(**ensemble(train, valid, args.seeds), **where))
    if "map" in only:
        rows.append(emit(**map_als(train, valid), **where))
    if "bayes" in only:
        rows += [emit(**line, **where) for line in bayes(train, valid)]
    part = "" if args.only == ALL else "-" + "-".join(only)
    save_results(f"ceiling-ml100k{part}-{device_kind()}", rows)


if __name__ == "__main__":
    main()
