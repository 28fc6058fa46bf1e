"""Bayesian probabilistic matrix factorization by Gibbs sampling: the dot-product models fitted without an optimizer.

The lesson's model, rating = mean + user_bias + item_bias + user . item + noise, is probabilistic matrix
factorization. Gradient descent finds one setting of its weights (the most probable one under the L2 penalty's
Gaussian prior). Salakhutdinov and Mnih's Bayesian PMF (2008) instead averages the predictions of many settings
drawn from the posterior, and learns the prior's mean and precision and the noise level from the data rather than
taking a weight decay. On small data that average predicts better (MovieLens 100k, random 80/20 split: valid RMSE
0.903, against 0.910 for the tuned Adam fit; `bench/ceiling_ml100k.py`).

Every conditional is Gaussian, so one sweep draws each user's factors and bias exactly given the items', then each
item's given the users', as batched Cholesky solves, then the hyperparameters. Each prior has a mean and
precision per dimension with a Normal-Gamma hyperprior (as libFM's MCMC); the noise precision has a Gamma prior.

The model is linear (no sigmoid `y_range`: a Gaussian conditional needs a linear model); predictions are clipped to
the rating scale as always. The fit predicts ratings as Bayesian PMF does: the average of the predictions of the
draws after the burn-in (the posterior predictive mean). It keeps them in the model (`models.PosteriorDraws`; all of
them while they fit in DRAWS_MAX and DRAWS_BYTES, then every second, every fourth... evenly spaced over the whole
run). The model's embeddings are the posterior mean of the weights: the average, over the same sweeps, of each
row's conditional mean (Rao-Blackwellized: the same expectation as averaging the draws, with less noise); the PCA,
similar items, top-N and fold-in use them, one ordinary `DotProductBias`. The mean of p . q is not the product of
the means: on MovieLens 100k (implicit blocks and genres, 120 sweeps, burn-in 20) the draws' average predicts
0.8840 where the product of the mean weights gives 0.8841, and with a burn-in of 5, 0.8822 against 0.8833 (measured
while this was built; `bench/accuracy.py` prints the fit's figures).
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from .models import PosteriorDraws
from .ordinal import OrderedProbit

# Normal-Gamma hyperprior: precision ~ Gamma(A0, B0); the prior mean ~ N(0, 1 / (BETA0 * precision)).
A0 = B0 = BETA0 = 1.0
# The first sweeps are alternating least squares (see `sweep`): this many, with this per-rating L2 (ALS-WR's lambda).
WARMUP_SWEEPS, WARMUP_L2 = 2, 0.1
# The draws kept for prediction (`models.PosteriorDraws`): at most this many, and at most this many bytes of them.
DRAWS_MAX, DRAWS_BYTES = 256, 64 << 20


class _Sparse:
    """A CSR matrix that multiplies dense matrices: torch's CSR on a GPU (cuSPARSE); SciPy's on the CPU, where
    torch's CSR product is 40 times slower (0.44 ms against 17.6 ms for 80,000 ratings x 10 columns, measured here)
    and shares the tensors' memory both ways."""

    def __init__(self, crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, n_cols: int):
        self.shape = (len(crow) - 1, n_cols)
        if values.device.type == "cpu":
            import scipy.sparse

            self.cpu = scipy.sparse.csr_matrix((values.numpy(), col.numpy(), crow.numpy()), shape=self.shape)
        else:
            self.cpu = None
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                self.gpu = torch.sparse_csr_tensor(crow, col, values, size=self.shape, check_invariants=False)

    def __matmul__(self, dense: torch.Tensor) -> torch.Tensor:
        if self.cpu is not None:
            return torch.from_numpy(self.cpu @ dense.detach().numpy())
        return self.gpu @ dense


def _sparse(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, n_cols: int) -> _Sparse:
    """A CSR matrix (rows x n_cols) from row pointers, column indices and values, for products with dense ones."""
    return _Sparse(crow, col, values, n_cols)


def _csr_of(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, n_rows: int, n_cols: int) -> _Sparse:
    """The n_rows x n_cols CSR matrix with values[n] at (rows[n], cols[n])."""
    crow, col, order = GibbsSampler._csr(rows, cols, n_rows)
    return _sparse(crow, col, values[order], n_cols)


def rating_spread(rating: torch.Tensor) -> float:
    """The unit the sampler standardizes ratings by: their standard deviation (1 for a single rating, never 0)."""
    return max(float(rating.double().std()), 1e-6) if len(rating) > 1 else 1.0


class GibbsSampler:
    """Draws the weights of a `DotProduct` or `DotProductBias` (y_range None) from their posterior, in place.

    `sweep()` draws one sample; `mean()` is the running posterior mean since `start_averaging()`.
    Computes in float64 (the Cholesky factors of popular items' precisions need it) and writes float32 weights.
    """

    def __init__(self, model: nn.Module, user: torch.Tensor, item: torch.Tensor, rating: torch.Tensor,
                 seed: int = 0, levels: torch.Tensor | None = None):
        """levels: the ratings' distinct values, ascending, for the ordered-probit output (`ordinal.py`); None: the
        Gaussian output."""
        if getattr(model, "y_range", None) is not None:
            raise ValueError("Gibbs sampling fits the linear dot product: turn off the sigmoid y_range")
        self.model = model
        self.device = rating.device
        self.user, self.item = user.long(), item.long()
        # The sampler works on standardized ratings, so its hyperpriors mean the same on every rating scale; the
        # model's weights are these times the scale (biases) or its root (factors, which multiply in pairs).
        self.mean_rating = float(model.global_bias.detach())  # with no y_range the offset is the mean rating itself
        self.scale = rating_spread(rating)
        self.observed = rating.double()  # in rating units
        # What the conditionals regress on: the standardized ratings, or with the ordered probit their latent values
        self.rating = (self.observed - self.mean_rating) / self.scale
        self.bias = bool(getattr(model, "has_bias", False))
        self.k = model.user_factors.weight.shape[1]
        self.d = self.k + self.bias
        self.gen = torch.Generator(device=self.device).manual_seed(seed)
        self.probit = None if levels is None else OrderedProbit(rating, levels, self.mean_rating, self.scale, self.gen)
        self.noise_precision = 1.0
        # weights as float64 [factors | bias] per row
        self.W = {"user": self._read("user"), "item": self._read("item")}
        # Each side's ratings as a sparse rows x other-rows matrix (CSR): (row pointers, other row, rating order).
        self.csr = {side: self._csr(own, other, self.W[side].shape[0])
                    for side, own, other in (("user", self.user, self.item), ("item", self.item, self.user))}
        # Per side, which ratings each row has (ones: rows x other rows) and each rating's row, in CSR order.
        n_other = {"user": self.W["item"].shape[0], "item": self.W["user"].shape[0]}
        self.ones = {side: _sparse(crow, col, torch.ones(len(col), dtype=torch.float64, device=self.device),
                                   n_other[side]) for side, (crow, col, _) in self.csr.items()}
        self.rows = {side: self._rows(crow) for side, (crow, _, _) in self.csr.items()}
        zeros = torch.zeros(self.d, dtype=torch.float64, device=self.device)
        self.hyper = {side: (zeros.clone(), torch.ones_like(zeros)) for side in self.W}  # prior mean, precision
        self._sum: dict[str, torch.Tensor] | None = None
        self.n_averaged = 0
        self._sse: float | None = None  # of the current sample, once known
        self.n_drawn, self.thin = 0, 1  # draws since the burn-in; every how many of them are kept
        self._pred_sum: torch.Tensor | None = None  # the sum of those draws' predictions of the training ratings
        self._residuals: torch.Tensor | None = None  # of the current sample, once known
        self.draws = self._attach_draws()

    def _attach_draws(self, n_days: int = 0) -> PosteriorDraws:
        """Give the model an empty `draws` (PosteriorDraws), as many as DRAWS_MAX and DRAWS_BYTES allow (an even
        number, at least 2), for `n_days` days too."""
        rows = self.W["user"].shape[0] + self.W["item"].shape[0] + n_days
        capacity = min(DRAWS_MAX, DRAWS_BYTES // (4 * (self.k + 1) * rows)) // 2 * 2
        levels = None if self.probit is None else self.probit.levels - self.mean_rating  # about the mean
        self.model.draws = PosteriorDraws(max(capacity, 2), self.W["user"].shape[0], self.W["item"].shape[0], self.k,
                                          n_days, levels, self.scale).to(self.device)
        return self.model.draws

    # ------------------------------------------------------------ weights in and out of the model
    def _read(self, side: str) -> torch.Tensor:
        w = getattr(self.model, f"{side}_factors").weight.detach().double() / self.scale**0.5
        if self.bias:
            w = torch.cat([w, getattr(self.model, f"{side}_bias").weight.detach().double() / self.scale], 1)
        return w

    def totals(self, weights: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Each side's [factors | bias] rows, as one dot product (here, the weights themselves)."""
        return weights or self.W

    def _units(self, w: torch.Tensor) -> torch.Tensor:
        """[factors | bias] rows in rating units (float32; a bias of 0 where the model has none)."""
        out = torch.zeros(len(w), self.k + 1, dtype=torch.float32, device=w.device)
        out[:, :self.k] = w[:, :self.k] * self.scale**0.5
        if self.bias:
            out[:, self.k] = w[:, self.k] * self.scale
        return out

    def _keep_draw(self) -> None:
        """Put this sweep's draw into the model's `draws`, if it is one of those kept: every `thin`-th since the
        burn-in. When they are full, every second one goes and `thin` doubles, so the kept draws stay evenly spaced
        over the whole run."""
        j, draws = self.n_drawn, self.draws
        self.n_drawn += 1
        if j % self.thin:
            return
        if int(draws.n_kept) == len(draws.users):
            half = len(draws.users) // 2
            for buf in (draws.users, draws.items, draws.days, draws.cutpoints):
                buf[:half] = buf[0::2].clone()
            draws.n_kept.fill_(half)
            self.thin *= 2
            if j % self.thin:
                return
        slot, T = int(draws.n_kept), self.totals()
        draws.users[slot], draws.items[slot] = self._units(T["user"]), self._units(T["item"])
        if "day" in self.W:
            draws.days[slot] = self._units(self.W["day"])
        if self.probit is not None:  # in rating units about the mean, as the draws' predictions
            draws.cutpoints[slot] = (self.probit.tau * self.scale).float()
        draws.n_kept += 1

    def write(self, weights: dict[str, torch.Tensor]) -> None:
        """Copy [factors | bias] rows into the model's embeddings, in rating units."""
        with torch.no_grad():
            for side, w in weights.items():
                getattr(self.model, f"{side}_factors").weight.copy_(w[:, :self.k] * self.scale**0.5)
                if self.bias:
                    getattr(self.model, f"{side}_bias").weight.copy_(w[:, self.k:] * self.scale)

    @staticmethod
    def _rows(crow: torch.Tensor) -> torch.Tensor:
        """Each entry's row, in CSR order, from the row pointers."""
        return torch.repeat_interleave(torch.arange(len(crow) - 1, device=crow.device), crow[1:] - crow[:-1])

    @staticmethod
    def _csr(own: torch.Tensor, other: torch.Tensor, n_rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        order = torch.argsort(own, stable=True)
        crow = torch.zeros(n_rows + 1, dtype=torch.long, device=own.device)
        crow[1:] = torch.bincount(own, minlength=n_rows).cumsum(0)
        return crow, other[order], order

    # ------------------------------------------------------------ sampling
    def residuals(self, weights: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Standardized rating - prediction of the current sample (or of `weights`), for every training rating."""
        P, Q = (weights or self.W)["user"], (weights or self.W)["item"]
        if self.bias:  # [p, b_u, 1] . [q, 1, c_i] = p . q + b_u + c_i: one row-wise dot product
            P = torch.cat([P, torch.ones_like(P[:, :1])], 1)
            Q = torch.cat([Q[:, :self.k], torch.ones_like(Q[:, :1]), Q[:, self.k:]], 1)
        return self.rating - (P.index_select(0, self.user) * Q.index_select(0, self.item)).sum(1)

    def errors(self, weights: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Rating - prediction in rating units, for every training rating."""
        return self.observed - self._predicted(self.rating - self.residuals(weights))

    def _predicted(self, f: torch.Tensor) -> torch.Tensor:
        """The ratings predicted from the model's (standardized or latent) outputs f: their expected values under
        the ordered probit's current cutpoints, or f in rating units."""
        return self.probit.expected(f) if self.probit is not None else self.mean_rating + self.scale * f

    def _set_target(self, rating: torch.Tensor) -> None:
        """Regress on `rating` (the ordered probit's latent values) from now on."""
        self.rating, self._sse, self._residuals = rating, None, None

    def _gamma(self, shape: torch.Tensor) -> torch.Tensor:
        return torch._standard_gamma(shape, generator=self.gen)

    def _sample_hyper(self) -> None:
        sse = self._sse if self._sse is not None else float(self.residuals().pow(2).sum())
        n = len(self.rating)
        shape = torch.tensor(A0 + n / 2, dtype=torch.float64, device=self.device)
        self.noise_precision = float(self._gamma(shape)) / (B0 + sse / 2) if self.probit is None else 1.0
        for side, W in self.W.items():  # one prior per block, as wide as its rows
            m, _ = self.hyper[side]
            rows, d = W.shape
            shape = torch.full((d,), A0 + (rows + 1) / 2, dtype=torch.float64, device=self.device)
            precision = self._gamma(shape) / (B0 + ((W - m).pow(2).sum(0) + BETA0 * m.pow(2)) / 2)
            spread = (1 / (precision * (rows + BETA0))).sqrt()
            m = W.sum(0) / (rows + BETA0) + spread * torch.randn(d, dtype=torch.float64, device=self.device,
                                                                 generator=self.gen)
            self.hyper[side] = (m, precision)

    def _features(self, side: str) -> tuple[torch.Tensor, torch.Tensor]:
        """What `side`'s rows are regressed on: the other side's factor rows, and each rating's target (in the
        side's CSR order) before the other side's bias is taken off."""
        other = "item" if side == "user" else "user"
        return self.W[other][:, :self.k], self.rating[self.csr[side][2]]

    def _normal_equations(self, side: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Each of `side`'s rows' Gram matrix of its ratings' features (rows, d, d) and right-hand side (rows, d)."""
        crow, col, _ = self.csr[side]
        other = "item" if side == "user" else "user"
        k, d, n_rows = self.k, self.d, self.W[side].shape[0]
        # The features of this side's rows are the other side's factors (and a 1, for this side's bias). A row's
        # Gram matrix sums its ratings' feature outer products: the ratings matrix (rows x other rows, sparse)
        # times the other side's outer products, one per other row, not one per rating.
        X, y = self._features(side)
        if self.bias:
            X = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], 1)
            y = y - self.W[other][col, k]
        outer = (X[:, :, None] * X[:, None, :]).reshape(len(X), d * d)
        return (self.ones[side] @ outer).reshape(n_rows, d, d), _sparse(crow, col, y, len(X)) @ X

    def conditional(self, side: str, row_precision: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Every row of `side`'s Gaussian conditional given the other side: (mean, Cholesky factor of the precision).

        row_precision: (rows, d) prior precisions around 0, in place of the sampled prior.
        """
        d, n_rows = self.d, self.W[side].shape[0]
        gram, rhs = self._normal_equations(side)
        m, precision = self.hyper[side]
        if row_precision is not None:
            m, precision = torch.zeros_like(m), row_precision
        alpha = self.noise_precision
        chol = torch.linalg.cholesky(alpha * gram + torch.diag_embed(precision.expand(n_rows, d)))
        return torch.cholesky_solve((alpha * rhs + precision * m)[:, :, None], chol)[:, :, 0], chol

    def _sample_side(self, side: str) -> None:
        """Draw every row of `side` from its conditional: mean + L^-T z has covariance (L L^T)^-1."""
        mean, chol = self.conditional(side)
        z = torch.randn(*mean.shape, 1, dtype=mean.dtype, device=mean.device, generator=self.gen)
        self.W[side] = mean + torch.linalg.solve_triangular(chol.transpose(1, 2), z, upper=True)[:, :, 0]
        if self._sum is not None:  # Rao-Blackwellized: average the conditional means, not the noisier draws
            self._sum[side] += mean

    def _sample_weights(self) -> None:
        """A sweep's draws of the weights, each block given the others: users, then items."""
        self._sample_side("user")
        self._sample_side("item")

    def sweep(self, warmup: bool = False) -> float:
        """One Gibbs sweep (hyperparameters, users, items); returns the new sample's training MSE (rating units).

        warmup=True makes it an alternating-least-squares step instead: each row set to its conditional mean under a
        fixed per-rating L2 of WARMUP_L2 (ALS-WR). From small random weights, sampling from the start can sit for
        many sweeps near the all-zero solution, where the sampled prior precision is as large as the weights are
        small (measured while developing this sampler, 1M synthetic ratings, 120 sweeps: 0.754 without these steps,
        0.587 with two).
        """
        if warmup:
            self.als_step(WARMUP_L2)
        else:
            if self.probit is not None:  # the cutpoints, then the latent ratings, given the current sample
                f = self.rating - (self._residuals if self._residuals is not None else self.residuals())
                self.probit.draw_cutpoints(f)
                self._set_target(self.probit.draw_latent(f))
            self._sample_hyper()
            self._sample_weights()
        residuals = self._residuals = self.residuals()
        prediction = self._predicted(self.rating - residuals)
        if self._sum is not None and not warmup:
            self._keep_draw()
            self._pred_sum = prediction if self._pred_sum is None else self._pred_sum + prediction
        if self._sum is not None:
            self.n_averaged += 1
        self._sse = float(residuals.pow(2).sum())
        return float((self.observed - prediction).pow(2).mean())

    def train_errors(self) -> torch.Tensor:
        """Rating - prediction in rating units, for every training rating, of what the fit predicts with: the
        average of the draws since the burn-in (the kept draws are these, thinned); before it, the current sample."""
        if self._pred_sum is None:
            return self.errors()
        return self.observed - self._pred_sum / self.n_drawn

    def als_step(self, l2: float) -> None:
        """Set every user's, then every item's, weights to their conditional mean under a per-rating L2 of `l2`
        (ALS-WR), with the noise precision of the standardized ratings."""
        self.noise_precision = 1 / max(float(self.rating.var()), 1e-6)  # standardized: about 1, unless constant
        for side in ("user", "item"):
            crow = self.csr[side][0]
            counts = (crow[1:] - crow[:-1]).double()[:, None]
            self.W[side] = self.conditional(side, self.noise_precision * l2 * counts)[0]

    def start_averaging(self) -> None:
        """Average the samples from the next sweep on (the ones before are the burn-in)."""
        self._sum = {side: torch.zeros_like(w) for side, w in self.W.items()}
        self.n_averaged = 0

    def mean(self) -> dict[str, torch.Tensor]:
        """The average of the samples so far (the current sample before averaging starts)."""
        if not self.n_averaged:
            return self.W
        return {side: s / self.n_averaged for side, s in self._sum.items()}

    # ------------------------------------------------------------ checkpoints
    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """(scalars, tensors): everything a later sampler needs to go on exactly where this one is."""
        tensors = {f"W.{s}": w for s, w in self.W.items()}
        for side, (m, p) in self.hyper.items():
            tensors[f"hyper.{side}.mean"], tensors[f"hyper.{side}.precision"] = m, p
        if self._sum is not None:
            tensors.update({f"sum.{s}": v for s, v in self._sum.items()})
        if self._pred_sum is not None:  # in rating units ("pred_sum", in standardized ones, before the probit)
            tensors["pred_sum_rating"] = self._pred_sum
        if self.probit is not None:
            tensors["rating"] = self.rating  # the latent values
            scalars_probit, tensors_probit = self.probit.state()
            tensors.update(tensors_probit)
        tensors["gen"] = self.gen.get_state()
        scalars = {"noise_precision": self.noise_precision, "n_averaged": self.n_averaged,
                   "averaging": self._sum is not None, "n_drawn": self.n_drawn, "thin": self.thin}
        if self.probit is not None:
            scalars["probit"] = scalars_probit
        return scalars, {k: v.detach().cpu().clone() for k, v in tensors.items()}

    def load_state(self, scalars: dict, tensors: dict[str, torch.Tensor]) -> None:
        dev = self.device
        # Copies: the sweeps add to the sums in place, and the checkpoint may be resumed from again.
        self.W = {s: tensors[f"W.{s}"].to(dev, copy=True) for s in self.W}  # every block this sampler has
        self.hyper = {s: (tensors[f"hyper.{s}.mean"].to(dev, copy=True),
                          tensors[f"hyper.{s}.precision"].to(dev, copy=True))
                      for s in self.W}
        self._sum = {s: tensors[f"sum.{s}"].to(dev, copy=True) for s in self.W} if scalars["averaging"] else None
        self.noise_precision, self.n_averaged = scalars["noise_precision"], scalars["n_averaged"]
        self.gen.set_state(tensors["gen"])
        self.n_drawn, self.thin = scalars.get("n_drawn", 0), scalars.get("thin", 1)  # the draws: in the model's state
        self._pred_sum = tensors["pred_sum_rating"].to(dev, copy=True) if "pred_sum_rating" in tensors else None
        self._sse = self._residuals = None
        if self.probit is not None:
            self.probit.load_state(scalars["probit"], tensors)
            self._set_target(tensors["rating"].to(dev, copy=True))
