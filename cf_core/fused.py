"""A fused training step for `DotProductBias` (and `DotProduct`): forward, backward and a row-wise sparse
Adam update in a handful of tensor ops, touching only the embedding rows a batch uses.

Why: a dense optimizer step reads and writes every row of both tables at every batch. With 160k users and 60k
items that is most of an epoch's memory traffic, while a batch touches a small fraction of the rows. The update
here is the one recommender systems' fused embedding kernels use (and PyTorch's `SparseAdam`): Adam moments are
kept per row and updated only for the rows in the batch ("lazy" Adam), with the bias correction of the global
step. Gradients are computed in closed form, so no autograd graph is built.

Only the l2 weight-decay mode (per-rating penalty) is fused; decoupled weight decay shrinks every row at every
step, which is what this path avoids, so it uses the plain path.
"""
from __future__ import annotations

import torch

from .models import DotProduct


class RowAdam:
    """Lazy (row-wise) Adam state for one 2-D table: moments per row, updated only where a batch has gradient."""

    def __init__(self, table: torch.Tensor):
        self.table = table
        self.m = torch.zeros_like(table)
        self.v = torch.zeros_like(table)

    def step(self, rows: torch.Tensor, grad: torch.Tensor, lr: float, betas: tuple[float, float], eps: float, t: int) -> None:
        b1, b2 = betas
        m = self.m[rows].mul_(b1).add_(grad, alpha=1 - b1)
        v = self.v[rows].mul_(b2).addcmul_(grad, grad, value=1 - b2)
        self.m[rows], self.v[rows] = m, v
        # Bias correction with the global step, as torch.optim.SparseAdam does.
        step = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt_().add_(eps))
        self.table.index_add_(0, rows, step, alpha=-lr)


def _unique_sum(index: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct rows of `index` and the summed gradient of each (rows repeat within a batch)."""
    rows, inverse = torch.unique(index, return_inverse=True)
    total = torch.zeros(len(rows), grad.shape[1], dtype=grad.dtype, device=grad.device)
    return rows, total.index_add_(0, inverse, grad)


class FusedDotStep:
    """One training step of a dot-product model with per-rating L2 and row-wise Adam; replaces autograd + optimizer."""

    def __init__(self, model: DotProduct, betas: tuple[float, float], eps: float, wd: float, bias_wd: float = 0.0):
        self.model, self.betas, self.eps, self.wd, self.bias_wd = model, tuple(betas), eps, wd, bias_wd
        self.user = model.user_factors.weight.data
        self.item = model.item_factors.weight.data
        # Biases ride along as an extra column so one gather/scatter serves both.
        self.has_bias = getattr(model, "has_bias", False)
        self.states = [RowAdam(self.user), RowAdam(self.item)]
        if self.has_bias:
            self.states += [RowAdam(model.user_bias.weight.data), RowAdam(model.item_bias.weight.data)]
        self.g_state = RowAdam(model.global_bias.data.view(1, 1))
        self.t = 0

    @torch.no_grad()
    def __call__(self, user: torch.Tensor, item: torch.Tensor, rating: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Update the model on one batch; returns (mse, errors) of the batch before the update."""
        m, n = self.model, len(rating)
        u_vec, i_vec = self.user[user], self.item[item]
        x = (u_vec * i_vec).sum(1) + m.global_bias
        if self.has_bias:
            u_b, i_b = m.user_bias.weight.data[user, 0], m.item_bias.weight.data[item, 0]
            x = x + u_b + i_b
        if m.y_range is not None:
            lo, hi = m.y_range
            s = torch.sigmoid(x)
            pred = lo + (hi - lo) * s
            dpred = (hi - lo) * s * (1 - s)
        else:
            pred, dpred = x, None
        err = pred - rating
        mse = err.pow(2).mean()
        dx = (2.0 / n) * err
        if dpred is not None:
            dx = dx * dpred
        self.t += 1
        reg = 2.0 * self.wd / n
        du = dx[:, None] * i_vec + reg * u_vec
        di = dx[:, None] * u_vec + reg * i_vec
        args = (lr, self.betas, self.eps, self.t)
        self.states[0].step(*_unique_sum(user, du), *args)
        self.states[1].step(*_unique_sum(item, di), *args)
        if self.has_bias:
            breg = 2.0 * self.wd * self.bias_wd / n
            self.states[2].step(*_unique_sum(user, (dx + breg * u_b)[:, None]), *args)
            self.states[3].step(*_unique_sum(item, (dx + breg * i_b)[:, None]), *args)
        self.g_state.step(torch.zeros(1, dtype=torch.long, device=dx.device), dx.sum().view(1, 1), *args)
        return mse, err


def can_fuse(model: torch.nn.Module, cfg) -> bool:
    """The fused step covers dot-product models trained by Adam with the per-rating L2 penalty."""
    return isinstance(model, DotProduct) and cfg.optimizer == "adam" and cfg.wd_mode == "l2"


# Above this many embedding weights the dense optimizer step costs more than the row-wise one (measured on the
# CPU here; see bench/README.md).
FUSE_ABOVE_PARAMS = 1_000_000


def use_fused(model: torch.nn.Module, cfg) -> bool:
    """cfg.fused if set, else fuse when the tables are large enough for row-wise updates to pay."""
    if not can_fuse(model, cfg):
        if cfg.fused:
            raise ValueError("the fused step needs a dot or dotbias model, the adam optimizer and wd_mode l2")
        return False
    if cfg.fused is not None:
        return cfg.fused
    n_params = model.user_factors.weight.numel() + model.item_factors.weight.numel()
    return n_params > FUSE_ABOVE_PARAMS
