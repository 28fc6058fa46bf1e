"""Weighted alternating least squares for implicit feedback (Hu, Koren and Volinsky 2008), batched on the device.

Every (user, item) pair is a preference p_ui: 1 where the user interacted with the item, 0 everywhere else. The pairs
observed get a confidence c_ui = 1 + alpha * count_ui; all the others, 1. The factors minimise
    sum over all pairs of c_ui (p_ui - x_u . y_i)^2 + reg * (sum_u |x_u|^2 + sum_i |y_i|^2),
one side at a time, each row exactly given the other side: (Y'Y + Y' (C_u - I) Y + reg I) x_u = Y' C_u p_u. The
Y'Y term over every item is one k x k product per sweep, so a row costs its own interactions, not the catalogue.

The rows of a side are solved together, as the Gibbs sampler's are: by conjugate gradients (Takacs, Pilaszy and
Tikk 2011, as `implicit` does), each step one product with Y'Y for every row and a gather, dot product and
scatter over the interactions, started from the row's last solution, so a few steps a sweep are enough; or exactly
(`cg_steps=0`), by a batched Cholesky factorisation of each row's Gram matrix (for tests and small k). On a GPU the
same code runs as a handful of large kernels per step.
"""
from __future__ import annotations

import torch

# Conjugate-gradient steps per row and sweep, from the row's last solution (implicit's default is 3). On MovieLens
# 100k's seed-1 split, 32 factors: 3 steps x 10 sweeps NDCG@10 0.4416 in 0.17 s, 2 x 10 0.4420 in 0.14 s, 2 x 8
# 0.4403 in 0.11 s (the fastest within 0.5% of the best), 2 x 6 0.4376, 1 x 10 0.3464.
CG_STEPS = 2
# The defaults, from MovieLens 100k as implicit feedback (`bench/implicit_feedback.py`; chosen on the per-user split
# of seed 1, reported on seed 42): a row's penalty grows with its interactions (ALS-WR's weighting, exponent 1: NDCG@10
# 0.4416 against 0.4333 for the best shared penalty), which lets more factors help; confidence 1 + 1 * count.
REG, REG_EXPONENT, ALPHA, SWEEPS = 0.1, 1.0, 1.0, 8


def default_factors(n_interactions: int) -> int:
    """Factors by the data's size: the power of two nearest sqrt(n) / 8, from 16 to 128 (32 for MovieLens 100k's
    80,000 training pairs, where 32 predicted better than 16 and 64 with the weighted penalty; 128 from about 650,000
    pairs)."""
    import math

    return int(min(128, max(16, 2 ** round(math.log2(max(math.sqrt(n_interactions) / 8, 1))))))
CHUNK = 1 << 16  # interactions whose outer products the exact path adds at a time (CHUNK x k x k floats)
# The interactions' other-side factors are gathered once a solve where they take at most GATHER_SHARE of the free
# memory and GATHER_MAX, else a chunk of GATHER_CHUNK interactions at a time in every product. At 17.4M pairs and 64
# factors (4.5 GB of them) gathering once took 28.1 s a sweep and 10.6 GB at peak, in chunks 35.9 s and 3.1 GB
# (`bench/implicit_feedback.py --scale`): the memory is not worth the time.
GATHER_SHARE, GATHER_MAX, GATHER_CHUNK = 0.25, 1 << 30, 1 << 21


class Side:
    """One side's rows and their interactions in CSR order (`crow`, `cols`), with each interaction's c - 1
    (alpha * count) as `extra`. Sums over a row's interactions are CSR products: SciPy's on the CPU (torch's CSR
    product is many times slower there, `bayes._Sparse`), torch's (cuSPARSE) on a GPU."""

    def __init__(self, rows: torch.Tensor, cols: torch.Tensor, extra: torch.Tensor, n_rows: int):
        order = torch.argsort(rows, stable=True)
        self.rows, self.cols, self.extra = rows[order], cols[order], extra[order]
        self.n_rows = n_rows
        self.more_reg: torch.Tensor | None = None  # each row's penalty beyond the shared one, where it has its own
        self.crow = torch.zeros(n_rows + 1, dtype=torch.int64, device=rows.device)
        self.crow[1:] = torch.cumsum(torch.bincount(self.rows, minlength=n_rows), 0)
        self._cpu = None
        if rows.device.type == "cpu":
            import scipy.sparse

            self._cpu = scipy.sparse.csr_matrix((self.extra.numpy().copy(), self.cols.numpy(), self.crow.numpy()),
                                                shape=(n_rows, int(cols.max()) + 1 if len(cols) else 0))

    def times(self, values: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """sum over each row's interactions n of values[n] * Y[cols[n]]: the CSR matrix of `values` times Y."""
        if self._cpu is not None:
            self._cpu.data = values.detach().numpy()
            return torch.from_numpy(self._cpu @ Y[:self._cpu.shape[1]].detach().numpy())
        m = torch.sparse_csr_tensor(self.crow, self.cols, values, size=(self.n_rows, Y.shape[0]))
        return m @ Y

    def rhs(self, Y: torch.Tensor) -> torch.Tensor:
        """Y' C_u p_u for every row: the sum over its interactions of (1 + alpha count) y_i."""
        return self.times(1 + self.extra.to(Y.dtype), Y)

    def dots(self, X: torch.Tensor, Y: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """x_row . y_col for every interaction; `y`: Y[cols] gathered once a solve, or None (too big to hold: the
        interactions a chunk at a time)."""
        if y is not None:
            return torch.einsum("nk,nk->n", X.index_select(0, self.rows), y)  # half the time of (a * b).sum(1)
        out = torch.empty(len(self.rows), dtype=X.dtype, device=X.device)
        for a in range(0, len(self.rows), GATHER_CHUNK):
            s = slice(a, a + GATHER_CHUNK)
            out[s] = torch.einsum("nk,nk->n", X.index_select(0, self.rows[s]), Y.index_select(0, self.cols[s]))
        return out

    def product(self, X: torch.Tensor, Y: torch.Tensor, gram: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """(Y'Y + reg_u I + Y' (C_u - I) Y) x_u for every row's x_u (`gram` = Y'Y + reg I; `y`: as `dots`)."""
        dots = self.dots(X, Y, y)
        out = X @ gram + self.times(self.extra.to(Y.dtype) * dots, Y)
        return out if self.more_reg is None else out + self.more_reg.to(X.dtype)[:, None] * X

    def exact(self, Y: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
        """Every row's exact solution, by its k x k Gram matrix and a batched Cholesky factorisation."""
        k = Y.shape[1]
        A = gram.expand(self.n_rows, k, k).clone()
        if self.more_reg is not None:
            A.diagonal(dim1=1, dim2=2).add_(self.more_reg.to(Y.dtype)[:, None])
        for a in range(0, len(self.rows), CHUNK):
            s = slice(a, a + CHUNK)
            y = Y.index_select(0, self.cols[s])
            A.index_add_(0, self.rows[s], self.extra[s].to(Y.dtype)[:, None, None] * y[:, :, None] * y[:, None, :])
        return torch.cholesky_solve(self.rhs(Y)[:, :, None], torch.linalg.cholesky(A))[:, :, 0]


def _gather_budget(device: torch.device) -> int:
    """How many bytes of gathered factors a solve may hold: GATHER_SHARE of the free memory, at most GATHER_MAX
    (1 GB where the free memory is unknown)."""
    from .cost import available_bytes

    free = available_bytes(str(device))
    return int(min(GATHER_MAX, GATHER_SHARE * free if free is not None else 1 << 30))


def solve(side: Side, X: torch.Tensor, Y: torch.Tensor, reg: float, cg_steps: int = CG_STEPS) -> torch.Tensor:
    """The rows' new factors given the other side's Y: `cg_steps` conjugate-gradient steps from X, or exact (0)."""
    gram = Y.T @ Y + reg * torch.eye(Y.shape[1], dtype=Y.dtype, device=Y.device)
    if not cg_steps:
        return side.exact(Y, gram)
    # the interactions' factors, once a solve, where they fit (`GATHER_SHARE`)
    y = Y.index_select(0, side.cols) if len(side.cols) * Y.shape[1] * Y.element_size() <= _gather_budget(Y.device) \
        else None
    X = X.clone()
    r = side.rhs(Y) - side.product(X, Y, gram, y)
    p, rs = r.clone(), (r * r).sum(1)
    tiny = torch.finfo(X.dtype).tiny
    for _ in range(cg_steps):
        Ap = side.product(p, Y, gram, y)
        step = rs / (p * Ap).sum(1).clamp(min=tiny)
        X += step[:, None] * p
        r -= step[:, None] * Ap
        rs_next = (r * r).sum(1)
        p = r + (rs_next / rs.clamp(min=tiny))[:, None] * p
        rs = rs_next
    return X


class WALS:
    """The factors of one fit: `user`, `item` (n x k, float32 on the device). `sweep()` solves every user given
    the items, then every item given the users. `counts`: each interaction's count (1 for plain pairs)."""

    def __init__(self, user: torch.Tensor, item: torch.Tensor, counts: torch.Tensor, n_users: int, n_items: int,
                 k: int, reg: float = REG, alpha: float = ALPHA, seed: int = 0, cg_steps: int = CG_STEPS,
                 reg_exponent: float = REG_EXPONENT):
        extra = alpha * counts.float()
        self.sides = {"user": Side(user, item, extra, n_users), "item": Side(item, user, extra, n_items)}
        if reg_exponent:  # a row's penalty reg * (its interactions)^exponent (ALS-WR's, Zhou et al. 2008, at 1)
            for side in self.sides.values():
                n = side.crow.diff().float().clamp(min=1)
                side.more_reg = reg * (n ** reg_exponent - 1)
        gen = torch.Generator(device=user.device).manual_seed(seed)
        # small random factors, as implicit starts: a zero start is a fixed point of the updates
        self.W = {s: torch.rand(n, k, generator=gen, device=user.device) * (0.01 / k ** 0.5)
                  for s, n in (("user", n_users), ("item", n_items))}
        self.reg, self.cg_steps = reg, cg_steps

    def sweep(self) -> None:
        self.W["user"] = solve(self.sides["user"], self.W["user"], self.W["item"], self.reg, self.cg_steps)
        self.W["item"] = solve(self.sides["item"], self.W["item"], self.W["user"], self.reg, self.cg_steps)

    def fit_errors(self) -> tuple[float, float]:
        """RMSE and MAE of the interactions' preference (1) by x_u . y_i, a chunk of interactions at a time."""
        err = 1 - self.sides["user"].dots(self.W["user"], self.W["item"], None)
        return float(err.pow(2).mean().sqrt()) if len(err) else 0.0, float(err.abs().mean()) if len(err) else 0.0

    def loss(self) -> float:
        """The objective per observed interaction (the weighted squared errors over all pairs and the penalty), from
        Y'Y and the observed pairs alone."""
        X, Y, side = self.W["user"], self.W["item"], self.sides["user"]
        every = float(((X @ (Y.T @ Y)) * X).sum())  # sum over all pairs of (x_u . y_i)^2: the zeros' errors, c = 1
        pred = side.dots(X, Y, None)  # the observed pairs' terms replace theirs
        observed = float(((1 + side.extra) * (1 - pred) ** 2 - pred ** 2).sum())
        penalty = 0.0
        for name, W in self.W.items():  # each row's penalty: reg, or with reg_exponent reg * n^exponent
            more = self.sides[name].more_reg
            penalty += float((W.pow(2).sum(1) * (self.reg + (0 if more is None else more))).sum())
        return (every + observed + penalty) / max(len(side.rows), 1)


def fold_in(Y: torch.Tensor, items: torch.Tensor, counts: torch.Tensor, reg: float, alpha: float,
            reg_exponent: float = REG_EXPONENT) -> torch.Tensor:
    """A new user's factors from the items they chose (`items`, with `counts`), against the items' factors Y: the
    user side's exact step for one more row, as if they had been in training (no retraining)."""
    k = Y.shape[1]
    y = Y.index_select(0, items)
    conf = 1 + alpha * counts.to(Y.dtype)
    row_reg = reg * max(len(items), 1) ** reg_exponent
    A = Y.T @ Y + y.T @ ((conf - 1)[:, None] * y) + row_reg * torch.eye(k, dtype=Y.dtype, device=Y.device)
    return torch.linalg.solve(A, y.T @ conf)
