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

import warnings

import torch

from .models import DotProduct


def _adam_rows(m: torch.Tensor, v: torch.Tensor, rows: torch.Tensor, grad: torch.Tensor, b1: float, b2: float,
               eps: float, v_correction: float) -> torch.Tensor:
    """Update the moments of `rows` in place; returns Adam's step direction for them (before lr and m's correction)."""
    m_rows = m.index_select(0, rows) * b1 + grad * (1 - b1)
    v_rows = v.index_select(0, rows) * b2 + grad * grad * (1 - b2)
    m.index_copy_(0, rows, m_rows)
    v.index_copy_(0, rows, v_rows)
    return m_rows / ((v_rows / v_correction).sqrt() + eps)


def _batch_grads(user_t: torch.Tensor, item_t: torch.Tensor, user_b: torch.Tensor | None, item_b: torch.Tensor | None,
                 global_b: torch.Tensor, user: torch.Tensor, item: torch.Tensor, rating: torch.Tensor,
                 lo: float, hi: float, squash: bool, reg: float, breg: float, n_batch: int):
    """Forward and closed-form backward of (a chunk of) a batch of n_batch ratings: (errors, d loss/d global bias,
    user grads, item grads), one gradient row per rating.

    Each row's gradient gets its bias gradient as one more column. The loss is the batch MSE plus the per-rating
    L2 penalty (reg = 2 wd / n_batch).
    """
    u_vec, i_vec = user_t[user], item_t[item]
    x = (u_vec * i_vec).sum(1) + global_b
    if user_b is not None:
        u_b, i_b = user_b[user, 0], item_b[item, 0]
        x = x + u_b + i_b
    if squash:
        s = torch.sigmoid(x)
        err = lo + (hi - lo) * s - rating
        dx = (2.0 / n_batch) * err * ((hi - lo) * s * (1 - s))
    else:
        err = x - rating
        dx = (2.0 / n_batch) * err
    du = dx[:, None] * i_vec + reg * u_vec
    di = dx[:, None] * u_vec + reg * i_vec
    if user_b is not None:
        du = torch.cat([du, (dx + breg * u_b)[:, None]], 1)
        di = torch.cat([di, (dx + breg * i_b)[:, None]], 1)
    return err, dx.sum(), du, di


_compiled: dict = {}
GRAD_CHUNK = 65_536  # ratings whose gradient rows are materialised at once


def _kernels(compile: bool):
    """The two hot functions, compiled by torch.compile (one fused loop each instead of a dozen passes over the
    batch) when asked, else eager."""
    if not compile:
        return _batch_grads, _adam_rows
    if not _compiled:
        _compiled["grads"] = torch.compile(_batch_grads, dynamic=True)
        _compiled["adam"] = torch.compile(_adam_rows, dynamic=True)
    return _compiled["grads"], _compiled["adam"]


class FusedDotStep:
    """One training step of a dot-product model with per-rating L2 and row-wise Adam; replaces autograd + optimizer.

    A bias is one more column of its side's table: one scatter and one Adam state serve both.
    """

    def __init__(self, model: DotProduct, betas: tuple[float, float], eps: float, wd: float, bias_wd: float = 0.0,
                 compile: bool = False):
        self.model, self.betas, self.eps, self.wd, self.bias_wd = model, tuple(betas), eps, wd, bias_wd
        self.has_bias = getattr(model, "has_bias", False)
        self.sides = []
        for name in ("user", "item"):
            tables = [getattr(model, f"{name}_factors").weight.data]
            if self.has_bias:
                tables.append(getattr(model, f"{name}_bias").weight.data)
            width = sum(t.shape[1] for t in tables)
            state = torch.zeros(tables[0].shape[0], width, dtype=tables[0].dtype, device=tables[0].device)
            self.sides.append((tables, state, torch.zeros_like(state)))
        self.g_m = self.g_v = 0.0
        self.grads, self.adam = _kernels(compile)
        self.t = 0

    def _run(self, kernel: str, *args):
        """Call self.grads or self.adam; if compiled code fails (no C++ compiler, an unsupported device), switch
        both to the eager functions, which compute the same."""
        try:
            return getattr(self, kernel)(*args)
        except Exception as exc:
            if self.grads is _batch_grads:
                raise
            warnings.warn(f"torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); using the eager step",
                          stacklevel=2)
            self.grads, self.adam = _kernels(False)
            return getattr(self, kernel)(*args)

    @torch.no_grad()
    def __call__(self, user: torch.Tensor, item: torch.Tensor, rating: torch.Tensor,
                 lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Update the model on one batch; returns (mse, errors) of the batch before the update."""
        model, n = self.model, len(rating)
        (u_tabs, _, _), (i_tabs, _, _) = self.sides
        squash = model.y_range is not None
        lo, hi = model.y_range if squash else (0.0, 1.0)
        sides = [torch.unique(index, return_inverse=True) for index in (user, item)]
        totals = [torch.zeros(len(rows), m.shape[1], dtype=m.dtype, device=m.device)
                  for (rows, _), (_, m, _) in zip(sides, self.sides)]
        errors, d_global = [], 0.0
        # The gradient rows of a big batch are computed a chunk at a time and summed per distinct row at once, so
        # the batch's temporaries stay small (at 25M ratings the batch is 262,144 ratings).
        for start in range(0, n, GRAD_CHUNK):
            part = slice(start, start + GRAD_CHUNK)
            err, d_g, du, di = self._run(
                "grads", u_tabs[0], i_tabs[0],
                u_tabs[1] if self.has_bias else None, i_tabs[1] if self.has_bias else None,
                model.global_bias.data, user[part], item[part], rating[part], float(lo), float(hi), squash,
                2.0 * self.wd / n, 2.0 * self.wd * self.bias_wd / n, n)
            # The scatter of repeated rows stays eager: compiled, it becomes atomic adds, which were slower here.
            for total, (_, inverse), grad in zip(totals, sides, (du, di)):
                total.index_add_(0, inverse[part], grad)
            errors.append(err)
            d_global = d_global + d_g
        err = errors[0] if len(errors) == 1 else torch.cat(errors)
        self.t += 1
        b1, b2 = self.betas
        # Bias corrections with the global step, as torch.optim.SparseAdam does.
        step_size, v_correction = lr / (1 - b1**self.t), 1 - b2**self.t
        # (Updating a small table whole, masked to the touched rows, was measured too: no faster at 100k ratings,
        # 40% slower at 25M.)
        for (tables, m, v), (rows, _), total in zip(self.sides, sides, totals):
            rows = rows.long()  # index_copy_ takes int64 only
            update = self._run("adam", m, v, rows, total, b1, b2, self.eps, v_correction)
            col = 0
            for table in tables:
                table.index_add_(0, rows, update[:, col:col + table.shape[1]], alpha=-step_size)
                col += table.shape[1]
        # The global bias is one scalar: plain Adam, kept on the device (no sync).
        self.g_m = b1 * self.g_m + (1 - b1) * d_global
        self.g_v = b2 * self.g_v + (1 - b2) * d_global * d_global
        model.global_bias.data.sub_(step_size * self.g_m / ((self.g_v / v_correction).sqrt() + self.eps))
        return err.pow(2).mean(), err

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """The Adam moments and step count, for a checkpoint: (JSON-able scalars, CPU tensors)."""
        tensors = {}
        for s, (_, m, v) in enumerate(self.sides):
            tensors[f"fused.{s}.m"], tensors[f"fused.{s}.v"] = m.detach().cpu().clone(), v.detach().cpu().clone()
        tensors["fused.global"] = torch.tensor([float(self.g_m), float(self.g_v)], dtype=torch.float64)
        return {"fused_t": self.t}, tensors

    def load_state(self, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
        """Put back what `state` returned."""
        with torch.no_grad():
            for s, (_, m, v) in enumerate(self.sides):
                m.copy_(tensors[f"fused.{s}.m"])
                v.copy_(tensors[f"fused.{s}.v"])
        g_m, g_v = tensors["fused.global"].tolist()
        device = self.model.global_bias.device
        self.g_m, self.g_v = torch.tensor(g_m, device=device), torch.tensor(g_v, device=device)
        self.t = meta["fused_t"]


def can_fuse(model: torch.nn.Module, cfg) -> bool:
    """The fused step covers dot-product models trained by Adam with the per-rating L2 penalty."""
    return isinstance(model, DotProduct) and cfg.optimizer == "adam" and cfg.wd_mode == "l2"


# Compiling costs seconds once per process; it pays from about this many training ratings per epoch.
COMPILE_FROM_RATINGS = 2_000_000


def use_compile(cfg, n_ratings: int) -> bool:
    """cfg.compile if set, else compile the fused step for big data."""
    return cfg.compile if cfg.compile is not None else n_ratings >= COMPILE_FROM_RATINGS


def use_fused(model: torch.nn.Module, cfg) -> bool:
    """cfg.fused if set, else wherever it applies (it was faster at every size measured: bench/README.md)."""
    if not can_fuse(model, cfg):
        if cfg.fused:
            raise ValueError("the fused step needs a dot or dotbias model, the adam optimizer and wd_mode l2")
        return False
    return cfg.fused is not False
