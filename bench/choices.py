"""The measurements behind choices the engine's docstrings describe, on MovieLens 100k (random 80/20, seed 42).

    .venv/bin/python bench/choices.py [--only cg-tol,rao-blackwell,pretrain]

- `cg-tol` (cf_core/bayes_fm.py): the conjugate-gradient tolerance of the implicit blocks' draws, CG_TOL = 1e-2
  against 1e-4, three seeds: valid RMSE, seconds and the mean number of CG steps per solve.
- `rao-blackwell` (cf_core/bayes.py): Bayesian PMF's posterior mean as the average of each row's conditional mean
  (what the sampler does) against the average of the draws themselves, each predicting with those mean weights,
  and beside them what a run predicts with (the average of its kept draws' predictions), four seeds.
- `pretrain` (cf_core/pretrain.py): the net with its embeddings started from the Bayesian fit with what each user
  rated (the default) against the plain Bayesian fit, two seeds.

Prints one JSON line per fit and writes them to bench/results/choices-ml100k-{cpu,gpu}.jsonl (whole; with --only,
to choices-ml100k-<those>-{cpu,gpu}.jsonl).
"""
from __future__ import annotations

import argparse
import contextlib
import time

import torch
from common import device_kind, emit, machine, ml100k, save_results

import cf_core.bayes_fm as bayes_fm
import cf_core.pretrain as pretrain
from cf_core.bayes import GibbsSampler
from cf_core.config import TrainConfig
from cf_core.recommender import Recommender
from cf_core.splits import random_split

ALL = "cg-tol,rao-blackwell,pretrain"


@contextlib.contextmanager
def patched(obj, name: str, value):
    """`obj.name` set to `value` for the block."""
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def _fit(cfg: TrainConfig, train, valid) -> tuple[Recommender, float, float]:
    t0 = time.perf_counter()
    rec = Recommender(cfg).fit(train, valid)
    return rec, round(rec.evaluate(valid)["rmse"], 4), round(time.perf_counter() - t0, 1)


def cg_tol(train, valid) -> list[dict]:
    rows, samplers = [], []
    init = bayes_fm.RelationSampler.__init__

    def keep(self, *args, **kwargs):
        init(self, *args, **kwargs)
        samplers.append(self)

    with patched(bayes_fm.RelationSampler, "__init__", keep):
        for seed in (42, 1, 2):
            for tol in (1e-2, 1e-4):
                with patched(bayes_fm, "CG_TOL", tol):
                    _, rmse, seconds = _fit(TrainConfig(seed=seed), train, valid)
                steps = samplers[-1].cg_iterations
                rows.append(emit(bench="cg-tol", cg_tol=tol, seed=seed, valid_rmse=rmse, seconds=seconds,
                                 cg_steps_per_solve=round(sum(steps) / max(len(steps), 1), 1), machine=machine()))
    return rows


def _average_the_draws(self: GibbsSampler, side: str) -> None:
    """GibbsSampler._sample_side, but the running mean adds each draw rather than its conditional mean."""
    mean, chol = self.conditional(side)
    z = torch.randn(*mean.shape, 1, dtype=mean.dtype, device=mean.device, generator=self.gen)
    self.W[side] = mean + torch.linalg.solve_triangular(chol.transpose(1, 2), z, upper=True)[:, :, 0]
    if self._sum is not None:
        self._sum[side] += self.W[side]


def _of_the_mean_weights(rec: Recommender, valid) -> float:
    """The RMSE of predicting with the posterior-mean weights rather than the kept draws (`models.PosteriorDraws`),
    as runs did before 2026-12-04; the explore pages use these weights."""
    del rec.model.draws
    return round(rec.evaluate(valid)["rmse"], 4)


def rao_blackwell(train, valid) -> list[dict]:
    rows = []
    for seed in (42, 1, 2, 3):
        cfg = TrainConfig(optimizer="gibbs", implicit=False, seed=seed)
        rec, predictive, seconds = _fit(cfg, train, valid)
        means = _of_the_mean_weights(rec, valid)
        with patched(GibbsSampler, "_sample_side", _average_the_draws):
            draws = _of_the_mean_weights(_fit(cfg, train, valid)[0], valid)
        rows.append(emit(bench="rao-blackwell", what="Bayesian PMF, 10 factors, 120 sweeps", seed=seed,
                         conditional_means_rmse=means, draws_rmse=draws, kept_draws_predictive_rmse=predictive,
                         seconds=seconds, machine=machine()))
    return rows


def pretrain_fit(train, valid) -> list[dict]:
    rows = []
    for seed in (42, 1):
        for implicit in (True, False):
            with patched(pretrain, "PRETRAIN_IMPLICIT", implicit):
                _, rmse, seconds = _fit(TrainConfig(model="nn", seed=seed), train, valid)
            rows.append(emit(bench="pretrain", what="the net, defaults", pretrain_implicit=implicit, seed=seed,
                             valid_rmse=rmse, seconds=seconds, machine=machine()))
    return rows


BENCHES = {"cg-tol": cg_tol, "rao-blackwell": rao_blackwell, "pretrain": pretrain_fit}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=ALL, help=f"comma-separated, of {ALL}")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(BENCHES)
    if unknown:
        ap.error(f"unknown: {', '.join(sorted(unknown))}")
    ratings, _ = ml100k()
    train, valid = random_split(ratings[["user", "item", "rating"]], 0.2, 42)
    rows = [row for name in names for row in BENCHES[name](train, valid)]
    suffix = "" if args.only == ALL else "-" + "-".join(names)
    save_results(f"choices-ml100k{suffix}-{device_kind()}", rows)


if __name__ == "__main__":
    main()
