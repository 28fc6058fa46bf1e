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

import math

import torch

from .models import DotProduct


class RowAdam:
    """Lazy (row-wise) Adam state for tables that share rows (a factor table and its bias column): moments per
    row, updated only where a batch has gradient."""

    def __init__(self, *tables: torch.Tensor):
        self.tables = tables
        widths = [t.shape[1] for t in tables]
        self.cols = [slice(sum(widths[:j]), sum(widths[:j + 1])) for j in range(len(tables))]
        self.m = torch.zeros(tables[0].shape[0], sum(widths), dtype=tables[0].dtype, device=tables[0].device)
        self.v = torch.zeros_like(self.m)

    def step(self, rows: torch.Tensor, grad: torch.Tensor, lr: float, betas: tuple[float, float], eps: float, t: int) -> None:
        b1, b2 = betas
        m = self.m.index_select(0, rows).mul_(b1).add_(grad, alpha=1 - b1)
        v = self.v.index_select(0, rows).mul_(b2).addcmul_(grad, grad, value=1 - b2)
        self.m.index_copy_(0, rows, m)
        self.v.index_copy_(0, rows, v)
        # Bias correction with the global step, as torch.optim.SparseAdam does.
        update = m.div_(v.sqrt_().div_(math.sqrt(1 - b2**t)).add_(eps))
        for table, cols in zip(self.tables, self.cols):
            table.index_add_(0, rows, update[:, cols], alpha=-lr / (1 - b1**t))


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
        self.has_bias = getattr(model, "has_bias", False)
        if self.has_bias:  # a bias is one more column of its side's table: one scatter and one Adam state serve both
            self.states = [RowAdam(self.user, model.user_bias.weight.data), RowAdam(self.item, model.item_bias.weight.data)]
        else:
            self.states = [RowAdam(self.user), RowAdam(self.item)]
        self.g_state = RowAdam(model.global_bias.data.view(1, 1))
        self._zero = torch.zeros(1, dtype=torch.long, device=self.user.device)
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
        if self.has_bias:
            breg = 2.0 * self.wd * self.bias_wd / n
            du = torch.cat([du, (dx + breg * u_b)[:, None]], 1)
            di = torch.cat([di, (dx + breg * i_b)[:, None]], 1)
        args = (lr, self.betas, self.eps, self.t)
        for state, index, grad in ((self.states[0], user, du), (self.states[1], item, di)):
            state.step(*_unique_sum(index, grad), *args)
        self.g_state.step(self._zero, dx.sum().view(1, 1), *args)
        return mse, err


def can_fuse(model: torch.nn.Module, cfg) -> bool:
    """The fused step covers dot-product models trained by Adam with the per-rating L2 penalty."""
    return isinstance(model, DotProduct) and cfg.optimizer == "adam" and cfg.wd_mode == "l2"




def use_fused(model: torch.nn.Module, cfg) -> bool:
    """cfg.fused if set, else wherever it applies (it was faster at every size measured: bench/README.md)."""
    if not can_fuse(model, cfg):
        if cfg.fused:
            raise ValueError("the fused step needs a dot or dotbias model, the adam optimizer and wd_mode l2")
        return False
    return cfg.fused is not False
