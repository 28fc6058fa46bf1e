"""What a resolved training setting costs, before any of it runs: peak memory of its largest blocks and time,
roughly (`cost`), the memory free on a device (`available_bytes`), and `check_cost`, which warns when a fit will
take long and raises `TooCostly` when it cannot fit in memory or in time (the message has the figures and what to
change)."""
from __future__ import annotations

from dataclasses import dataclass

from .config import GIBBS_FACTORS, GIBBS_SWEEPS, LARGE_RATINGS, DataStats, TrainConfig

# A gradient step's fixed cost (Python, the optimizer, a kernel launch per op), and the cost per rating on top of it;
# measured with small batches on this project's 2-core CPU machine (0.6 to 2.2 ms a step) and rounded up.
STEP_SECONDS = {"cpu": 2.5e-3, "cuda": 1e-3}
RATING_SECONDS = {"cpu": 3e-7, "cuda": 2e-9}
SWEEP_SECONDS = 0.05  # a Gibbs sweep's fixed cost
# A setting whose steps alone (not the data) would take longer than this is refused: it would hold a worker for
# hours doing what a bigger batch does in minutes.
MAX_STEP_HOURS = 1.0
WARN_MINUTES = 15.0


class TooCostly(ValueError):
    """A setting that needs more memory or time than training can give it; the message has the figures."""


@dataclass
class Cost:
    """What a resolved setting needs: peak memory of its largest blocks, and time, roughly."""

    bytes: int
    steps_per_epoch: int
    step_seconds: float  # the steps' fixed cost over the whole fit
    seconds: float  # the whole fit, steps and ratings

    def describe_time(self) -> str:
        return _duration(self.seconds)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# What the implicit blocks (bayes_fm.py) add per training rating, measured here with 10 factors (`bench/accuracy.py
# --scale`): 430 bytes of peak memory (20M ratings: 10.6 GB against 2.0 GB without), and 0.85 us (800,000 ratings)
# to 3.3 us (20M) a sweep on 2 CPU cores, rounded up below and from LARGE_RATINGS; the GPU figure is a guess at a
# hundredth, not yet measured.
IMPLICIT_BYTES = 450  # sparse views of the ratings, per-rating targets and noise, the solves' temporaries
IMPLICIT_SECONDS = {"cpu": (1e-6, 3.5e-6), "cuda": (1e-8, 3.5e-8)}  # (below LARGE_RATINGS, from it)


# What the day block adds (bayes_fm.py, day_grams.py): a third side of rows, and Gram matrices through the (user,
# day) pairs. Measured on MovieLens 100k (80,000 ratings, 11 dimensions, `bench/accuracy.py`): 120 sweeps in 21.2 s
# against 19.9 s without it on 2 CPU cores, about 0.01 s a sweep, 1.4e-7 s a rating (counted here as 2e-7); the GPU
# figure is a guess at a hundredth. Memory: a few per-rating arrays, and one chunk of pairs' outer products at a time.
DAY_SECONDS = {"cpu": 2e-7, "cuda": 2e-9}
# What the ordered-probit output adds (ordinal.py): ten Metropolis-Hastings passes over the ratings for the cutpoints
# and a truncated-normal draw per rating. MovieLens 100k (`bench/accuracy.py`, 2026-12-04): 120 sweeps in 11.8 s
# against 8.1 s with the Gaussian output, about 0.03 s a sweep, 3.9e-7 s a rating (counted as 4e-7); the GPU figure
# is a guess at a hundredth.
ORDINAL_SECONDS = {"cpu": 4e-7, "cuda": 4e-9}
DRAWS_MAX, DRAWS_BYTES = 256, 64 << 20  # bayes.DRAWS_MAX, DRAWS_BYTES (not imported: this module stays light)
DAY_CHUNK_BYTES = 8 * (1 << 18)  # times d x d: one chunk of (user, day) pairs' outer products (day_grams.CHUNK)


def _gibbs_sweep_seconds(stats: DataStats, d: int, implicit: bool, kind: str, day: bool = False,
                         ordinal: bool = False) -> float:
    """One Gibbs sweep's time: the Gram matrices (a d x d outer product per rating and per row), a Cholesky
    factorisation and solves per row, at about 10 GFLOP/s on a CPU and 1 TFLOP/s on a GPU in float64; with the
    implicit blocks, two conjugate-gradient solves of about 20 steps of two sparse products each."""
    rows = stats.n_users + stats.n_items
    flops = 2 * (stats.n_ratings + rows) * d * d + rows * d**3 / 3 + 4 * rows * d * d
    sweep = flops / (1e10 if kind == "cpu" else 1e12) + SWEEP_SECONDS
    if implicit:
        sweep += stats.n_ratings * IMPLICIT_SECONDS[kind][stats.n_ratings >= LARGE_RATINGS]
    return sweep + stats.n_ratings * ((DAY_SECONDS[kind] if day else 0.0) + (ORDINAL_SECONDS[kind] if ordinal else 0.0))


def _gibbs_need(stats: DataStats, d: int, implicit: bool, day: bool = False) -> int:
    """The Gibbs fit's memory: its batched conditionals, the draws it keeps for prediction (twice: the model's, and
    the best epoch's copy), and with the implicit blocks (and the day's) their per-rating arrays."""
    extra = stats.n_ratings * (IMPLICIT_BYTES if implicit or day else 0)
    if day:  # a chunk's outer products
        extra += DAY_CHUNK_BYTES * d * d
    rows = stats.n_users + stats.n_items
    draws = 2 * min(DRAWS_BYTES, DRAWS_MAX * 4 * (d + 1) * rows)  # [factors | bias]: d + 1 at most
    return _gibbs_bytes(stats.n_users, stats.n_items, d) + draws + extra


def _gibbs_bytes(n_users: int, n_items: int, d: int) -> int:
    """The sampler's batched conditionals: a d x d block per row of one side (the Gram matrices and their Cholesky
    factors) and one per row of the other (its outer products), in float64."""
    return 8 * d * d * (2 * max(n_users, n_items) + min(n_users, n_items))


def cost(cfg: TrainConfig, stats: DataStats, device: str) -> Cost:
    """The memory and time a resolved `cfg` needs on `device` ("cpu" or "cuda")."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    rows = stats.n_users + stats.n_items
    if cfg.optimizer == "gibbs":
        d = cfg.n_factors + (1 if cfg.model == "dotbias" else 0)
        return Cost(_gibbs_need(stats, d, cfg.implicit, cfg.day), 0, 0.0,
                    cfg.epochs * _gibbs_sweep_seconds(stats, d, cfg.implicit, kind, cfg.day, cfg.output == "ordinal"))
    if cfg.optimizer == "als":
        return _als_cost(cfg, stats, kind)
    width = (cfg.user_factors or cfg.n_factors) + (cfg.item_factors or cfg.n_factors) if cfg.model == "nn" \
        else 2 * (cfg.n_factors + 1)
    # Weights, gradients, two Adam moments, the weight average and the best epoch's copy; a batch's activations.
    layers = sum(cfg.layers) if cfg.model == "nn" else 0
    need = 6 * 4 * rows * width / 2 + 16 * cfg.batch_size * (width + layers)
    if cfg.model == "nn" and cfg.pretrain:
        need = max(need, _gibbs_need(stats, GIBBS_FACTORS + 1, True))  # its pretraining fit has the implicit blocks
    steps = -(-stats.n_ratings // cfg.batch_size)
    step_seconds = cfg.epochs * steps * STEP_SECONDS[kind]
    pretraining = GIBBS_SWEEPS * _gibbs_sweep_seconds(stats, GIBBS_FACTORS + 1, True, kind) \
        if cfg.model == "nn" and cfg.pretrain else 0.0  # the Bayesian SVD++ fit its embeddings start from
    return Cost(int(need), steps, step_seconds, pretraining + step_seconds
                + cfg.epochs * stats.n_ratings * RATING_SECONDS[kind] * (4 if cfg.model == "nn" else 1))


# Weighted ALS for implicit feedback (wals.py): per sweep and side, five products with Y'Y for every row and a gather,
# dot product and CSR product over the interactions. MovieLens 100k (80,000 interactions, 32 factors, 2 CPU cores,
# `bench/implicit_feedback.py`): about 0.021 s a sweep, 4 GFLOP/s by this count (counted at 2); the GPU's a guess.
ALS_FLOPS = {"cpu": 2e9, "cuda": 2e11}


def _als_cost(cfg: TrainConfig, stats: DataStats, kind: str) -> Cost:
    """Memory: both sides' factors (and a solve's residuals and directions), the interactions' CSR views both ways
    and one side's gathered factors per interaction; time: the sweeps' products."""
    rows, k, n = stats.n_users + stats.n_items, cfg.n_factors, stats.n_ratings
    need = 4 * rows * k * 4 + 2 * n * 20 + 4 * n * k
    flops = 2 * 5 * (2 * n * k + 2 * rows * k * k)
    return Cost(int(need), 0, 0.0, cfg.epochs * (flops / ALS_FLOPS[kind] + SWEEP_SECONDS))


def available_bytes(device: str) -> int | None:
    """Free memory where training will run: the GPU's, or this machine's (MemAvailable); None if unknown."""
    if device.startswith("cuda"):
        import torch

        try:
            dev = torch.device(device)
            # What PyTorch caches but no tensor holds is free to this process too.
            cached = torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
            return int(torch.cuda.mem_get_info(dev)[0] + cached)
        except Exception:  # no CUDA here: the worker that trains will check again
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_cost(cfg: TrainConfig, stats: DataStats, device: str, free: int | None | str = "here") -> list[str]:
    """Raise TooCostly for a resolved setting that cannot fit in memory or would spend hours on step overhead;
    return warnings (a long fit) otherwise.

    free: the bytes free where it trains; "here" asks this process's machine (`available_bytes`), None skips the
    memory check (a web server that does not train: the worker checks on its own machine).
    """
    c = cost(cfg, stats, device)
    free = available_bytes(device) if free == "here" else free
    where = "the GPU" if device.startswith("cuda") else "this machine"
    if free is not None and c.bytes > 0.8 * free:
        implicit = stats.n_ratings * IMPLICIT_BYTES if cfg.optimizer == "gibbs" and cfg.implicit else 0
        if implicit > c.bytes / 2:
            raise TooCostly(f"these settings need about {c.bytes / 2**30:,.1f} GB of memory, most of it for learning "
                            f"from what each person rated ({implicit / 2**30:,.1f} GB for "
                            f"{stats.n_ratings:,} ratings), and {where} has {free / 2**30:,.1f} GB free: turn that off "
                            "(the Train page's checkbox, or --no-implicit), or choose Adam")
        what = (f"Gibbs sampling with {cfg.n_factors} factors holds a {cfg.n_factors + 1} x {cfg.n_factors + 1} "
                "block per user and per item" if cfg.optimizer == "gibbs" else f"{cfg.model} with these sizes")
        raise TooCostly(f"these settings need about {c.bytes / 2**30:,.1f} GB of memory ({what}), and {where} has "
                        f"{free / 2**30:,.1f} GB free: use fewer factors" +
                        (f" (the default, {GIBBS_FACTORS}, needs "
                         f"{_gibbs_bytes(stats.n_users, stats.n_items, GIBBS_FACTORS + 1) / 2**20:,.0f} MB)"
                         if cfg.optimizer == "gibbs" else ""))
    if c.step_seconds > MAX_STEP_HOURS * 3600:
        bs = cfg.batch_size
        while (bs < stats.n_ratings
               and cost(cfg.replace(batch_size=bs), stats, device).step_seconds > MAX_STEP_HOURS * 900):
            bs *= 2
        if bs >= stats.n_ratings:  # one batch an epoch is still too slow: the epochs are the trouble
            raise TooCostly(f"{cfg.epochs:,} epochs would take about {_duration(c.step_seconds)} in the steps' "
                            "overhead alone: use fewer epochs (or leave them empty for the automatic number)")
        raise TooCostly(f"a batch size of {cfg.batch_size:,} makes {c.steps_per_epoch:,} steps an epoch: about "
                        f"{_duration(c.step_seconds / cfg.epochs)} an epoch and {_duration(c.step_seconds)} for "
                        f"{cfg.epochs} epochs in the steps' overhead alone. Use a batch size of at least {bs:,} (or "
                        "leave it empty for the automatic one)")
    if c.seconds > WARN_MINUTES * 60:
        return [f"This will train for about {c.describe_time()} on "
                f"{'a GPU' if device.startswith('cuda') else 'the CPU'} (a rough estimate)."]
    return []
