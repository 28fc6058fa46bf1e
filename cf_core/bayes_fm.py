"""Bayesian factorization machine by Gibbs sampling: the dot product with what each user rated and who rated each
item, the items' genres and the day of the rating, each feature set a relation block with its own prior.

Rendle, Zhang and Koren (2019) hold the MovieLens records with a Bayesian factorization machine whose features are
the user and item ids plus implicit information: for each user the items they rated, for each item the users who
rated it, each weighted 1/sqrt(count) (SVD++, both ways), and the day of the rating. In that machine every pair of
features interacts; the pairs that vary with the rating are the ones this model keeps:

    rating = mean + b_u + c_i + w_t + P_u . Q_i + v_t . (P_u + Q_i) + noise,
    P_u = p_u + sum_j a_uj y_j          a_uj = 1/sqrt(|N(u)|) for the items j in N(u), what u rated in training;
    Q_i = q_i + sum_v b_iv z_v + sum_g e_ig x_g     b_iv alike, for who rated i; e_ig = 1/sqrt(|G(i)|), i's genres.

The rest (a user's id with the items they rated, say) is constant per user or per item and goes into b_u and c_i.
The sums are relation blocks (Rendle 2013, as myFM organises them): `sum_j a_uj y_j` is computed once per user, not
once per rating, as one sparse product. The blocks have no linear weights of their own (an FM's first-order terms):
with them MovieLens 100k predicted a little worse (0.8872 against 0.8862 with the implicit blocks, 0.8844 against
0.8841 with genres too; 120 sweeps, measured while this was built), as they only repeat b_u and c_i.

Each sweep draws, exactly given everything else:
- each user's [p_u, b_u], each item's [q_i, c_i] and each day's [v_t, w_t]: batched Cholesky solves, as in Bayesian
  PMF (`bayes.py`), over each rating's features (for a user: Q_i + v_t, and a 1 for the bias);
- each block's weights (all the y_j, all the z_v, all the x_g) at once. Their joint conditional is Gaussian but
  couples every item a user rated, so it is drawn by perturbation and a solve: x = P^-1 (b + xi) with xi ~ N(0, P)
  is an exact draw from N(P^-1 b, P^-1) (Papandreou and Yuille 2010). The solve is conjugate gradients on the
  device, preconditioned by each weight row's own k x k block, from the last draw, to a relative residual of
  CG_TOL: 1e-2 takes fewer than half the steps of 1e-4 and predicts as well on MovieLens 100k (`bench/choices.py
  --only cg-tol` prints both, for three seeds, with the steps per solve);
- the hyperparameters: a Normal-Gamma prior per dimension for each block (grouped, as libFM's and myFM's).

The fit keeps the average of the rows' conditional means (Rao-Blackwellized, as Bayesian PMF's) and of the blocks'
draws (their conditional means would cost a second solve a sweep).

Implicit information comes from the training ratings only: validation pairs never enter N(u) or N(i) (the
stricter of the paper's two protocols). The fit ends as one ordinary `DotProductBias`: its user embedding is P_u and
its item embedding Q_i (the posterior means), so the explore pages, the PCA of the item factors and a new user's
fold-in work unchanged; the day's terms are the model's `day` (`models.DayTerms`). Ratings are predicted as the
average of the kept draws' predictions (`models.PosteriorDraws`, as in `bayes.py`), each draw with its own blocks
folded in and its own day's terms (the rating's day where its time is known, the average day's where not); top-N and
similar items leave the day out. On MovieLens 100k (implicit, genres and day, 120 sweeps) the product of the
averaged weights gave 0.8866, the average of the draws' predictions 0.8816 (burn-in 2), and 0.8797 at 300 sweeps
(measured while this was built).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from .bayes import GibbsSampler, _csr_of, _Sparse, _sparse
from .day_grams import DayGrams

CG_TOL, CG_MAX_ITER = 1e-2, 200
IMPLICIT = ("implicit_item", "implicit_user")  # y (on the user side: items rated), z (on the item side: raters)


@dataclass
class Block:
    """A relation block: a sparse matrix M (this side's rows x the block's rows) whose product with the block's
    weights is added to each row's factors; MT is its transpose, MT2 the transpose of its squares."""

    side: str
    M: _Sparse
    MT: _Sparse
    MT2: _Sparse


def relation_block(side: str, rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, n_rows: int,
                   n_cols: int) -> Block:
    """The block with M[rows[n], cols[n]] = values[n] (each pair once)."""
    return Block(side, _csr_of(rows, cols, values, n_rows, n_cols), _csr_of(cols, rows, values, n_cols, n_rows),
                 _csr_of(cols, rows, values**2, n_cols, n_rows))


def normalized(rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """1/sqrt(count) for each entry, the count being how many entries its row has."""
    return 1 / torch.bincount(rows, minlength=n_rows).double().clamp(min=1).sqrt()[rows]


class RelationSampler(GibbsSampler):
    """Gibbs sampling of the factorization machine of the module docstring; the same interface as `GibbsSampler`.

    blocks: which to add, of IMPLICIT, "genres" (from the item table) and "day" (from the timestamps); genres: (item
    rows, genre columns, number of genres), one entry per item and genre it has (the genres block needs it); day:
    each rating's day, 0 to the number of days - 1 (the day block's).
    """

    def __init__(self, model: nn.Module, user: torch.Tensor, item: torch.Tensor, rating: torch.Tensor,
                 seed: int = 0, blocks: tuple[str, ...] = IMPLICIT,
                 genres: tuple[torch.Tensor, torch.Tensor, int] | None = None, day: torch.Tensor | None = None,
                 levels: torch.Tensor | None = None):
        super().__init__(model, user, item, rating, seed, levels)
        nu, ni, dt, dev = self.W["user"].shape[0], self.W["item"].shape[0], torch.float64, self.device
        self.blocks: dict[str, Block] = {}
        if "implicit_item" in blocks:  # users x items: a_uj = 1/sqrt(|N(u)|)
            self.blocks["implicit_item"] = relation_block("user", self.user, self.item, normalized(self.user, nu),
                                                          nu, ni)
        if "implicit_user" in blocks:  # items x users
            self.blocks["implicit_user"] = relation_block("item", self.item, self.user, normalized(self.item, ni),
                                                          ni, nu)
        if "genres" in blocks and genres is not None and len(genres[0]):
            rows, cols, n_genres = genres
            rows, cols = rows.long().to(dev), cols.long().to(dev)
            self.blocks["genres"] = relation_block("item", rows, cols, normalized(rows, ni), ni, n_genres)
        for name, block in self.blocks.items():  # they start at zero: the fit begins as Bayesian PMF's
            self.W[name] = torch.zeros(block.MT.shape[0], self.k, dtype=dt, device=dev)
            self.hyper[name] = (torch.zeros(self.k, dtype=dt, device=dev), torch.ones(self.k, dtype=dt, device=dev))
        self.day = day.long().to(dev) if "day" in blocks and day is not None and len(day) else None
        if self.day is not None:  # a third side, with rows of its own ([v_t, w_t]) and its own prior
            n_days = int(self.day.max()) + 1
            self.csr["day"] = self._csr(self.day, self.user, n_days)
            self.rows["day"] = self._rows(self.csr["day"][0])
            self.W["day"] = torch.zeros(n_days, self.d, dtype=dt, device=dev)
            self.hyper["day"] = (torch.zeros(self.d, dtype=dt, device=dev), torch.ones(self.d, dtype=dt, device=dev))
            self.draws = self._attach_draws(n_days)
            self.day_grams = DayGrams(self.user, self.item, self.day, nu, ni, n_days)
        self._sweep_grams: dict[str, torch.Tensor] | None = None  # per side, within a sweep (`_sample_weights`)
        self._segments: dict[str, _Sparse] = {}  # per side, rows x its ratings (`_segment_sum`)
        self._block_sums: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # per block, (weights, M @ weights)
        # per side, each rating's user, item and day (None without the day block), and the rating, in its CSR order
        self._ordered = {side: tuple(None if x is None else x[order] for x in (self.user, self.item, self.day))
                         for side, (_, _, order) in self.csr.items()}
        self._ordered_rating = {side: self.rating[order] for side, (_, _, order) in self.csr.items()}
        self.cg_iterations: list[int] = []  # per solve, for the benchmark and tests
        self.cg_unconverged = 0  # solves that stopped at CG_MAX_ITER

    # ------------------------------------------------------------ the model
    def sums(self, weights: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Per side, what its blocks add to each row's factors (rows x k): once per row. A block's product with
        the sampler's own weights is kept until they are drawn again (each draw is a new tensor)."""
        W = weights or self.W
        out = {side: torch.zeros(len(W[side]), self.k, dtype=W[side].dtype, device=self.device)
               for side in ("user", "item")}
        for name, block in self.blocks.items():
            known = self._block_sums.get(name)
            if known is None or known[0] is not W[name]:
                known = (W[name], block.M @ W[name])
                if W is self.W:
                    self._block_sums[name] = known
            out[block.side] += known[1]
        return out

    def totals(self, weights: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Each side's rows plus their blocks, [P_u | b_u] and [Q_i | c_i]: the two sides as one dot product."""
        W = weights or self.W
        out = {}
        for side, s in self.sums(W).items():
            out[side] = W[side].clone()
            out[side][:, :self.k] += s
        return out

    def _parts(self, W: dict[str, torch.Tensor], side: str | None = None):
        """Per training rating (in `side`'s CSR order, or as given): the user's and item's totals, the day's row (or
        None) and the prediction; and the totals per row."""
        T, k = self.totals(W), self.k
        user, item, day = self._ordered[side] if side else (self.user, self.item, self.day)
        P, Q = T["user"].index_select(0, user), T["item"].index_select(0, item)
        V = W["day"].index_select(0, day) if self.day is not None else None
        pred = (P[:, :k] * Q[:, :k]).sum(1)
        if V is not None:
            pred += (V[:, :k] * (P[:, :k] + Q[:, :k])).sum(1)
        if self.bias:
            pred += P[:, k] + Q[:, k] + (V[:, k] if V is not None else 0)
        return P, Q, V, pred, T

    def residuals(self, weights: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        return self.rating - self._parts(weights or self.W)[3]

    def _set_target(self, rating: torch.Tensor) -> None:
        super()._set_target(rating)
        self._ordered_rating = {side: rating[order] for side, (_, _, order) in self.csr.items()}

    def write(self, weights: dict[str, torch.Tensor]) -> None:
        super().write(self.totals(weights))
        if self.day is not None:
            with torch.no_grad():
                self.model.day.factors.weight.copy_(weights["day"][:, :self.k] * self.scale**0.5)
                if self.bias:
                    self.model.day.bias.weight.copy_(weights["day"][:, self.k:] * self.scale)

    # ------------------------------------------------------------ each rating's features
    def _design(self, side: str, own: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """The features of `side`'s ratings for a weight row of that side (the other sides' vectors, and a 1 where
        `own` has a bias column), each rating's target in the side's CSR order (the rating less everything but
        `own`'s part, `own` holding per row of the side what is being solved for: its rows, or one block's sums),
        and whether the features are per row of the other side (no day block: a user's ratings' features are their
        items' vectors) rather than per rating (in CSR order)."""
        P, Q, V, pred, T = self._parts(self.W, side)  # in the side's CSR order
        k, rows = self.k, self.rows[side]
        y = self._ordered_rating[side] - pred
        by_other = V is None and side != "day"
        X = {"user": Q[:, :k], "item": P[:, :k], "day": P[:, :k] + Q[:, :k]}[side]
        if V is not None and side != "day":
            X = X + V[:, :k]
        F = T["item" if side == "user" else "user"][:, :k] if by_other else X
        if own.shape[1] > k:
            F, X = (torch.cat([A, torch.ones(len(A), 1, dtype=A.dtype, device=A.device)], 1) for A in (F, X))
        return F, y + (own.index_select(0, rows) * X).sum(1), by_other

    def _segment_sum(self, side: str, values: torch.Tensor) -> torch.Tensor:
        """Per row of `side`, the sum of `values` (one row per rating, in the side's CSR order): a sparse product."""
        if side not in self._segments:
            crow, n = self.csr[side][0], len(self.rating)
            self._segments[side] = _sparse(crow, torch.arange(n, device=crow.device),
                                           torch.ones(n, dtype=torch.float64, device=crow.device), n)
        return self._segments[side] @ values

    def _rating_sum(self, side: str, values: torch.Tensor, X: torch.Tensor, by_other: bool) -> torch.Tensor:
        """Per row of `side`: the sum over its ratings of values_n X_n (features as `_design` gives them)."""
        if by_other:
            crow, col, _ = self.csr[side]
            return _sparse(crow, col, values, len(X)) @ X
        return self._segment_sum(side, values[:, None] * X)

    def _grams(self, side: str, X: torch.Tensor, y: torch.Tensor, by_other: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row of `side`: the Gram matrix of its ratings' features and the right-hand side."""
        w = X.shape[1]
        if by_other:  # the ratings matrix (rows x other rows, sparse) times one outer product per other row
            G = self.ones[side] @ (X[:, :, None] * X[:, None, :]).reshape(len(X), w * w)
            return G.reshape(len(G), w, w), self._rating_sum(side, y, X, True)
        T, k = self.totals(), self.k  # with the day: from the sides' vectors (`day_grams.py`)
        vectors = {"user": T["user"][:, :k], "item": T["item"][:, :k], "day": self.W["day"][:, :k]}
        return self.day_grams.grams(side, vectors, w > k), self._rating_sum(side, y, X, False)

    def _normal_equations(self, side: str) -> tuple[torch.Tensor, torch.Tensor]:
        G, h = self._grams(side, *self._design(side, self.W[side]))
        if self._sweep_grams is not None:  # the side's blocks, drawn next, have the same features: reuse them
            self._sweep_grams[side] = G[:, :self.k, :self.k]
        return G, h

    # ------------------------------------------------------------ the relation blocks: perturb and solve
    def _block_system(self, name: str):
        """What the joint conditional of block `name` needs: per row of its side, the Gram matrix G_r of its ratings'
        features and the right-hand side h_r; and the features as `_design` gives them."""
        block = self.blocks[name]
        X, y, by_other = self._design(block.side, block.M @ self.W[name])
        known = (self._sweep_grams or {}).get(block.side)
        if known is not None:
            return known, self._rating_sum(block.side, y, X, by_other), X, by_other
        G, h = self._grams(block.side, X, y, by_other)
        return G, h, X, by_other

    def _sample_block(self, name: str) -> None:
        """Draw block `name` (all its rows at once) from its joint Gaussian conditional."""
        x = self.solve_block(name)
        self.W[name] = x
        if self._sum is not None:
            self._sum[name] += x

    def solve_block(self, name: str, draw: bool = True) -> torch.Tensor:
        """Block `name`'s joint conditional: a draw from it, or (draw=False) its mean, by preconditioned conjugate
        gradients on P x = b (+ xi)."""
        block = self.blocks[name]
        M, MT, MT2 = block.M, block.MT, block.MT2
        G, h, X, by_other = self._block_system(name)
        m, lam = self.hyper[name]
        alpha = self.noise_precision
        W = self.W[name]

        def op(x: torch.Tensor) -> torch.Tensor:  # P x = alpha M^T (G (M x)) + lambda x
            # Batched k x k products as broadcasts: torch's bmm of many tiny matrices costs 50 times more on a CPU.
            return alpha * (MT @ (G * (M @ x)[:, None, :]).sum(2)) + lam * x

        # xi ~ N(0, P): the likelihood's part from one standard normal per rating, the prior's per weight.
        eps = torch.randn(len(self.rating), dtype=W.dtype, device=self.device, generator=self.gen)
        noise = self._rating_sum(block.side, eps, X, by_other)  # per row: sum over its ratings of eps_n X_n
        xi = alpha**0.5 * (MT @ noise) + lam.sqrt() * torch.randn(W.shape, dtype=W.dtype, device=self.device,
                                                                   generator=self.gen)
        b = alpha * (MT @ h) + lam * m + (xi if draw else 0)
        # Preconditioner: each weight row's own block of P, alpha sum_r M_rf^2 G_r + diag(lambda).
        k = self.k
        D = (alpha * (MT2 @ G.reshape(len(G), k * k))).reshape(len(W), k, k) + torch.diag_embed(lam.expand(len(W), k))
        Dinv = torch.cholesky_inverse(torch.linalg.cholesky(D))
        x = W.clone()  # the last draw: a warm start (the draw is exact whatever the start, once solved)
        r = b - op(x)
        z = (Dinv * r[:, None, :]).sum(2)
        p, rz = z.clone(), float((r * z).sum())
        norm_b = float(b.norm()) or 1.0
        if float(r.norm()) <= CG_TOL * norm_b:  # the start already solves it
            self.cg_iterations.append(0)
            return x
        for it in range(1, CG_MAX_ITER + 1):  # noqa: B007 -- read after the loop: the number of steps taken
            Ap = op(p)
            step = rz / float((p * Ap).sum())
            x += step * p
            r -= step * Ap
            if float(r.norm()) <= CG_TOL * norm_b:
                break
            z = (Dinv * r[:, None, :]).sum(2)
            rz, rz_old = float((r * z).sum()), rz
            p = z + (rz / rz_old) * p
        else:  # not converged: the draw is approximate; say so once
            if not self.cg_unconverged:
                warnings.warn(f"conjugate gradients stopped after {CG_MAX_ITER} steps at a relative residual of "
                              f"{float(r.norm()) / norm_b:.1e} (target {CG_TOL:.0e}): the draws of {name} are "
                              "approximate",
                              RuntimeWarning, stacklevel=2)
            self.cg_unconverged += 1
        self.cg_iterations.append(it)
        return x

    # ------------------------------------------------------------ a sweep
    def _sample_weights(self) -> None:
        """Users, their blocks (what they rated), items, theirs (who rated them, their genres), days: each given the
        rest."""
        # A side's features (the other sides' vectors) stay as they are while the side's rows and then its blocks
        # are drawn: the Gram matrices of the rows' draw serve the blocks' too.
        self._sweep_grams = {}
        for side in ("user", "item"):
            self._sample_side(side)
            for name, block in self.blocks.items():
                if block.side == side:
                    self._sample_block(name)
        if self.day is not None:
            self._sample_side("day")
        self._sweep_grams = None
