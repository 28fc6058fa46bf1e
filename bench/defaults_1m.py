"""The defaults at a size where Gibbs sampling is still the default (1M ratings), beside Adam and the net without
pretraining: what the automatic choices cost in time and give in accuracy.

    .venv/bin/python bench/defaults_1m.py

Synthetic data (20,000 users, 5,000 items, rank 8, noise 0.5: the floor is 0.5), random 80/20 split; one JSON line
per configuration, also written to bench/results/defaults-1m-{cpu,gpu}.jsonl (whole).
"""
import time
import warnings

from common import device_kind, emit, machine, save_results  # common also puts the repository on sys.path

from cf_core.datasets import synthetic
from cf_core.recommender import Recommender
from cf_core.splits import random_split

warnings.filterwarnings("ignore")


def main() -> None:
    s = synthetic(n_users=20000, n_items=5000, n_ratings=1_000_000, n_factors=8, noise=0.5, seed=1)
    tr, va = random_split(s.ratings, 0.2, 0)
    rows = []
    for kw in (dict(), dict(optimizer="adam"), dict(model="nn"), dict(model="nn", pretrain=False)):
        t = time.time()
        r = Recommender(**kw).fit(tr, va)
        rows.append(emit(what=f"synthetic 1M ratings, {kw or 'defaults'}", valid_rmse=round(r.evaluate(va)["rmse"], 4),
                         seconds=round(time.time() - t, 1), optimizer=r.config.optimizer, machine=machine()))
    save_results(f"defaults-1m-{device_kind()}", rows)


if __name__ == "__main__":
    main()
