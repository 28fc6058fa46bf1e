"""Bayesian SVD++ both ways by Gibbs sampling: the dot product with what each user rated and who rated each item.

Rendle, Zhang and Koren (2019) hold the MovieLens records with a Bayesian factorization machine whose features are
the user and item ids plus implicit information: for each user the items they rated, for each item the users who
rated it, each weighted 1/sqrt(count) (SVD++, both ways). In that machine every pair of features interacts; the
pairs that vary with both the user and the item are the ones this model keeps:

    rating = mean + b_u + c_i + (p_u + sum_j a_uj y_j) . (q_i + sum_v b_iv z_v) + noise,
    a_uj = 1 / sqrt(|N(u)|) for the items j in N(u), what u rated in training (b_iv alike, for who rated i).

The rest (a user's id with the items they rated, say) is constant per user or per item and goes into b_u and c_i.
The sums are relation blocks (Rendle 2013, as myFM organises them): `sum_j a_uj y_j` is computed once per user, not
once per rating, as one sparse product.

Each sweep draws, exactly given everything else:
- each user's [p_u, b_u] and each item's [q_i, c_i]: batched Cholesky solves, as in Bayesian PMF (`bayes.py`);
- all the y_j (and all the z_v) at once. Their joint conditional is Gaussian but couples every item a user rated,
  so it is drawn by perturbation and a solve: x = P^-1 (b + xi) with xi ~ N(0, P) is an exact draw from N(P^-1 b,
  P^-1) (Papandreou and Yuille 2010). The solve is conjugate gradients on the device, preconditioned by each
  item's own k x k block, from the last draw, to a relative residual of CG_TOL: 1e-2 takes fewer than half the
  steps of 1e-4 and predicts as well on MovieLens 100k (`bench/choices.py --only cg-tol` prints both, for three
  seeds, with the steps per solve);
- the hyperparameters: a Normal-Gamma prior per dimension for each block (grouped, as libFM's and myFM's).

The fit keeps the average of the id rows' conditional means (Rao-Blackwellized, as Bayesian PMF's) and of the
implicit blocks' draws (their conditional means would cost a second solve a sweep).

Implicit information comes from the training ratings only: validation pairs never enter N(u) or N(i) (the
stricter of the paper's two protocols). The fit ends as one ordinary `DotProductBias`: its user embedding is
p_u + sum_j a_uj y_j and its item embedding q_i + sum_v b_iv z_v (the posterior means), so the explore pages, the
PCA of the item factors and a new user's fold-in work unchanged.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from .bayes import GibbsSampler, _sparse

CG_TOL, CG_MAX_ITER = 1e-2, 200
IMPLICIT = ("implicit_item", "implicit_user")  # y (on the user side: items rated), z (on the item side: raters)


class RelationSampler(GibbsSampler):
    """Gibbs sampling of Bayesian SVD++ both ways (module docstring); the same interface as `GibbsSampler`."""

    def __init__(self, model: nn.Module, user: torch.Tensor, item: torch.Tensor, rating: torch.Tensor,
                 seed: int = 0, blocks: tuple[str, ...] = IMPLICIT):
        super().__init__(model, user, item, rating, seed)
        self.blocks = tuple(b for b in IMPLICIT if b in blocks)
        nu, ni = self.W["user"].shape[0], self.W["item"].shape[0]
        dt = torch.float64
        # The relation blocks as sparse matrices, from the ratings' CSR by user and by item (same sparsity).
        counts = {side: (c[1:] - c[:-1]).to(dt) for side, (c, _, _) in self.csr.items()}
        weight = {side: 1 / counts[side].clamp(min=1).sqrt() for side in counts}
        (cu, colu, _), (ci, coli, _) = self.csr["user"], self.csr["item"]
        rows_u, rows_i = self.rows["user"], self.rows["item"]
        # A: users x items (a_u in row u), and its transpose (items x users); B: items x users, and its transpose.
        self.M = {"implicit_item": (_sparse(cu, colu, weight["user"][rows_u], ni),
                                    _sparse(ci, coli, weight["user"][coli], nu),
                                    _sparse(ci, coli, weight["user"][coli] ** 2, nu)),
                  "implicit_user": (_sparse(ci, coli, weight["item"][rows_i], nu),
                                    _sparse(cu, colu, weight["item"][colu], ni),
                                    _sparse(cu, colu, weight["item"][colu] ** 2, ni))}
        for name in self.blocks:  # they start at zero: the fit begins as Bayesian PMF's
            rows = ni if name == "implicit_item" else nu
            self.W[name] = torch.zeros(rows, self.k, dtype=dt, device=self.device)
            self.hyper[name] = (torch.zeros(self.k, dtype=dt, device=self.device),
                                torch.ones(self.k, dtype=dt, device=self.device))
        self.cg_iterations: list[int] = []  # per solve, for the benchmark and tests
        self.cg_unconverged = 0  # solves that stopped at CG_MAX_ITER

    # ------------------------------------------------------------ the model's two sides
    def sums(self, weights: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum_j a_uj y_j per user, sum_v b_iv z_v per item): the relation blocks, once per row."""
        W = weights or self.W
        nu, ni = W["user"].shape[0], W["item"].shape[0]
        ybar = self.M["implicit_item"][0] @ W["implicit_item"] if "implicit_item" in W else \
            torch.zeros(nu, self.k, dtype=torch.float64, device=self.device)
        zbar = self.M["implicit_user"][0] @ W["implicit_user"] if "implicit_user" in W else \
            torch.zeros(ni, self.k, dtype=torch.float64, device=self.device)
        return ybar, zbar

    def totals(self, weights: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """[p_u + ybar_u | b_u] and [q_i + zbar_i | c_i]: the two sides as one dot product with biases."""
        W = weights or self.W
        ybar, zbar = self.sums(W)
        user, item = W["user"].clone(), W["item"].clone()
        user[:, :self.k] += ybar
        item[:, :self.k] += zbar
        return {"user": user, "item": item}

    def residuals(self, weights: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        return super().residuals(self.totals(weights))

    def write(self, weights: dict[str, torch.Tensor]) -> None:
        super().write(self.totals(weights))

    # ------------------------------------------------------------ the ids' rows: batched Cholesky
    def _features(self, side: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Each user's [p_u, b_u] (or item's [q_i, c_i]) is regressed on the other side's total vector; this side's
        relation-block sum is an offset taken off the targets (the Cholesky solve is GibbsSampler.conditional)."""
        _, col, order = self.csr[side]
        other = "item" if side == "user" else "user"
        ybar, zbar = self.sums()
        mine, theirs = (ybar, zbar) if side == "user" else (zbar, ybar)
        F = self.W[other][:, :self.k] + theirs  # the other side's total vector
        return F, self.rating[order] - (mine.index_select(0, self.rows[side]) * F.index_select(0, col)).sum(1)

    # ------------------------------------------------------------ the relation blocks: perturb and solve
    def _block_system(self, name: str):
        """What the joint conditional of block `name` needs: per-row Gram matrices G_r (of the other side's vectors
        over the row's ratings), right-hand sides h_r, the vectors per rating and the targets (in CSR order)."""
        k = self.k
        side, other = ("user", "item") if name == "implicit_item" else ("item", "user")
        crow, col, order = self.csr[side]
        n_rows = self.W[side].shape[0]
        ybar, zbar = self.sums()
        # The other side's total vector multiplies this block's sum; this side's own factors stay as they are.
        F = self.W[other][:, :k] + (zbar if other == "item" else ybar)
        rows = self.rows[side]
        own = self.W[side][:, :k]
        t = self.rating[order] - (own.index_select(0, rows) * F.index_select(0, col)).sum(1)
        if self.bias:
            t = t - self.W[side][rows, k] - self.W[other][col, k]
        outer = (F[:, :, None] * F[:, None, :]).reshape(len(F), k * k)
        G = (self.ones[side] @ outer).reshape(n_rows, k, k)
        h = _sparse(crow, col, t, len(F)) @ F
        return G, h, F, crow, col

    def _sample_block(self, name: str) -> None:
        """Draw block `name` (all its rows at once) from its joint Gaussian conditional."""
        x = self.solve_block(name)
        self.W[name] = x
        if self._sum is not None:
            self._sum[name] += x

    def solve_block(self, name: str, draw: bool = True) -> torch.Tensor:
        """Block `name`'s joint conditional: a draw from it, or (draw=False) its mean, by preconditioned conjugate
        gradients on P x = b (+ xi)."""
        M, MT, MT2 = self.M[name]
        G, h, F, crow, col = self._block_system(name)
        m, lam = self.hyper[name]
        alpha = self.noise_precision
        W = self.W[name]

        def op(x: torch.Tensor) -> torch.Tensor:  # P x = alpha M^T (G (M x)) + lambda x
            # Batched k x k products as broadcasts: torch's bmm of many tiny matrices costs 50 times more on a CPU.
            return alpha * (MT @ (G * (M @ x)[:, None, :]).sum(2)) + lam * x

        # xi ~ N(0, P): the likelihood's part from one standard normal per rating, the prior's per weight.
        eps = torch.randn(len(col), dtype=W.dtype, device=self.device, generator=self.gen)
        noise = _sparse(crow, col, eps, len(F)) @ F  # per row: sum over its ratings of eps_n times F
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
        """Users, what they rated (y), items, who rated them (z): each given the rest."""
        self._sample_side("user")
        if "implicit_item" in self.blocks:
            self._sample_block("implicit_item")
        self._sample_side("item")
        if "implicit_user" in self.blocks:
            self._sample_block("implicit_user")
