"""What training tells its watchers: the batch and epoch records, the callback hooks, the history, the smoothed
loss, and the keep-best recorder."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from .train import Trainer


@dataclass
class BatchInfo:
    """What a callback hears after each batch."""

    step: int            # 1-based optimizer step
    total_steps: int
    epoch: float         # fractional epoch (1.5 = half-way through the second)
    loss: float          # this batch's MSE
    smooth_loss: float   # debiased EWMA of the batch losses, beta 0.98 (`SmoothedLoss`)
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

    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_batch_end(self, trainer: Trainer, info: BatchInfo) -> None: ...
    def on_epoch_end(self, trainer: Trainer, info: EpochInfo) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...
    def on_pretrain(self, trainer: Trainer, sweep: int, sweeps: int) -> None:
        """A sweep of the Bayesian fit that the net's embeddings start from (before on_fit_start)."""


_HISTORY_KEYS = ("loss", "smooth_loss", "lr", "epochs", "best_epoch", "cancelled", "seconds")


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
        return {k: getattr(self, k) for k in _HISTORY_KEYS}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls(**{k: d[k] for k in _HISTORY_KEYS if k in d})


class SmoothedLoss:
    """The lesson's exponentially weighted moving average of the batch losses, debiased for its first values
    (avg = 0.98 avg + 0.02 loss; shown as avg / (1 - 0.98^n)); the training loop and the LR finder both use it."""

    def __init__(self, beta: float = 0.98):
        self.beta, self.avg, self.n = beta, 0.0, 0

    def __call__(self, value: float) -> float:
        """Take one more loss; returns the debiased average so far."""
        self.n += 1
        self.avg = self.beta * self.avg + (1 - self.beta) * value
        return self.avg / (1 - self.beta**self.n)


class KeepBest:
    """With keep_best, remembers the weights of the best validation epoch and puts them back at the end of the fit
    (fastai's SaveModelCallback with `every_epoch=False`)."""

    def __init__(self, enabled: bool):
        self.enabled, self.rmse, self.epoch = enabled, math.inf, None
        self.weights: dict[str, torch.Tensor] | None = None

    def update(self, model: nn.Module, info: EpochInfo) -> None:
        """Call with the weights that were evaluated in the model."""
        if self.enabled and info.valid_rmse is not None and info.valid_rmse < self.rmse:
            self.rmse, self.epoch = info.valid_rmse, info.epoch
            self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def restore(self, model: nn.Module, last_epoch: int) -> None:
        """Load the best weights unless the last epoch was the best."""
        if self.weights is not None and self.epoch != last_epoch:
            model.load_state_dict(self.weights)

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        tensors = {f"best.{k}": v.detach().cpu().clone() for k, v in (self.weights or {}).items()}
        return {"best_rmse": self.rmse}, tensors

    def load_state(self, meta: dict, tensors: dict[str, torch.Tensor], best_epoch: int | None,
                   device: torch.device) -> None:
        self.rmse, self.epoch = meta["best_rmse"], best_epoch
        best = {k[len("best."):]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
        self.weights = best or None
