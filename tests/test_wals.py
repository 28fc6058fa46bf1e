"""Weighted ALS for implicit feedback (cf_core/wals.py): each row's step against a direct solve, the objective,
and a planted-data test that the fit recovers each group's top items."""
import numpy as np
import pytest
import torch

from cf_core.ranking import at_k, top_k
from cf_core.wals import WALS, solve


def _pairs(n_users=30, n_items=20, per_user=6, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(u, int(i), int(rng.integers(1, 5))) for u in range(n_users)
            for i in rng.choice(n_items, per_user, replace=False)]
    u, i, c = (torch.tensor(x) for x in zip(*rows))
    return u, i, c.double()


def _direct(u, i, c, Y, reg, alpha, n_rows, exponent=0.0):
    """Each row's exact solution of (Y'Y + Y'(C_u - I)Y + reg n_u^exponent I) x = Y' C_u p_u, by numpy, one row at
    a time (n_u: the row's interactions)."""
    Y = Y.numpy()
    out = np.zeros((n_rows, Y.shape[1]))
    for r in range(n_rows):
        mine = (u == r).numpy()
        Yr, conf = Y[i.numpy()[mine]], 1 + alpha * c.numpy()[mine]
        A = Y.T @ Y + Yr.T @ ((conf - 1)[:, None] * Yr) + reg * mine.sum() ** exponent * np.eye(Y.shape[1])
        out[r] = np.linalg.solve(A, Yr.T @ conf)
    return out


@pytest.mark.parametrize("exponent", [0.0, 1.0])  # a shared penalty, and ALS-WR's, reg times the row's count
@pytest.mark.parametrize("cg_steps, gather", [(0, True), (40, True), (40, False)])  # exact (batched Cholesky), and
def test_a_sides_step_is_each_rows_exact_weighted_least_squares_solution(cg_steps, gather, exponent, monkeypatch):
    """... conjugate gradients run long, with the interactions' factors gathered once a solve or a chunk at a time
    in every product (as on data too big to hold them)."""
    import cf_core.wals as wals

    if not gather:
        monkeypatch.setattr(wals, "GATHER_MAX", 0)
        monkeypatch.setattr(wals, "GATHER_CHUNK", 7)
    u, i, c = _pairs()
    u = torch.where(u < 5, 0, u)  # rows with different numbers of interactions
    k, reg, alpha = 8, 0.1, 2.0
    Y = torch.rand(20, k, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    fit = WALS(u, i, c, 30, 20, k, reg, alpha, reg_exponent=exponent)
    side = fit.sides["user"]
    X0 = torch.rand(30, k, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    got = solve(side, X0, Y, reg, cg_steps).numpy()
    assert np.allclose(got, _direct(u, i, c, Y, reg, alpha, 30, exponent), rtol=1e-6, atol=1e-8)


def test_a_few_cg_steps_a_sweep_lower_the_objective_every_sweep():
    u, i, c = _pairs(60, 40, 8)
    fit = WALS(u, i, c, 60, 40, k=6, reg=0.1, alpha=4.0, seed=0)
    losses = []
    for _ in range(6):
        fit.sweep()
        losses.append(fit.loss())
    assert all(b <= a + 1e-6 for a, b in zip(losses, losses[1:])), losses
    exact = WALS(u, i, c, 60, 40, k=6, reg=0.1, alpha=4.0, seed=0, cg_steps=0)
    for _ in range(6):
        exact.sweep()
    assert losses[-1] == pytest.approx(exact.loss(), rel=0.05)  # three steps a sweep get near the exact path


def test_the_fit_recovers_each_groups_planted_top_items():
    """Three groups of users, each drawn to its own ten items (eight in ten of their interactions) and otherwise
    to anything: held-out interactions are ranked from the group's items, far better than by popularity."""
    rng = np.random.default_rng(0)
    n_users, n_items = 300, 90
    group = np.arange(n_users) % 3
    rows = []
    for u in range(n_users):
        own = np.arange(10) + 10 * group[u]
        chosen = set(rng.choice(own, 8, replace=False)) | set(rng.choice(n_items, 4, replace=False))
        rows += [(u, int(i)) for i in chosen]
    rows = np.array(rows)
    held = rng.random(len(rows)) < 0.2
    train, valid = rows[~held], rows[held]
    u, i = torch.tensor(train[:, 0]), torch.tensor(train[:, 1])
    fit = WALS(u, i, torch.ones(len(u)), n_users, n_items, k=8, reg=0.1, alpha=10.0, seed=0)
    for _ in range(10):
        fit.sweep()
    order = np.argsort(train[:, 0], kind="stable")
    indptr = np.r_[0, np.cumsum(np.bincount(train[:, 0], minlength=n_users))]
    seen = train[order, 1]
    users = np.unique(valid[:, 0])
    relevant = [np.sort(valid[valid[:, 0] == x, 1]) for x in users]
    X, Y = fit.W["user"], fit.W["item"]
    ours = at_k(top_k(lambda q: X[q] @ Y.T, users, indptr, seen, n_items, 10), relevant, n_items)
    pop = torch.bincount(i, minlength=n_items).float()
    popular = at_k(top_k(lambda q: pop.expand(len(q), -1), users, indptr, seen, n_items, 10), relevant, n_items)
    assert ours["recall"] > 0.6 and ours["recall"] > 2 * popular["recall"], (ours, popular)
    # each group's top ten are its own planted items
    for g in range(3):
        mine = users[group[users] == g][:5]
        nothing = np.zeros(len(mine) + 1, np.int64), np.zeros(0, np.int64)  # no training items excluded
        top = top_k(lambda q, mine=mine: X[mine[q.numpy()]] @ Y.T, np.arange(len(mine)), *nothing, n_items, 10)
        assert (top // 10 == g).mean() > 0.9, (g, top)
