"""Bayesian SVD++ both ways (cf_core/bayes_fm.py): the relation blocks against a naive computation, the joint
conditionals against direct solves, and planted data where what each user rated says something about them."""
import numpy as np
import pandas as pd
import pytest
import torch

from cf_core.bayes_fm import RelationSampler
from cf_core.config import TrainConfig
from cf_core.models import DotProductBias
from cf_core.recommender import Recommender
from cf_core.splits import random_split
from cf_core.train import Tensors


def _data(n=900, n_users=40, n_items=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    pairs = torch.randperm(n_users * n_items, generator=g)[:n]
    u, i = pairs // n_items, pairs % n_items
    pu, qi = torch.randn(n_users, 3, generator=g), torch.randn(n_items, 3, generator=g)
    r = 3 + 0.5 * (pu[u] * qi[i]).sum(1) + 0.3 * torch.randn(n, generator=g)
    return Tensors(u, i, r.float())


def _sampler(k=3, seed=0):
    data = _data()
    model = DotProductBias(40, 30, k, None, init_std=0.5, mean_rating=3.0)
    s = RelationSampler(model, data.user, data.item, data.rating, seed=seed)
    g = torch.Generator().manual_seed(5)
    for name in ("implicit_item", "implicit_user"):
        s.W[name] = torch.randn(s.W[name].shape, generator=g, dtype=torch.float64)
        s.hyper[name] = (torch.full((k,), 0.2, dtype=torch.float64), torch.linspace(1, 2, k, dtype=torch.float64))
    s.noise_precision = 2.0
    return s, data


def test_the_relation_blocks_equal_the_sums_over_each_users_items_row_by_row():
    s, data = _sampler()
    ybar, zbar = s.sums()
    u, i = data.user.numpy(), data.item.numpy()
    Y, Z = s.W["implicit_item"].numpy(), s.W["implicit_user"].numpy()
    for user in (0, 11, 39):
        rated = i[u == user]
        np.testing.assert_allclose(ybar[user].numpy(), Y[rated].sum(0) / np.sqrt(len(rated)), rtol=1e-12)
    for item in (0, 17, 29):
        raters = u[i == item]
        np.testing.assert_allclose(zbar[item].numpy(), Z[raters].sum(0) / np.sqrt(len(raters)), rtol=1e-12)
    # And the prediction is the naive per-rating formula.
    P, Q = s.W["user"].numpy(), s.W["item"].numpy()
    n = 123
    ru, ri = u[n], i[n]
    p = P[ru, :3] + Y[i[u == ru]].sum(0) / np.sqrt((u == ru).sum())
    q = Q[ri, :3] + Z[u[i == ri]].sum(0) / np.sqrt((i == ri).sum())
    expected = P[ru, 3] + Q[ri, 3] + p @ q
    standardized = (data.rating[n].item() - 3.0) / s.scale
    assert s.residuals()[n].item() == pytest.approx(standardized - expected, abs=1e-9)


def _dense_system(s, data, name):
    """The block's joint conditional, written out densely: J maps the block's weights to each rating's part."""
    u, i = data.user.numpy(), data.item.numpy()
    k = s.k
    P, Q = s.W["user"].numpy(), s.W["item"].numpy()
    Y, Z = s.W["implicit_item"].numpy(), s.W["implicit_user"].numpy()
    nu, ni = len(P), len(Q)
    cu, ci = np.bincount(u, minlength=nu), np.bincount(i, minlength=ni)
    ybar = np.stack([Y[i[u == r]].sum(0) / np.sqrt(max(cu[r], 1)) for r in range(nu)])
    zbar = np.stack([Z[u[i == r]].sum(0) / np.sqrt(max(ci[r], 1)) for r in range(ni)])
    y = (data.rating.numpy().astype(np.float64) - 3.0) / s.scale
    rows = ni if name == "implicit_item" else nu
    J = np.zeros((len(u), rows * k))
    t = np.zeros(len(u))
    for n, (uu, ii) in enumerate(zip(u, i)):
        if name == "implicit_item":  # y_j for j in N(u), times the item's total vector
            F = Q[ii, :k] + zbar[ii]
            for j in i[u == uu]:
                J[n, j * k:(j + 1) * k] += F / np.sqrt(cu[uu])
            t[n] = y[n] - P[uu, k] - Q[ii, k] - P[uu, :k] @ F
        else:  # z_v for v in N(i), times the user's total vector
            F = P[uu, :k] + ybar[uu]
            for v in u[i == ii]:
                J[n, v * k:(v + 1) * k] += F / np.sqrt(ci[ii])
            t[n] = y[n] - P[uu, k] - Q[ii, k] - F @ Q[ii, :k]
    m, lam = (x.numpy() for x in s.hyper[name])
    prec = s.noise_precision * J.T @ J + np.diag(np.tile(lam, rows))
    mean = np.linalg.solve(prec, s.noise_precision * J.T @ t + np.tile(lam * m, rows))
    return mean.reshape(rows, k), prec


@pytest.fixture
def exact(monkeypatch):
    """Conjugate gradients run to convergence (the default tolerance leaves about 1e-5 in these weights)."""
    import cf_core.bayes_fm

    monkeypatch.setattr(cf_core.bayes_fm, "CG_TOL", 1e-13)


@pytest.mark.parametrize("name", ["implicit_item", "implicit_user"])
def test_each_blocks_conditional_mean_is_the_direct_solve(name, exact):
    s, data = _sampler()
    expected, _ = _dense_system(s, data, name)
    np.testing.assert_allclose(s.solve_block(name, draw=False).numpy(), expected, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", ["implicit_item", "implicit_user"])
def test_each_blocks_draws_have_the_conditionals_covariance(exact, name):
    s, data = _sampler()
    mean, prec = _dense_system(s, data, name)
    cov = np.linalg.inv(prec)
    draws = np.stack([s.solve_block(name).numpy().ravel() for _ in range(3000)])
    np.testing.assert_allclose(draws.mean(0), mean.ravel(), atol=4 * np.sqrt(np.diag(cov).max() / 3000))
    np.testing.assert_allclose(draws.var(0), np.diag(cov), rtol=0.12)
    a, b = np.unravel_index(np.argmax(np.abs(cov - np.diag(np.diag(cov)))), cov.shape)  # the strongest coupling
    assert np.cov(draws[:, a], draws[:, b])[0, 1] == pytest.approx(cov[a, b], rel=0.25)


def _planted_selection(n_users=600, n_items=80, seed=0):
    """Users come in two taste groups that rate the two halves of the catalogue 2 stars apart; a user rates 3 to 11
    items, nine in ten of their own half. With so few noisy ratings a user's own factors are poorly known, but which
    items they chose says which group they are in: the structure the implicit blocks carry."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 2, n_users)
    half = np.arange(n_items) >= n_items // 2
    rows = []
    for u in range(n_users):
        n = rng.integers(3, 12)
        own, other = np.flatnonzero(half == group[u]), np.flatnonzero(half != group[u])
        k = int(round(n * 0.9))
        for i in np.r_[rng.choice(own, k, replace=False), rng.choice(other, n - k, replace=False)]:
            liked = half[i] == group[u]
            rows.append((u, i, float(np.clip(np.round(3 + (1.0 if liked else -1.0) + rng.normal(0, 0.8)), 1, 5))))
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


def test_what_each_user_rated_helps_where_the_data_has_that_structure():
    df = _planted_selection()
    train, valid = random_split(df, 0.2, seed=1)
    mean_rmse = float(np.sqrt(((valid["rating"] - train["rating"].mean()) ** 2).mean()))
    plain = Recommender(TrainConfig(epochs=80, seed=3, implicit=False)).fit(train, valid).evaluate(valid)["rmse"]
    implicit = Recommender(TrainConfig(epochs=80, seed=3, implicit=True)).fit(train, valid).evaluate(valid)["rmse"]
    assert plain < mean_rmse and implicit < 0.95 * plain, (implicit, plain, mean_rmse)


@pytest.mark.parametrize("implicit", [False, True])
def test_a_fit_resumed_from_a_checkpoint_ends_where_the_whole_fit_does(implicit):
    """A worker that is cut off resumes from its last checkpoint: the implicit blocks and their averages travel.
    (A checkpoint kept in memory held the running sums themselves, which the sweeps after it went on adding to.)"""
    from cf_core.train import Callback

    df = _planted_selection(n_users=150, n_items=40)
    train, valid = random_split(df, 0.2, seed=1)
    cfg = TrainConfig(epochs=8, burn_in=3, seed=4, implicit=implicit)

    class Keep(Callback):
        def on_epoch_end(self, trainer, info):
            if info.epoch == 5:
                self.saved = trainer.checkpoint()

    keep = Keep()
    whole = Recommender(cfg).fit(train, valid, [keep]).evaluate(valid)["rmse"]
    assert any(k.startswith("sampler.W.implicit_item") for k in keep.saved.tensors) == implicit
    for _ in range(2):  # twice from the same checkpoint: resuming must not write into it either
        resumed = Recommender(cfg).fit(train, valid, resume=keep.saved).evaluate(valid)["rmse"]
        assert resumed == pytest.approx(whole, abs=1e-6)


def test_a_config_saved_before_implicit_existed_resumes_with_the_plain_sampler():
    """A queued or checkpointed job's stored settings without `implicit` meant the plain Bayesian fit; resolving it
    as on would resume its checkpoint with the SVD++ sampler (KeyError 'W.implicit_item')."""
    old = TrainConfig(epochs=4).to_dict()
    del old["implicit"]
    assert TrainConfig.from_dict(old).implicit is False
    assert TrainConfig.from_dict(TrainConfig(epochs=4).to_dict()).implicit is None  # saved since: still "auto"
