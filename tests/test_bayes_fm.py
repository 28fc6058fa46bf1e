"""Bayesian SVD++ both ways (cf_core/bayes_fm.py): the relation blocks against a naive computation, the joint
conditionals against direct solves, and planted data where what each user rated says something about them."""
import numpy as np
import pandas as pd
import pytest
import torch

from cf_core.bayes_fm import IMPLICIT, RelationSampler
from cf_core.config import TrainConfig
from cf_core.models import DayTerms, DotProductBias
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


N_DAYS = 7
# Genres of the 30 items: item i has genres {i % 4} and, for every third item, {(i + 1) % 5}; items 28, 29 none.
GENRE_LISTS = [sorted({i % 4} | ({(i + 1) % 5} if i % 3 == 0 else set())) if i < 28 else [] for i in range(30)]


def _genres():
    pairs = [(i, g) for i, gs in enumerate(GENRE_LISTS) for g in gs]
    return torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs]), 5


def _sampler(k=3, seed=0, blocks=(*IMPLICIT, "genres", "day")):
    data = _data()
    model = DotProductBias(40, 30, k, None, init_std=0.5, mean_rating=3.0)
    day = torch.arange(len(data)) % N_DAYS
    model.day = DayTerms(N_DAYS, k)
    s = RelationSampler(model, data.user, data.item, data.rating, seed=seed, blocks=blocks, genres=_genres(),
                        day=day)
    g = torch.Generator().manual_seed(5)
    for name in (*s.blocks, "day"):
        if name in s.W:
            s.W[name] = torch.randn(s.W[name].shape, generator=g, dtype=torch.float64)
            width = s.W[name].shape[1]
            s.hyper[name] = (torch.full((width,), 0.2, dtype=torch.float64),
                             torch.linspace(1, 2, width, dtype=torch.float64))
    s.noise_precision = 2.0
    return s, data, day.numpy()


def _naive(s, data, day, W):
    """Each rating's prediction (standardized), computed row by row from the model's formula."""
    u, i, k = data.user.numpy(), data.item.numpy(), s.k
    rated = {r: i[u == r] for r in set(u)}
    raters = {r: u[i == r] for r in set(i)}
    out = np.zeros(len(u))
    for n, (uu, ii) in enumerate(zip(u, i)):
        p, q = W["user"][uu, :k].copy(), W["item"][ii, :k].copy()
        if "implicit_item" in W:
            p += W["implicit_item"][rated[uu]].sum(0) / np.sqrt(len(rated[uu]))
        if "implicit_user" in W:
            q += W["implicit_user"][raters[ii]].sum(0) / np.sqrt(len(raters[ii]))
        if "genres" in W and GENRE_LISTS[ii]:
            q += W["genres"][GENRE_LISTS[ii]].sum(0) / np.sqrt(len(GENRE_LISTS[ii]))
        out[n] = p @ q + W["user"][uu, k] + W["item"][ii, k]
        if "day" in W:
            v = W["day"][day[n]]
            out[n] += v[:k] @ (p + q) + v[k]
    return out


def _numpy(s):
    return {name: w.numpy().copy() for name, w in s.W.items()}


def test_the_relation_blocks_equal_the_sums_over_each_rows_features_row_by_row():
    s, data, day = _sampler()
    standardized = (data.rating.numpy().astype(np.float64) - 3.0) / s.scale
    np.testing.assert_allclose(s.residuals().numpy(), standardized - _naive(s, data, day, _numpy(s)), atol=1e-10)
    # And what the model is left with is the same prediction, in rating units, with the day's part.
    s.write(s.W)
    rec_like = s.model
    pred = rec_like(data.user, data.item) + rec_like.day(rec_like, data.user, data.item, torch.from_numpy(day))
    np.testing.assert_allclose(pred.detach().numpy(), 3.0 + s.scale * _naive(s, data, day, _numpy(s)), atol=1e-4)


def _dense_system(s, data, day, name):
    """Block (or side) `name`'s conditional written out densely: the prediction is affine in its weights, so its
    Jacobian J comes column by column from the naive formula."""
    W = _numpy(s)
    shape = W[name].shape
    W[name] = np.zeros(shape)
    base = _naive(s, data, day, W)
    J = np.zeros((len(base), shape[0] * shape[1]))
    for c in range(J.shape[1]):
        W[name] = np.zeros(shape)
        W[name].flat[c] = 1.0
        J[:, c] = _naive(s, data, day, W) - base
    y = (data.rating.numpy().astype(np.float64) - 3.0) / s.scale - base
    m, lam = (np.tile(x.numpy(), shape[0]) for x in s.hyper[name])
    prec = s.noise_precision * J.T @ J + np.diag(lam)
    mean = np.linalg.solve(prec, s.noise_precision * J.T @ y + lam * m)
    return mean.reshape(shape), prec


@pytest.fixture
def exact(monkeypatch):
    """Conjugate gradients run to convergence (the default tolerance leaves about 1e-5 in these weights)."""
    import cf_core.bayes_fm

    monkeypatch.setattr(cf_core.bayes_fm, "CG_TOL", 1e-13)
    monkeypatch.setattr(cf_core.bayes_fm, "CG_MAX_ITER", 2000)  # about 140 steps here; never stop at the cap


@pytest.mark.parametrize("name", ["implicit_item", "implicit_user", "genres"])
@pytest.mark.parametrize("with_day", [False, True])
def test_each_blocks_conditional_mean_is_the_direct_solve(name, with_day, exact):
    s, data, day = _sampler(blocks=(*IMPLICIT, "genres", *(("day",) if with_day else ())))
    expected, _ = _dense_system(s, data, day, name)
    # (CG to 1e-13 leaves about 1e-11 in weights of about 1: the atol)
    np.testing.assert_allclose(s.solve_block(name, draw=False).numpy(), expected, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("side", ["user", "item", "day"])
def test_the_rows_conditional_means_are_the_direct_solve_with_every_block(side):
    s, data, day = _sampler()
    expected, _ = _dense_system(s, data, day, side)
    np.testing.assert_allclose(s.conditional(side)[0].numpy(), expected, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", ["implicit_item", "implicit_user"])
def test_each_blocks_draws_have_the_conditionals_covariance(exact, name):
    s, data, day = _sampler(blocks=IMPLICIT)
    mean, prec = _dense_system(s, data, day, name)
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
    # the Gaussian output, whose plain fit beats the mean here; the ordinal one mixes slower on users with 3 to 11
    # ratings and no implicit block (1.006 against the Gaussian's 0.948, the mean 0.997; with it 0.848 against 0.867)
    cfg = TrainConfig(epochs=80, seed=3, output="gaussian")
    plain = Recommender(cfg.replace(implicit=False)).fit(train, valid).evaluate(valid)["rmse"]
    implicit = Recommender(cfg.replace(implicit=True)).fit(train, valid).evaluate(valid)["rmse"]
    assert plain < mean_rmse and implicit < 0.95 * plain, (implicit, plain, mean_rmse)


@pytest.mark.parametrize("blocks", [dict(implicit=False, genres=False), dict(implicit=True, genres=False),
                                    dict(implicit=False, genres=True, day=True)])
def test_a_fit_resumed_from_a_checkpoint_ends_where_the_whole_fit_does(blocks):
    """A worker that is cut off resumes from its last checkpoint: the blocks and their averages travel.
    (A checkpoint kept in memory held the running sums themselves, which the sweeps after it went on adding to.)"""
    from cf_core.train import Callback

    df = _planted_selection(n_users=150, n_items=40)
    df["timestamp"] = 86_400 * (np.arange(len(df)) % 9)
    items = pd.DataFrame({"item": np.arange(40), "genres": ["a|b" if i % 2 else "c" for i in range(40)]})
    train, valid = random_split(df, 0.2, seed=1)
    cfg = TrainConfig(epochs=8, burn_in=3, seed=4, **blocks)

    class Keep(Callback):
        def on_epoch_end(self, trainer, info):
            if info.epoch == 5:
                self.saved = trainer.checkpoint()

    keep = Keep()
    whole = Recommender(cfg).fit(train, valid, [keep], items=items).evaluate(valid)["rmse"]
    for name in ("implicit_item", "genres", "day"):
        assert any(k.startswith(f"sampler.W.{name}") for k in keep.saved.tensors) == \
            blocks.get("implicit" if name == "implicit_item" else name, False)
    for _ in range(2):  # twice from the same checkpoint: resuming must not write into it either
        resumed = Recommender(cfg).fit(train, valid, resume=keep.saved, items=items).evaluate(valid)["rmse"]
        assert resumed == pytest.approx(whole, abs=1e-6)


def _planted_genres(n_users=500, n_items=240, seed=0):
    """Items of a genre share their traits (one of four genre vectors, and a little of their own); a user rates 4 to
    8 items, so most items have few ratings: what their genre says is most of what is known about them."""
    rng = np.random.default_rng(seed)
    genre = rng.integers(0, 4, n_items)
    G = rng.normal(0, 1, (4, 3))
    Q = G[genre] + 0.2 * rng.normal(0, 1, (n_items, 3))
    P = rng.normal(0, 1, (n_users, 3))
    rows = [(u, i) for u in range(n_users) for i in rng.choice(n_items, rng.integers(4, 9), replace=False)]
    u, i = np.array(rows).T
    r = 3 + (P[u] * Q[i]).sum(1) + 0.3 * rng.normal(0, 1, len(u))
    items = pd.DataFrame({"item": np.arange(n_items), "title": [f"t{i}" for i in range(n_items)],
                          "genres": [f"g{g}" for g in genre]})
    return pd.DataFrame({"user": u, "item": i, "rating": r.astype(np.float32)}), items


def test_the_items_genres_help_where_the_data_has_that_structure():
    df, items = _planted_genres()
    train, valid = random_split(df, 0.2, seed=1)
    cfg = TrainConfig(epochs=60, seed=3, implicit=False, n_factors=3)
    plain = Recommender(cfg.replace(genres=False)).fit(train, None, items=items)
    genres = Recommender(cfg).fit(train, None, items=items)
    assert genres.config.genres and not plain.config.genres
    mean_rmse = float(np.sqrt(((valid["rating"] - train["rating"].mean()) ** 2).mean()))
    assert plain.evaluate(valid)["rmse"] < mean_rmse
    assert genres.evaluate(valid)["rmse"] < 0.9 * plain.evaluate(valid)["rmse"]


def _planted_days(n=8000, n_users=200, n_items=150, n_days=40, seed=0):
    """Each day moves every rating of that day: by a bias, and by a vector added to both the user's and the item's."""
    rng = np.random.default_rng(seed)
    u, i, d = rng.integers(0, n_users, n), rng.integers(0, n_items, n), rng.integers(0, n_days, n)
    P, Q, V = (rng.normal(0, 0.5, (m, 3)) for m in (n_users, n_items, n_days))
    r = 3 + (P[u] * Q[i]).sum(1) + (V[d] * (P[u] + Q[i])).sum(1) + rng.normal(0, 0.5, n_days)[d]
    r += 0.3 * rng.normal(0, 1, n)
    df = pd.DataFrame({"user": u, "item": i, "rating": r.astype(np.float32),
                       "timestamp": 1_000_000_000 + 86_400 * d + rng.integers(0, 86_400, n)})
    return df.drop_duplicates(["user", "item"])


def test_the_day_of_the_rating_helps_where_the_data_has_that_structure_and_survives_saving():
    df = _planted_days()
    train, valid = random_split(df, 0.2, seed=1)
    cfg = TrainConfig(epochs=40, seed=3, implicit=False, n_factors=3)
    plain = Recommender(cfg).fit(train, None).evaluate(valid)["rmse"]
    rec = Recommender(cfg.replace(day=True)).fit(train, None)
    with_day = rec.evaluate(valid)["rmse"]
    assert with_day < 0.7 * plain, (with_day, plain)
    # Without the ratings' time each gets the average day's terms: no better than without the block.
    assert rec.evaluate(valid[["user", "item", "rating"]])["rmse"] > 0.9 * plain
    meta, tensors, ids = rec.to_state()
    assert len(tensors["model.draws.users"]) == int(rec.model.draws.n_kept)  # saved without the room left
    loaded = Recommender.from_state(meta, tensors, ids, device="cpu")
    assert loaded.evaluate(valid)["rmse"] == pytest.approx(with_day, abs=1e-6)


def _draw_prediction(draws, s, u, i, t=None):
    """Draw s's prediction (less the mean) of (u, i) on day rows t (-1: the average day), from its formula."""
    P, Q = draws.users[s, u], draws.items[s, i]
    x = (P[:, :-1] * Q[:, :-1]).sum(1) + P[:, -1] + Q[:, -1]
    if t is not None:
        V = torch.stack([draws.days[s, d] if d >= 0 else draws.days[s].mean(0) for d in t.tolist()])
        x = x + (V[:, :-1] * (P[:, :-1] + Q[:, :-1])).sum(1) + V[:, -1]
    return x


def test_ratings_are_predicted_by_the_average_of_the_kept_draws_not_by_the_product_of_averages():
    df = _planted_days(n=3000)
    rec = Recommender(TrainConfig(epochs=30, burn_in=10, seed=3, implicit=True, n_factors=3, day=True)).fit(df)
    draws, model = rec.model.draws, rec.model
    assert int(draws.n_kept) == 20  # every sweep after the burn-in
    u, i = np.array([0, 5, 9]), np.array([3, 7, 2])
    t = model.day.index(torch.tensor(df["timestamp"].to_numpy()[:3]))
    tu, ti = torch.tensor(u), torch.tensor(i)
    for days in (t, torch.tensor([-1, -1, -1])):  # the ratings' days; a day the fit never saw (or an unknown one)
        each = [_draw_prediction(draws, s, tu, ti, days) for s in range(20)]
        expected = model.global_bias + torch.stack(each).mean(0)
        torch.testing.assert_close(torch.tensor(rec.predict_indices(u, i, days)).float(),
                                   expected.clamp(*rec.rating_scale).float())
    expected = model.global_bias + torch.stack([_draw_prediction(draws, s, tu, ti) for s in range(20)]).mean(0)
    torch.testing.assert_close(torch.tensor(rec.predict_indices(u, i)).float(), expected.clamp(*rec.rating_scale))
    means = (model(tu, ti) + model.day(model, tu, ti, t)).detach()  # the mean weights: a different estimate
    assert not torch.allclose(rec.predict_tensor(model, tu, ti, t), means, atol=1e-3)
    # Each draw is the whole model of its sweep: its blocks folded into the user and item vectors.
    assert not torch.allclose(draws.users[0], draws.users[1])
    import cf_core.bayes
    import cf_core.cost

    # the memory estimate counts what is kept
    assert (cf_core.cost.DRAWS_MAX, cf_core.cost.DRAWS_BYTES) == (cf_core.bayes.DRAWS_MAX, cf_core.bayes.DRAWS_BYTES)


def test_when_the_kept_draws_are_full_every_second_goes_and_they_stay_evenly_spaced(monkeypatch):
    import cf_core.bayes

    monkeypatch.setattr(cf_core.bayes, "DRAWS_MAX", 4)
    s, _, _ = _sampler()
    assert len(s.draws.users) == 4
    s.start_averaging()
    seen = []
    for _ in range(11):
        s.sweep()
        seen.append(s._units(s.totals()["user"]))
    assert int(s.draws.n_kept) == 3 and s.thin == 4  # draws 0, 4 and 8 of the 11
    for slot, j in enumerate((0, 4, 8)):
        torch.testing.assert_close(s.draws.users[slot], seen[j])
    assert float(s.draws.days[:3].abs().sum()) > 0  # with the days' rows


def test_the_validation_figures_while_training_are_those_of_the_kept_draws(monkeypatch):
    """Each sweep's validation RMSE adds only the new draw's predictions to the last sweep's (thinning: all again)."""
    import cf_core.bayes

    monkeypatch.setattr(cf_core.bayes, "DRAWS_MAX", 4)
    train, valid = random_split(_planted_days(n=3000), 0.2, seed=1)
    cfg = TrainConfig(epochs=16, burn_in=2, seed=3, implicit=True, n_factors=3, day=True, keep_best=False)
    rec = Recommender(cfg).fit(train, valid)
    assert int(rec.model.draws.n_kept) == 4  # 14 draws, thinned twice: 0, 4, 8, 12
    assert rec.history.epochs[-1]["valid_rmse"] == pytest.approx(rec.evaluate(valid)["rmse"], abs=1e-5)
    assert rec.history.epochs[-3]["valid_rmse"] != pytest.approx(rec.evaluate(valid)["rmse"], abs=1e-5)  # 3 draws


def test_a_block_asked_for_without_its_data_says_what_is_missing_and_a_default_one_goes_off():
    df = _planted_selection(n_users=60, n_items=20)
    with pytest.raises(ValueError, match="genres block needs an item table"):
        Recommender(TrainConfig(epochs=2, genres=True)).fit(df)
    with pytest.raises(ValueError, match="day block needs the ratings' timestamps"):
        Recommender(TrainConfig(epochs=2, day=True)).fit(df)
    rec = Recommender(TrainConfig(epochs=2)).fit(df)
    assert rec.config.implicit and not rec.config.genres and not rec.config.day
    no_genres = pd.DataFrame({"item": np.arange(20), "genres": [""] * 20})
    assert not Recommender(TrainConfig(epochs=2)).fit(df, items=no_genres).config.genres
    # An item table read with text ids meets integer ratings ids, one unparseable id or not.
    text_ids = pd.DataFrame({"item": [str(i) for i in range(20)] + ["tt1"], "genres": ["a|b", "c"] * 10 + ["d"]})
    assert Recommender(TrainConfig(epochs=2)).fit(df, items=text_ids).config.genres
    other = Recommender(TrainConfig(epochs=2)).fit(df, items=text_ids.assign(item=[f"x{i}" for i in range(21)]))
    assert not other.config.genres and any("match none of the rated items" in w for w in other.warnings)


def test_a_config_saved_before_implicit_existed_resumes_with_the_plain_sampler():
    """A queued or checkpointed job's stored settings without `implicit` meant the plain Bayesian fit; resolving it
    as on would resume its checkpoint with the SVD++ sampler (KeyError 'W.implicit_item')."""
    old = TrainConfig(epochs=4).to_dict()
    del old["implicit"]
    assert TrainConfig.from_dict(old).implicit is False
    assert TrainConfig.from_dict(TrainConfig(epochs=4).to_dict()).implicit is None  # saved since: still "auto"
    del old["genres"]  # and before the genres block: without it
    assert TrainConfig.from_dict(old).genres is False
