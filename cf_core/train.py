"""One flat training loop (minGPT style) with callbacks, for every optimizer and for the Gibbs sampler.

The data lives on the device as three tensors; a batch is a slice of a random permutation, so there is no
DataLoader and no per-batch host work. What the loop uses has a module of its own: the schedules, optimizers,
steps and weight average in `optim.py`; the records, callbacks, smoothed loss and keep-best in `recording.py`; the
LR finder in `lr_find.py`. Everything that watches training (loss history, live charts, progress, cancel) hangs on
callbacks.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .bayes import WARMUP_SWEEPS, GibbsSampler
from .bayes_fm import IMPLICIT, RelationSampler
from .config import TrainConfig, burn_in
from .fused import FusedDotStep, use_compile, use_fused
from .lr_find import LRFinderResult, find_lr, suggest_lr  # noqa: F401  (re-exported: the engine's training API)
from .optim import AutogradStep, RankingStep, Step, WeightAverage, lr_at, make_optimizer  # noqa: F401
from .recording import BatchInfo, Callback, EpochInfo, History, KeepBest, SmoothedLoss
from .wals import WALS


@dataclass
class Tensors:
    """Ratings as index and value tensors on one device."""

    user: torch.Tensor
    item: torch.Tensor
    rating: torch.Tensor
    # The item table's genres, for the Bayesian fit's genres block: (item index, genre index, number of genres), one
    # entry per item and genre it has.
    genres: tuple[torch.Tensor, torch.Tensor, int] | None = None
    day: torch.Tensor | None = None  # each rating's day (0 to days - 1), for the day block

    def __len__(self) -> int:
        return len(self.rating)

    def to(self, device: torch.device | str) -> Tensors:
        genres = None if self.genres is None else (self.genres[0].to(device), self.genres[1].to(device), self.genres[2])
        return Tensors(self.user.to(device), self.item.to(device), self.rating.to(device), genres,
                       None if self.day is None else self.day.to(device))


def pick_device(name: str = "auto") -> torch.device:
    """cuda when asked for or (auto) present, else cpu; asking for cuda without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for, but no CUDA GPU is available here (use --device cpu or auto)")
    return torch.device(name)


def distributed() -> tuple[int, int]:
    """(rank, world size) under torch.distributed (torchrun), else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


Evaluator = Callable[[nn.Module], tuple[float, float]]  # model -> (rmse, mae) on the validation set


@dataclass
class Checkpoint:
    """A fit's state at the end of an epoch: JSON-able scalars and named CPU tensors (saved with safetensors)."""

    meta: dict
    tensors: dict[str, torch.Tensor]


@dataclass
class _Run:
    """The objects and counters of the fit in progress, which a checkpoint saves."""

    t0: float                                   # perf_counter at the start (moved back by a resume)
    epoch: int = 0                              # epochs done
    step: Step | None = None                    # None for the Gibbs fit
    gen: torch.Generator | None = None          # the permutations' generator
    average: WeightAverage | None = None
    loss: SmoothedLoss | None = None
    steps: int = 0                              # optimizer steps done
    sampler: GibbsSampler | RelationSampler | None = None


class _Errors:
    """The running sums of an epoch's squared and absolute training errors, on the device (no sync per batch)."""

    def __init__(self, device: torch.device):
        self.sse, self.sae, self.n = torch.zeros((), device=device), torch.zeros((), device=device), 0

    def add(self, mse: torch.Tensor, err: torch.Tensor) -> None:
        with torch.no_grad():
            self.sse += mse.detach() * len(err)
            self.sae += err.detach().abs().sum()
        self.n += len(err)

    def all_reduce(self) -> None:
        """Sum over every rank's share (under DDP)."""
        totals = torch.stack([self.sse, self.sae, torch.tensor(float(self.n), device=self.sse.device)])
        torch.distributed.all_reduce(totals)
        self.sse, self.sae, self.n = totals[0], totals[1], int(totals[2])

    def rmse_mae(self) -> tuple[float, float]:
        return math.sqrt(float(self.sse) / self.n), float(self.sae) / self.n


# ---------------------------------------------------------------- the loop
class Trainer:
    """Trains `model` on `train` tensors with the settings of a resolved `TrainConfig`."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, callbacks: Sequence[Callback] = (),
                 cancel: threading.Event | None = None):
        self.model, self.cfg, self.callbacks = model, cfg, list(callbacks)
        self.cancel = cancel or threading.Event()
        self.history = History()
        self.best = KeepBest(cfg.keep_best)
        self._run: _Run | None = None

    def fit(self, train: Tensors, evaluate: Evaluator | None = None, resume: Checkpoint | None = None) -> History:
        """Run cfg.epochs epochs (or until cancel is set); returns the history.

        `resume`: a `checkpoint()` taken at the end of an epoch of this same fit (same data, settings and seed); the
        fit goes on from there as if it had never stopped. Under torch.distributed (torchrun) each rank trains on its
        share of every batch of the same permutation and DistributedDataParallel averages the gradients.
        """
        if self.cfg.optimizer == "gibbs":
            return self._fit_gibbs(train, evaluate, resume)
        if self.cfg.optimizer == "als":
            return self._fit_als(train, resume)
        cfg, model, device = self.cfg, self.model, train.rating.device
        rank, world = distributed()
        n, bs = len(train), cfg.batch_size
        per_epoch = _steps_per_epoch(n, bs, world)
        total = per_epoch * cfg.epochs
        run = self._run = _Run(time.perf_counter(), step=self._make_step(n, world), loss=SmoothedLoss(),
                               average=WeightAverage(model, cfg, per_epoch),
                               gen=torch.Generator(device=device).manual_seed(cfg.seed))
        if resume is not None:
            self._restore(resume)
        self._emit("on_fit_start")
        for epoch in range(run.epoch, cfg.epochs):
            model.train()
            # int32 halves the permutation's memory (160 MB at 20M ratings); indexing accepts it.
            perm = torch.randperm(n, device=device, generator=run.gen, dtype=torch.int32 if n < 2**31 else torch.int64)
            errors = _Errors(device)
            for b in range(per_epoch):
                if self.cancel.is_set() and world == 1:  # every rank must take every step: no cancel under DDP
                    break
                idx = perm[b * bs:(b + 1) * bs][rank::world]
                lr = lr_at(cfg, run.steps, total, per_epoch)
                mse, err = run.step(train.user[idx], train.item[idx], train.rating[idx], lr)
                run.steps += 1
                run.average.update(run.steps)
                errors.add(mse, err)
                if self.callbacks or b == per_epoch - 1:
                    value = float(mse.detach())  # a device sync; only paid when someone listens
                    fraction = epoch + (b + 1) / per_epoch
                    self._record_batch(BatchInfo(run.steps, total, fraction, value, run.loss(value), lr))
            if errors.n == 0:
                break
            if world > 1:
                errors.all_reduce()
            with run.average.applied():  # the averaged weights are what is evaluated and kept
                valid_rmse, valid_mae = evaluate(model) if evaluate is not None else (None, None)
                info = EpochInfo(epoch + 1, *errors.rmse_mae(), valid_rmse, valid_mae, time.perf_counter() - run.t0, lr,
                                 complete=errors.n == min(n, per_epoch * bs))
                self._record_epoch(info)
            run.epoch = epoch + 1
            self._emit("on_epoch_end", info)
            if self.cancel.is_set() and world == 1:
                break
        run.average.apply()  # the model ends holding the average
        return self._finish()

    def _make_step(self, n: int, world: int) -> Step:
        """The fused step where it applies, else autograd. The fused step computes gradients in closed form and
        updates only the rows a batch touches; across ranks the gradients are DDP's to average, so distributed
        training takes the autograd path."""
        model, cfg = self.model, self.cfg
        if cfg.feedback == "implicit":  # interactions against sampled negatives
            return RankingStep(model, cfg, model.item_factors.num_embeddings,
                               torch.Generator(device=next(model.parameters()).device).manual_seed(cfg.seed + 1),
                               torch.nn.parallel.DistributedDataParallel(model) if world > 1 else None)
        if use_fused(model, cfg) and world == 1:
            return FusedDotStep(model, cfg.betas, cfg.eps, cfg.wd, cfg.bias_wd, use_compile(cfg, n))
        return AutogradStep(model, cfg, torch.nn.parallel.DistributedDataParallel(model) if world > 1 else None)

    def _fit_gibbs(self, train: Tensors, evaluate: Evaluator | None, resume: Checkpoint | None = None) -> History:
        """Bayesian PMF: each epoch is one Gibbs sweep; after the burn-in the model holds the posterior mean of the
        weights and the draws it predicts ratings with (their average prediction: `models.PosteriorDraws`).

        The loss curve shows each sample's training MSE, over all ratings (exact, so not smoothed: the smoothed
        loss is the loss itself); the epoch metrics are those of the draws' average prediction, which is what is
        evaluated, kept and returned.
        """
        cfg, model = self.cfg, self.model
        blocks = (*(IMPLICIT if cfg.implicit else ()), *(name for name in ("genres", "day") if getattr(cfg, name)))
        levels = torch.unique(train.rating) if cfg.output == "ordinal" else None  # the ordered probit's
        sampler = RelationSampler(model, train.user, train.item, train.rating, cfg.seed, blocks, train.genres,
                                  train.day, levels) \
            if blocks else GibbsSampler(model, train.user, train.item, train.rating, cfg.seed, levels)
        burn = burn_in(cfg)
        run = self._run = _Run(time.perf_counter(), sampler=sampler)
        if resume is not None:
            self._restore(resume)
        self._emit("on_fit_start")
        for sweep in range(run.epoch + 1, cfg.epochs + 1):
            if self.cancel.is_set():
                break
            if sweep == burn + 1:
                sampler.start_averaging()
            mse = sampler.sweep(warmup=sweep <= min(WARMUP_SWEEPS, burn))
            self._record_batch(BatchInfo(sweep, cfg.epochs, float(sweep), mse, mse, 0.0))
            average = sampler.mean()
            sampler.write(average)
            err = sampler.train_errors()
            valid_rmse, valid_mae = evaluate(model) if evaluate is not None else (None, None)
            info = EpochInfo(sweep, float(err.pow(2).mean().sqrt()), float(err.abs().mean()), valid_rmse, valid_mae,
                             time.perf_counter() - run.t0, 0.0)
            self._record_epoch(info)
            run.epoch = sweep
            self._emit("on_epoch_end", info)
        return self._finish()

    def _fit_als(self, train: Tensors, resume: Checkpoint | None = None) -> History:
        """Implicit feedback: each epoch is one sweep of weighted ALS (`wals.py`), users then items. The loss curve
        shows its objective per interaction; the epoch's training figures are the errors of the interactions'
        preference (1). With `counts`, the ratings are counts (confidence 1 + alpha * count); else each is one."""
        # (a checkpoint, `resume`, is not gone on from: a worker cut off trains such a fit again, in seconds)
        cfg, model = self.cfg, self.model
        counts = train.rating if cfg.counts else torch.ones_like(train.rating)
        fit = WALS(train.user.long(), train.item.long(), counts, model.user_factors.num_embeddings,
                   model.item_factors.num_embeddings, cfg.n_factors, cfg.wd, cfg.alpha, cfg.seed)
        run = self._run = _Run(time.perf_counter())
        self._emit("on_fit_start")
        for sweep in range(1, cfg.epochs + 1):
            if self.cancel.is_set():
                break
            fit.sweep()
            loss = fit.loss()
            self._record_batch(BatchInfo(sweep, cfg.epochs, float(sweep), loss, loss, 0.0))
            with torch.no_grad():
                model.user_factors.weight.copy_(fit.W["user"])
                model.item_factors.weight.copy_(fit.W["item"])
            info = EpochInfo(sweep, *fit.fit_errors(), None, None, time.perf_counter() - run.t0, 0.0)
            self._record_epoch(info)
            run.epoch = sweep
            self._emit("on_epoch_end", info)
        return self._finish()

    # ------------------------------------------------------------ recording
    def _emit(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def _record_batch(self, info: BatchInfo) -> None:
        """Append a batch's loss, smoothed loss and learning rate to the history and tell the callbacks."""
        self.history.loss.append(info.loss)
        self.history.smooth_loss.append(info.smooth_loss)
        self.history.lr.append(info.lr)
        self._emit("on_batch_end", info)

    def _record_epoch(self, info: EpochInfo) -> None:
        """Append an epoch's metrics, with the weights just evaluated in the model (for keep-best)."""
        self.history.epochs.append(vars(info).copy())
        self.best.update(self.model, info)
        self.history.best_epoch = self.best.epoch

    def _finish(self) -> History:
        """End a fit: keep the best-so-far weights rather than the last, stamp the time, tell the callbacks."""
        hist = self.history
        hist.cancelled = self.cancel.is_set()
        self.best.restore(self.model, len(hist.epochs))
        hist.seconds = time.perf_counter() - self._run.t0
        self.model.eval()
        self._emit("on_fit_end")
        return hist

    # ------------------------------------------------------------ checkpoints
    def checkpoint(self) -> Checkpoint:
        """The whole state of the fit at the end of the epoch just recorded (call it from on_epoch_end): weights,
        optimizer moments, the weight average, the best epoch so far, the random generator, the history.
        `fit(..., resume=checkpoint)` goes on from it exactly."""
        run = self._run
        tensors = {f"model.{k}": v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        if self.cfg.optimizer == "als":  # the weights and the history: it does not resume (seconds to redo)
            return Checkpoint({"epoch": run.epoch, "history": self.history.to_dict()}, tensors)
        best_meta, best_tensors = self.best.state()
        meta = {"epoch": run.epoch, "history": self.history.to_dict(), "elapsed": time.perf_counter() - run.t0,
                **best_meta}
        tensors.update(best_tensors)
        if run.sampler is not None:
            scalars, state = run.sampler.state()
            meta["sampler"] = scalars
            tensors.update({f"sampler.{k}": v for k, v in state.items()})
            return Checkpoint(meta, tensors)
        meta.update(step=run.steps, ewma=run.loss.avg, ewma_n=run.loss.n)
        tensors["gen"] = run.gen.get_state()
        tensors["torch_rng"] = torch.get_rng_state()  # dropout draws from the global generator
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            tensors["cuda_rng"] = torch.cuda.get_rng_state()
        tensors.update(run.average.state())
        step_meta, step_tensors = run.step.state()
        meta.update(step_meta)
        tensors.update(step_tensors)
        return Checkpoint(meta, tensors)

    def _restore(self, ckpt: Checkpoint) -> None:
        """Load a checkpoint into the model and the fit's objects."""
        meta, tensors, run = ckpt.meta, ckpt.tensors, self._run
        self.model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        self.history = History.from_dict(meta["history"])
        self.best.load_state(meta, tensors, self.history.best_epoch, next(self.model.parameters()).device)
        run.epoch, run.t0 = meta["epoch"], time.perf_counter() - meta["elapsed"]
        if run.sampler is not None:
            prefix = "sampler."
            run.sampler.load_state(meta["sampler"], {k[len(prefix):]: v for k, v in tensors.items()
                                                     if k.startswith(prefix)})
            return
        run.steps, run.loss.avg = meta["step"], meta["ewma"]
        run.loss.n = meta.get("ewma_n", meta["step"])  # checkpoints before SmoothedLoss counted in optimizer steps
        run.gen.set_state(tensors["gen"])
        torch.set_rng_state(tensors["torch_rng"])
        if "cuda_rng" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["cuda_rng"])
        run.average.load_state(tensors)
        run.step.load_state(meta, tensors)


def _steps_per_epoch(n: int, batch_size: int, world: int) -> int:
    """Batches an epoch; under DDP a last batch too small to give every rank a rating is dropped (an empty share's
    MSE is NaN)."""
    steps = math.ceil(n / batch_size)
    if world > 1 and n - (steps - 1) * batch_size < world:
        steps -= 1
    return steps
