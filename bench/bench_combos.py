"""Every model and optimizer the Train page offers, with their automatic settings, on MovieLens 100k (random 80/20,
seed 42), beside the RMSE of giving everyone the training mean.

    .venv/bin/python bench/bench_combos.py

The net runs as the page runs it (its embeddings start from the Bayesian fit under 2M ratings) and from random
embeddings. Prints one JSON line per fit and writes them to bench/results/combos-ml100k-{cpu,gpu}.jsonl (whole).
"""
from __future__ import annotations

import itertools
import time

from common import device_kind, emit, machine, ml100k, save_results

from cf_core.config import TrainConfig
from cf_core.recommender import Recommender
from cf_core.splits import random_split


def main() -> None:
    ratings, _ = ml100k()
    train, valid = random_split(ratings[["user", "item", "rating"]], 0.2, 42)
    optimizers = ("gibbs", "sgd", "momentum", "adam", "adamw")
    fits = [(m, o, None) for m, o in itertools.product(("dot", "dotbias"), optimizers)]
    fits += [("nn", o, p) for o in ("sgd", "momentum", "adam", "adamw") for p in (None, False)]
    rows = []
    for model, optimizer, pretrain in fits:
        t0 = time.perf_counter()
        rec = Recommender(TrainConfig(model=model, optimizer=optimizer, pretrain=pretrain)).fit(train, valid)
        m = rec.evaluate(valid)
        rows.append(emit(bench="combos", model=model, optimizer=optimizer, pretrain=rec.config.pretrain,
                         valid_rmse=round(m["rmse"], 4), mean_rmse=round(m["baseline_rmse"], 4),
                         ratio=round(m["rmse"] / m["baseline_rmse"], 3), emb_lr_scale=rec.config.emb_lr_scale,
                         seconds=round(time.perf_counter() - t0, 1), machine=machine()))
    save_results(f"combos-ml100k-{device_kind()}", rows)


if __name__ == "__main__":
    main()
