"""One flat training loop (minGPT style) with callbacks, optimizers, learning-rate schedules and an LR finder.

The data lives on the device as three tensors; a batch is a slice of a random permutation, so there is no
DataLoader and no per-batch host work. Everything that watches training (loss history, live charts, progress,
cancel) hangs on callbacks.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .bayes import WARMUP_SWEEPS, GibbsSampler
from .bayes_fm import RelationSampler
from .config import TrainConfig, burn_in
from .fused import FusedDotStep, use_compile, use_fused


@dataclass
class Tensors:
    """Ratings as index and value tensors on one device."""

    user: torch.Tensor
    item: torch.Tensor
    rating: torch.Tensor

    def __len__(self) -> int:
        return len(self.rating)

    def to(self, device: torch.device | str) -> "Tensors":
        return Tensors(self.user.to(device), self.item.to(device), self.rating.to(device))


def pick_device(name: str = "auto") -> torch.device:
    """cuda when asked for or (auto) present, else cpu; asking for cuda without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for, but no CUDA GPU is available here (use --device cpu or auto)")
    return torch.device(name)


def smooth(values: Sequence[float], beta: float = 0.98) -> list[float]:
    """The lesson's debiased exponentially weighted moving average."""
    avg, out = 0.0, []
    for n, v in enumerate(values, 1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**n))
    return out


# ---------------------------------------------------------------- learning-rate schedules
def _cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * pct)) / 2


def lr_at(cfg: TrainConfig, step: int, total: int, steps_per_epoch: int) -> float:
    """The learning rate at `step` of `total` steps."""
    lr, pct = cfg.lr, step / max(total, 1)
    if cfg.schedule == "constant":
        return lr
    if cfg.schedule == "onecycle":
        if pct < cfg.pct_start:  # warm up from lr/div, then anneal to lr/(div*final_div), as fastai's fit_one_cycle
            return _cos(lr / cfg.div, lr, pct / cfg.pct_start)
        return _cos(lr, lr / (cfg.div * cfg.final_div), (pct - cfg.pct_start) / (1 - cfg.pct_start))
    if cfg.schedule == "cosine":
        return _cos(lr, lr / cfg.final_div, pct)
    if cfg.schedule == "cosine_restarts":  # SGDR: cycles of restart_epochs, each restart_mult times longer
        t, length = step / steps_per_epoch, cfg.restart_epochs
        while t >= length:
            t -= length
            length *= cfg.restart_mult
        return _cos(lr, lr / cfg.final_div, t / length)
    raise ValueError(f"unknown schedule {cfg.schedule!r}")


# ---------------------------------------------------------------- optimizers
def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD, SGD with momentum, Adam or AdamW; decoupled weight decay is applied by the loop (see `fit`).

    SGD's embeddings (factors and biases) form a group of their own whose rate is `cfg.emb_lr_scale` times the
    rest's (see config.EMB_LR_PER_RATING); every group's `lr_scale` is applied wherever the loop sets the rate.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    fused = next(model.parameters()).is_cuda or None
    if cfg.optimizer in ("sgd", "momentum"):
        emb = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters() if p.requires_grad}
        groups = [{"params": [p for p in params if id(p) in emb], "lr_scale": cfg.emb_lr_scale or 1.0},
                  {"params": [p for p in params if id(p) not in emb], "lr_scale": 1.0}]
        groups = [g for g in groups if g["params"]]
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum if cfg.optimizer == "momentum" else 0.0)
    if cfg.optimizer in ("adam", "adamw"):
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=fused)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def plain_step(model: nn.Module, opt: torch.optim.Optimizer, user: torch.Tensor, item: torch.Tensor,
               rating: torch.Tensor, l2: float, bias_wd: float, decay: list[torch.Tensor], wd: float,
               lr: float, layer_l2: float = 0.0, forward: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One autograd step: MSE plus the L2 penalties, then decoupled decay of `decay`, then the optimizer.

    `forward`: the module that computes predictions (the model itself, or its DistributedDataParallel wrapper).
    Returns (mse, errors) of the batch before the update.
    """
    err = (forward or model)(user, item) - rating
    mse = err.pow(2).mean()
    # Per-rating L2: the penalty is averaged over the batch like the loss, so its weight relative to the data term
    # does not shrink as the batch grows.
    loss = mse + l2 * model.penalty(user, item, bias_wd) if l2 else mse
    if layer_l2:
        loss = loss + layer_l2 * model.layer_penalty()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if decay:  # decoupled weight decay (AdamW): shrink the weights directly, outside the gradient
        with torch.no_grad():
            torch._foreach_mul_(decay, 1 - lr * wd)
    opt.step()
    return mse, err


def l2_strengths(model: nn.Module, cfg: TrainConfig) -> tuple[float, float]:
    """(per-rating L2 on the embeddings, L2 on the hidden layers): both zero unless wd_mode is l2."""
    if cfg.wd_mode != "l2":
        return 0.0, 0.0
    return cfg.wd, ((cfg.layer_wd or 0.0) if hasattr(model, "layer_penalty") else 0.0)


def decayed_params(model: nn.Module) -> list[torch.Tensor]:
    """Weights that decoupled weight decay shrinks: embeddings and layer weights, not scalar offsets."""
    return [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]


# ---------------------------------------------------------------- callbacks
@dataclass
class BatchInfo:
    """What a callback hears after each batch."""

    step: int            # 1-based optimizer step
    total_steps: int
    epoch: float         # fractional epoch (1.5 = half-way through the second)
    loss: float          # this batch's MSE
    smooth_loss: float   # debiased EWMA of the batch losses, beta 0.98
    lr: float


@dataclass
class EpochInfo:
    """Per-epoch metrics; valid_* are None without a validation set."""

    epoch: int
    train_rmse: float
    train_mae: float
    valid_rmse: float | None
    valid_mae: float | None
    seconds: float       # wall time since fit started
    lr: float
    complete: bool = True  # False for an epoch cut short by cancel


class Callback:
    """Override what you need; every hook is optional."""

    def on_fit_start(self, trainer: "Trainer") -> None: ...
    def on_batch_end(self, trainer: "Trainer", info: BatchInfo) -> None: ...
    def on_epoch_end(self, trainer: "Trainer", info: EpochInfo) -> None: ...
    def on_fit_end(self, trainer: "Trainer") -> None: ...
    def on_pretrain(self, trainer: "Trainer", sweep: int, sweeps: int) -> None:
        """A sweep of the Bayesian fit that the net's embeddings start from (before on_fit_start)."""


@dataclass
class History:
    """The recorder: batch losses, smoothed losses, learning rates and per-epoch metrics."""

    loss: list[float] = field(default_factory=list)
    smooth_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    cancelled: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("loss", "smooth_loss", "lr", "epochs", "best_epoch", "cancelled", "seconds")}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**{k: d[k] for k in ("loss", "smooth_loss", "lr", "epochs", "best_epoch", "cancelled", "seconds") if k in d})


Evaluator = Callable[[nn.Module], tuple[float, float]]  # model -> (rmse, mae) on the validation set


def _swap(params: list[torch.Tensor], values: list[torch.Tensor]) -> list[torch.Tensor]:
    """Copy `values` into `params`; returns the previous contents."""
    with torch.no_grad():
        previous = [p.detach().clone() for p in params]
        torch._foreach_copy_(params, values)
    return previous


# ---------------------------------------------------------------- the loop
class Trainer:
    """Trains `model` on `train` tensors with the settings of a resolved `TrainConfig`."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, callbacks: Sequence[Callback] = (),
                 cancel: threading.Event | None = None):
        self.model, self.cfg, self.callbacks = model, cfg, list(callbacks)
        self.cancel = cancel or threading.Event()
        self.history = History()
        self._best_rmse, self._best_state = math.inf, None  # the best validation epoch so far (keep_best)

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
        """Append an epoch's metrics; with keep_best, remember the weights of the best validation epoch so far."""
        hist = self.history
        hist.epochs.append(vars(info).copy())
        if self.cfg.keep_best and info.valid_rmse is not None and info.valid_rmse < self._best_rmse:
            self._best_rmse, hist.best_epoch = info.valid_rmse, info.epoch
            self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _finish(self, t0: float) -> History:
        """End a fit: keep the best-so-far weights rather than the last, stamp the time, tell the callbacks."""
        hist = self.history
        hist.cancelled = self.cancel.is_set()
        if self._best_state is not None and hist.best_epoch != len(hist.epochs):
            self.model.load_state_dict(self._best_state)
        hist.seconds = time.perf_counter() - t0
        self.model.eval()
        self._emit("on_fit_end")
        return hist

    def fit(self, train: Tensors, evaluate: Evaluator | None = None, resume: "Checkpoint | None" = None) -> History:
        """Run cfg.epochs epochs (or until cancel is set); returns the history.

        `resume`: a `checkpoint()` taken at the end of an epoch of this same fit (same data, settings and seed); the
        fit goes on from there as if it had never stopped. Under torch.distributed (torchrun) each rank trains on its
        share of every batch of the same permutation and DistributedDataParallel averages the gradients.
        """
        if self.cfg.optimizer == "gibbs":
            return self._fit_gibbs(train, evaluate, resume)
        cfg, model = self.cfg, self.model
        rank, world = distributed()
        n, bs = len(train), cfg.batch_size
        steps_per_epoch = math.ceil(n / bs)
        if world > 1 and n - (steps_per_epoch - 1) * bs < world:
            steps_per_epoch -= 1  # a last batch too small to give every rank a rating (an empty share's MSE is NaN)
        total = steps_per_epoch * cfg.epochs
        # The fused step computes gradients in closed form and updates only the rows a batch touches; across ranks
        # the gradients are DDP's to average, so distributed training takes the autograd path.
        fused = (FusedDotStep(model, cfg.betas, cfg.eps, cfg.wd, cfg.bias_wd, use_compile(cfg, n))
                 if use_fused(model, cfg) and world == 1 else None)
        opt = make_optimizer(model, cfg) if fused is None else None
        forward = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
        l2, layer_l2 = l2_strengths(model, cfg)
        decay = decayed_params(model) if cfg.wd_mode == "decoupled" and cfg.wd > 0 else []
        gen = torch.Generator(device=train.rating.device).manual_seed(cfg.seed)
        params = [p for p in model.parameters() if p.requires_grad]
        # Weight averaging (Polyak/EMA): the average of the recent weights generalizes better than the last
        # noisy iterate; it is what is evaluated, kept and returned. Its horizon is set in epochs.
        # The average is a dense pass over every weight, so it is updated about 16 times an epoch, not every step
        # (the tables of big data are large and a step touches few of their rows).
        ema_every = max(1, steps_per_epoch // 16)
        # Its horizon is at most an eighth of the run, so a short run does not average in its first, worst weights.
        horizon = min(cfg.ema_epochs, cfg.epochs / 8) * steps_per_epoch
        ema_decay = (1 - 1 / max(horizon, 1)) ** ema_every if cfg.ema_epochs else 0.0
        averaged = [p.detach().clone() for p in params] if ema_decay else []
        ewma, step, first_epoch, t0 = 0.0, 0, 0, time.perf_counter()
        self._loop = {"opt": opt, "fused": fused, "gen": gen, "averaged": averaged}
        if resume is not None:
            ewma, step, first_epoch, t0 = self._restore(resume)
        self._emit("on_fit_start")
        for epoch in range(first_epoch, cfg.epochs):
            model.train()
            # int32 halves the permutation's memory (160 MB at 20M ratings); indexing accepts it.
            perm = torch.randperm(n, device=train.rating.device, generator=gen, dtype=torch.int32 if n < 2**31 else torch.int64)
            sse = torch.zeros((), device=train.rating.device)
            sae = torch.zeros((), device=train.rating.device)
            seen = 0
            for b in range(steps_per_epoch):
                if self.cancel.is_set() and world == 1:  # every rank must take every step: no cancel under DDP
                    break
                idx = perm[b * bs:(b + 1) * bs]
                if world > 1:
                    idx = idx[rank::world]
                user, item, rating = train.user[idx], train.item[idx], train.rating[idx]
                lr = lr_at(cfg, step, total, steps_per_epoch)
                if fused is not None:
                    mse, err = fused(user, item, rating, lr)
                else:
                    for group in opt.param_groups:
                        group["lr"] = lr * group.get("lr_scale", 1.0)
                    mse, err = plain_step(model, opt, user, item, rating, l2, cfg.bias_wd, decay, cfg.wd, lr, layer_l2,
                                          forward)
                step += 1
                if averaged and step % ema_every == 0:  # warm-up so the average does not remember the initial weights
                    n_avg = step // ema_every
                    torch._foreach_lerp_(averaged, [p.detach() for p in params], 1 - min(ema_decay, (1 + n_avg) / (10 + n_avg)))
                with torch.no_grad():
                    sse += mse.detach() * len(idx)
                    sae += err.detach().abs().sum()
                seen += len(idx)
                if self.callbacks or b == steps_per_epoch - 1:
                    value = float(mse.detach())  # a device sync; only paid when someone listens
                    ewma = 0.98 * ewma + 0.02 * value
                    smoothed = ewma / (1 - 0.98 ** step)
                    self._record_batch(BatchInfo(step, total, epoch + (b + 1) / steps_per_epoch, value, smoothed, lr))
            if seen == 0:
                if averaged:
                    _swap(params, averaged)
                break
            if world > 1:  # the epoch's training error over every rank's share
                totals = torch.stack([sse, sae, torch.tensor(float(seen), device=sse.device)])
                torch.distributed.all_reduce(totals)
                sse, sae, seen = totals[0], totals[1], int(totals[2])
            valid_rmse = valid_mae = None
            if averaged:
                current = _swap(params, averaged)
            if evaluate is not None:
                valid_rmse, valid_mae = evaluate(model)
            info = EpochInfo(epoch + 1, math.sqrt(float(sse) / seen), float(sae) / seen, valid_rmse, valid_mae,
                             time.perf_counter() - t0, lr, complete=seen == min(n, steps_per_epoch * bs))
            self._record_epoch(info)
            if averaged and epoch < cfg.epochs - 1 and not self.cancel.is_set():
                _swap(params, current)  # keep training the raw weights; the model ends holding the average
            self._loop.update(epoch=epoch + 1, step=step, ewma=ewma, t0=t0, complete=info.complete)
            self._emit("on_epoch_end", info)
            if self.cancel.is_set() and world == 1:
                break
        return self._finish(t0)

    # ------------------------------------------------------------ checkpoints
    def checkpoint(self) -> "Checkpoint":
        """The whole state of the fit at the end of the epoch just recorded (call it from on_epoch_end): weights,
        optimizer moments, the weight average, the best epoch so far, the random generator, the history.
        `fit(..., resume=checkpoint)` goes on from it exactly."""
        loop = self._loop
        tensors = {f"model.{k}": v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        meta = {"epoch": loop["epoch"], "history": self.history.to_dict(), "best_rmse": self._best_rmse,
                "elapsed": time.perf_counter() - loop["t0"]}
        if self._best_state is not None:
            tensors.update({f"best.{k}": v.detach().cpu().clone() for k, v in self._best_state.items()})
        if "sampler" in loop:
            scalars, state = loop["sampler"].state()
            meta["sampler"] = scalars
            tensors.update({f"sampler.{k}": v for k, v in state.items()})
            return Checkpoint(meta, tensors)
        meta.update(step=loop["step"], ewma=loop["ewma"])
        tensors["gen"] = loop["gen"].get_state()
        tensors["torch_rng"] = torch.get_rng_state()  # dropout draws from the global generator
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            tensors["cuda_rng"] = torch.cuda.get_rng_state()
        tensors.update({f"avg.{i}": a.detach().cpu().clone() for i, a in enumerate(loop["averaged"])})
        if loop["fused"] is not None:
            fused = loop["fused"]
            for s, (_, m, v) in enumerate(fused.sides):
                tensors[f"fused.{s}.m"], tensors[f"fused.{s}.v"] = m.detach().cpu().clone(), v.detach().cpu().clone()
            tensors["fused.global"] = torch.tensor([float(fused.g_m), float(fused.g_v)], dtype=torch.float64)
            meta["fused_t"] = fused.t
        else:
            state = loop["opt"].state_dict()
            meta["opt_groups"] = state["param_groups"]
            meta["opt_scalars"] = {}
            for i, entry in state["state"].items():
                for key, value in entry.items():
                    if torch.is_tensor(value):
                        tensors[f"opt.{i}.{key}"] = value.detach().cpu().clone()
                    else:
                        meta["opt_scalars"][f"{i}.{key}"] = value
        return Checkpoint(meta, tensors)

    def _restore(self, ckpt: "Checkpoint") -> tuple[float, int, int, float]:
        """Load a checkpoint into the model and the loop's objects; returns (ewma, step, first epoch, t0)."""
        meta, tensors, loop = ckpt.meta, ckpt.tensors, self._loop
        self._restore_common(ckpt)
        loop["gen"].set_state(tensors["gen"])
        torch.set_rng_state(tensors["torch_rng"])
        if "cuda_rng" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["cuda_rng"])
        with torch.no_grad():
            for i, a in enumerate(loop["averaged"]):
                a.copy_(tensors[f"avg.{i}"])
        if loop["fused"] is not None:
            fused = loop["fused"]
            with torch.no_grad():
                for s, (_, m, v) in enumerate(fused.sides):
                    m.copy_(tensors[f"fused.{s}.m"])
                    v.copy_(tensors[f"fused.{s}.v"])
            g = tensors["fused.global"].tolist()
            device = self.model.global_bias.device
            fused.g_m, fused.g_v = torch.tensor(g[0], device=device), torch.tensor(g[1], device=device)
            fused.t = meta["fused_t"]
        else:
            state: dict = {}
            for key, value in tensors.items():
                if key.startswith("opt."):
                    _, i, name = key.split(".", 2)
                    state.setdefault(int(i), {})[name] = value
            for key, value in meta["opt_scalars"].items():
                i, name = key.split(".", 1)
                state.setdefault(int(i), {})[name] = value
            loop["opt"].load_state_dict({"state": state, "param_groups": meta["opt_groups"]})
        return meta["ewma"], meta["step"], meta["epoch"], time.perf_counter() - meta["elapsed"]

    def _restore_common(self, ckpt: "Checkpoint") -> None:
        meta, tensors = ckpt.meta, ckpt.tensors
        self.model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        self.history = History.from_dict(meta["history"])
        self._best_rmse = meta["best_rmse"]
        best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
        device = next(self.model.parameters()).device
        self._best_state = {k: v.to(device) for k, v in best.items()} or None

    def _fit_gibbs(self, train: Tensors, evaluate: Evaluator | None, resume: "Checkpoint | None" = None) -> History:
        """Bayesian PMF: each epoch is one Gibbs sweep; after the burn-in the model holds the average of the samples.

        The loss curve shows each sample's training MSE, over all ratings (exact, so not smoothed: the smoothed
        loss is the loss itself); the epoch metrics are those of the average, which is what is evaluated, kept and
        returned.
        """
        cfg, model = self.cfg, self.model
        sampler = (RelationSampler if cfg.implicit else GibbsSampler)(model, train.user, train.item, train.rating,
                                                                       cfg.seed)
        burn = burn_in(cfg)
        t0, first = time.perf_counter(), 1
        self._loop = {"sampler": sampler}
        if resume is not None:
            self._restore_common(resume)
            prefix = "sampler."
            sampler.load_state(resume.meta["sampler"], {k[len(prefix):]: v for k, v in resume.tensors.items()
                                                        if k.startswith(prefix)})
            first, t0 = resume.meta["epoch"] + 1, time.perf_counter() - resume.meta["elapsed"]
        self._emit("on_fit_start")
        for sweep in range(first, cfg.epochs + 1):
            if self.cancel.is_set():
                break
            if sweep == burn + 1:
                sampler.start_averaging()
            mse = sampler.sweep(warmup=sweep <= min(WARMUP_SWEEPS, burn))
            self._record_batch(BatchInfo(sweep, cfg.epochs, float(sweep), mse, mse, 0.0))
            average = sampler.mean()
            sampler.write(average)
            err = sampler.errors(average)
            valid_rmse, valid_mae = evaluate(model) if evaluate is not None else (None, None)
            info = EpochInfo(sweep, float(err.pow(2).mean().sqrt()), float(err.abs().mean()), valid_rmse, valid_mae,
                             time.perf_counter() - t0, 0.0)
            self._record_epoch(info)
            self._loop.update(epoch=sweep, t0=t0, complete=True)
            self._emit("on_epoch_end", info)
        return self._finish(t0)


@dataclass
class Checkpoint:
    """A fit's state at the end of an epoch: JSON-able scalars and named CPU tensors (saved with safetensors)."""

    meta: dict
    tensors: dict[str, torch.Tensor]


def distributed() -> tuple[int, int]:
    """(rank, world size) under torch.distributed (torchrun), else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


# ---------------------------------------------------------------- learning-rate finder
@dataclass
class LRFinderResult:
    """The sweep's learning rates and smoothed losses, and a suggested learning rate."""

    lrs: list[float]
    losses: list[float]
    suggestion: float


def find_lr(model: nn.Module, train: Tensors, cfg: TrainConfig, start: float = 1e-6, end: float = 10.0,
            steps: int = 100) -> LRFinderResult:
    """Exponential LR sweep (Leslie Smith, as fastai's lr_find) on a throwaway copy of the weights.

    Stops when the smoothed loss exceeds 4x its minimum. Suggests a rate inside the long fall of the loss (fastai's
    "valley"), safely below the minimum.
    """
    if cfg.optimizer == "gibbs":
        raise ValueError("Gibbs sampling has no learning rate to find: choose sgd, momentum, adam or adamw")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = make_optimizer(model, cfg)
    l2, layer_l2 = l2_strengths(model, cfg)
    decay = decayed_params(model) if cfg.wd_mode == "decoupled" and cfg.wd > 0 else []
    gen = torch.Generator(device=train.rating.device).manual_seed(cfg.seed)
    n, bs = len(train), cfg.batch_size
    lrs, losses, ewma, best = [], [], 0.0, math.inf
    model.train()
    for step in range(1, steps + 1):
        lr = start * (end / start) ** ((step - 1) / (steps - 1))
        for group in opt.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        idx = torch.randint(0, n, (min(bs, n),), device=train.rating.device, generator=gen)
        user, item, rating = train.user[idx], train.item[idx], train.rating[idx]
        mse, _ = plain_step(model, opt, user, item, rating, l2, cfg.bias_wd, decay, cfg.wd, lr, layer_l2)
        value = float(mse.detach())
        ewma = 0.98 * ewma + 0.02 * value
        smoothed = ewma / (1 - 0.98**step)
        if not math.isfinite(smoothed):
            break
        lrs.append(lr)
        losses.append(smoothed)
        best = min(best, smoothed)
        if step > 10 and smoothed > 4 * best:
            break
    model.load_state_dict(state)
    model.eval()
    return LRFinderResult(lrs, losses, suggest_lr(lrs, losses))


def suggest_lr(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """fastai's "valley" rule: in the longest stretch over which the smoothed loss keeps falling, the rate a half of
    the way along (in log-lr; fastai takes int(n/3) + int(n/6) steps in).

    The steepest single slope, the rule before this one, sat on the noise of the flat left end of the sweep and
    suggested about 1e-6 for every optimizer (MovieLens 100k with Adam: a run at it ended at RMSE 1.132).
    """
    if len(lrs) < 3:
        return lrs[0] if lrs else 1e-3
    run = [1] * len(losses)  # run[i]: the longest decreasing subsequence of losses ending at i
    start = end = 0
    for i in range(1, len(losses)):
        for j in range(i):
            if losses[i] < losses[j] and run[i] < run[j] + 1:
                run[i] = run[j] + 1
        if run[end] < run[i]:
            end = i
            start = end - run[end]
    third = (end - start) / 3
    return float(lrs[start + int(third) + int(third / 2)])
