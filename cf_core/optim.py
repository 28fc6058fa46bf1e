"""What changes the weights during training: learning-rate schedules, optimizers, the step and the weight average.

A step is anything with `step(user, item, rating, lr) -> (mse, errors)` and a checkpointable state: the autograd step
here (every model, every optimizer) and the fused dot-product step of `fused.py` (closed-form gradients, row-wise
Adam) both are one.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import torch
from torch import nn

from .config import TrainConfig


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
    """SGD, SGD with momentum, Adam or AdamW; decoupled weight decay is applied by the step (see `AutogradStep`).

    SGD's embeddings (factors and biases) form a group of their own whose rate is `cfg.emb_lr_scale` times the
    rest's (see config.EMB_LR_PER_RATING); every group's `lr_scale` is applied wherever the step sets the rate.
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


class Step(Protocol):
    """One optimizer step on a batch, and its state for a checkpoint."""

    def __call__(self, user: torch.Tensor, item: torch.Tensor, rating: torch.Tensor,
                 lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Update the model on one batch at rate `lr`; returns (mse, errors) of the batch before the update."""

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """(JSON-able scalars, CPU tensors) that `load_state` puts back."""

    def load_state(self, meta: dict, tensors: dict[str, torch.Tensor]) -> None: ...


class AutogradStep:
    """MSE plus the L2 penalties by autograd, then decoupled decay (AdamW), then a torch optimizer's update.

    `forward`: the module that computes predictions (the model itself, or its DistributedDataParallel wrapper).
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig, forward: nn.Module | None = None):
        self.model, self.forward = model, forward or model
        self.opt = make_optimizer(model, cfg)
        # Per-rating L2 on the embeddings, L2 on the net's hidden layers: both zero unless wd_mode is l2.
        l2_mode = cfg.wd_mode == "l2"
        self.l2 = cfg.wd if l2_mode else 0.0
        self.bias_l2 = self.l2 * cfg.bias_wd if getattr(model, "has_bias", False) else 0.0
        self.layer_l2 = (cfg.layer_wd or 0.0) if l2_mode and hasattr(model, "layer_penalty") else 0.0
        # Decoupled decay shrinks embeddings and layer weights, not scalar offsets.
        self.decay = ([p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
                      if cfg.wd_mode == "decoupled" and cfg.wd > 0 else [])
        self.wd = cfg.wd

    def __call__(self, user: torch.Tensor, item: torch.Tensor, rating: torch.Tensor,
                 lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Update the model on one batch; returns (mse, errors) of the batch before the update."""
        for group in self.opt.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        mse, err = self.loss(user, item, rating)
        # Per-rating L2: the penalty is averaged over the batch like the loss, so its weight relative to the data
        # term does not shrink as the batch grows.
        loss = mse + self.l2 * self.model.penalty(user, item) if self.l2 else mse
        if self.bias_l2:
            loss = loss + self.bias_l2 * self.model.bias_penalty(user, item)
        if self.layer_l2:
            loss = loss + self.layer_l2 * self.model.layer_penalty()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.decay:  # decoupled weight decay (AdamW): shrink the weights directly, outside the gradient
            with torch.no_grad():
                torch._foreach_mul_(self.decay, 1 - lr * self.wd)
        self.opt.step()
        return mse, err

    def loss(self, user: torch.Tensor, item: torch.Tensor, rating: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's data term and its errors: the squared errors of the ratings."""
        err = self.forward(user, item) - rating
        return err.pow(2).mean(), err

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """The optimizer's state dict, split into scalars and tensors."""
        state = self.opt.state_dict()
        meta, tensors = {"opt_groups": state["param_groups"], "opt_scalars": {}}, {}
        for i, entry in state["state"].items():
            for key, value in entry.items():
                if torch.is_tensor(value):
                    tensors[f"opt.{i}.{key}"] = value.detach().cpu().clone()
                else:
                    meta["opt_scalars"][f"{i}.{key}"] = value
        return meta, tensors

    def load_state(self, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
        """Put back what `state` returned."""
        state: dict = {}
        for key, value in tensors.items():
            if key.startswith("opt."):
                _, i, name = key.split(".", 2)
                state.setdefault(int(i), {})[name] = value
        for key, value in meta["opt_scalars"].items():
            i, name = key.split(".", 1)
            state.setdefault(int(i), {})[name] = value
        self.opt.load_state_dict({"state": state, "param_groups": meta["opt_groups"]})


# ---------------------------------------------------------------- weight averaging
class WeightAverage:
    """Polyak/EMA averaging: the average of the recent weights generalizes better than the last noisy iterate; it is
    what is evaluated, kept and returned (`applied`, `apply`). Off (every method a no-op) when cfg.ema_epochs is 0.

    The average is a dense pass over every weight, so it is updated about 16 times an epoch, not every step (the
    tables of big data are large and a step touches few of their rows). Its horizon is set in epochs, at most an
    eighth of the run, so a short run does not average in its first, worst weights.
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig, steps_per_epoch: int):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.every = max(1, steps_per_epoch // 16)
        horizon = min(cfg.ema_epochs, cfg.epochs / 8) * steps_per_epoch
        self.decay = (1 - 1 / max(horizon, 1)) ** self.every if cfg.ema_epochs else 0.0
        self.averaged = [p.detach().clone() for p in self.params] if self.decay else []

    def update(self, step: int) -> None:
        """Fold the current weights in, every `every` steps (`step` is 1-based)."""
        if self.averaged and step % self.every == 0:
            n = step // self.every  # a warm-up, so the average does not remember the initial weights
            weight = 1 - min(self.decay, (1 + n) / (10 + n))
            torch._foreach_lerp_(self.averaged, [p.detach() for p in self.params], weight)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Inside the block the model holds the averaged weights; after it, its own again (training goes on)."""
        if not self.averaged:
            yield
            return
        with torch.no_grad():
            raw = [p.detach().clone() for p in self.params]
            torch._foreach_copy_(self.params, self.averaged)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, raw)

    def apply(self) -> None:
        """Leave the averaged weights in the model: the end of training."""
        if self.averaged:
            with torch.no_grad():
                torch._foreach_copy_(self.params, self.averaged)

    def state(self) -> dict[str, torch.Tensor]:
        return {f"avg.{i}": a.detach().cpu().clone() for i, a in enumerate(self.averaged)}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for i, a in enumerate(self.averaged):
                a.copy_(tensors[f"avg.{i}"])


class RankingStep(AutogradStep):
    """Implicit feedback by a gradient optimizer: each interaction (u, i) of the batch against items drawn at random
    as its negatives. bce: binary cross-entropy of sigmoid(x_ui) = 1 and, for `negatives` draws j, sigmoid(x_uj)
    = 0 (the lesson's dot product with a sigmoid, trained on what was chosen and what was not); bpr: -log
    sigmoid(x_ui - x_uj) for one draw j (Rendle et al. 2009). The penalties are those of the rows the batch
    used, as the rating models'. The errors returned are the interactions' 1 - sigmoid(x_ui)."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, n_items: int, gen: torch.Generator,
                 forward: nn.Module | None = None):
        super().__init__(model, cfg, forward)
        self.kind, self.negatives, self.n_items, self.gen = cfg.implicit_loss, cfg.negatives, n_items, gen

    def loss(self, user: torch.Tensor, item: torch.Tensor, rating: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = 1 if self.kind == "bpr" else self.negatives
        other = torch.randint(0, self.n_items, (len(user) * k,), device=user.device, generator=self.gen)
        pos = self.forward(user, item)
        neg = self.forward(user.repeat_interleave(k), other)
        if self.kind == "bpr":
            loss = -torch.nn.functional.logsigmoid(pos - neg).mean()
        else:
            logits = torch.cat([pos, neg])
            labels = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        return loss, 1 - torch.sigmoid(pos.detach())
