"""Bayesian PMF by Gibbs sampling: exact conditionals, recovery of planted data, and its place in the training loop."""
import numpy as np
import pytest
import torch

from cf_core.bayes import GibbsSampler
from cf_core.config import DataStats, TrainConfig, resolve
from cf_core.datasets import synthetic
from cf_core.models import DotProduct, DotProductBias
from cf_core.recommender import Recommender
from cf_core.splits import random_split
from cf_core.train import Callback, Tensors, Trainer


def _tensors(n=3000, n_users=60, n_items=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    u, i = torch.randint(0, n_users, (n,), generator=g), torch.randint(0, n_items, (n,), generator=g)
    pu, qi = torch.randn(n_users, 3, generator=g), torch.randn(n_items, 3, generator=g)
    r = 3 + 0.5 * (pu[u] * qi[i]).sum(1) + 0.3 * torch.randn(n, generator=g)
    return Tensors(u, i, r.float())


@pytest.mark.parametrize("bias", [True, False])
def test_conditional_mean_is_each_rows_ridge_solution(bias):
    data = _tensors()
    model = (DotProductBias if bias else DotProduct)(60, 40, 4, None, init_std=0.5, mean_rating=3.0)
    sampler = GibbsSampler(model, data.user, data.item, data.rating)
    sampler.noise_precision = 2.0
    sampler.hyper["user"] = (torch.full((sampler.d,), 0.1, dtype=torch.float64),
                             torch.linspace(1, 3, sampler.d, dtype=torch.float64))
    mean, chol = sampler.conditional("user")
    Q = sampler.W["item"].numpy()
    m, prec = (t.numpy() for t in sampler.hyper["user"])
    for row in (0, 7, 59):
        rated = (data.user == row).numpy()
        items = data.item.numpy()[rated]
        X = Q[items, :4]
        y = (data.rating.numpy()[rated].astype(np.float64) - 3.0) / sampler.scale  # the sampler's standardized units
        if bias:
            X = np.hstack([X, np.ones((len(X), 1))])
            y = y - Q[items, 4]
        A = 2.0 * X.T @ X + np.diag(prec)
        expected = np.linalg.solve(A, 2.0 * X.T @ y + prec * m)
        np.testing.assert_allclose(mean[row].numpy(), expected, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose((chol[row] @ chol[row].T).numpy(), A, rtol=1e-10)


def test_weights_in_rating_units_whatever_the_scale():
    data = _tensors()
    preds = []
    for mult in (1.0, 10.0):
        torch.manual_seed(0)
        model = DotProductBias(60, 40, 4, None, init_std=0.1, mean_rating=3.0 * mult)
        with torch.no_grad():  # the same starting point, in these units
            model.user_factors.weight *= mult**0.5
            model.item_factors.weight *= mult**0.5
        sampler = GibbsSampler(model, data.user, data.item, data.rating * mult, seed=1)
        sampler.start_averaging()
        for _ in range(5):
            sampler.sweep()
        sampler.write(sampler.mean())
        with torch.no_grad():
            preds.append(model(data.user, data.item) / mult)
        assert torch.allclose(sampler.errors(sampler.mean()).float(),
                              data.rating * mult - model(data.user, data.item).detach(), atol=1e-3 * mult)
    torch.testing.assert_close(preds[0], preds[1], atol=1e-3, rtol=1e-3)  # the same fit in other units


def test_refuses_a_sigmoid_model():
    data = _tensors()
    with pytest.raises(ValueError, match="turn off the sigmoid"):
        GibbsSampler(DotProductBias(60, 40, 4, (0.5, 5.5)), data.user, data.item, data.rating)


def test_recovers_planted_structure_near_noise_floor():
    data = synthetic(n_users=300, n_items=200, n_ratings=30_000, n_factors=4, noise=0.3, seed=5)
    train, valid = random_split(data.ratings, 0.2, 0)
    rec = Recommender(optimizer="gibbs").fit(train)
    assert rec.config.optimizer == "gibbs" and rec.config.y_range is None
    assert rec.evaluate(valid)["rmse"] < 0.33  # noise floor 0.3


class Events(Callback):
    def __init__(self, stop_after=None):
        self.batches, self.epochs, self.stop_after = [], [], stop_after

    def on_batch_end(self, trainer, info):
        self.batches.append(info)

    def on_epoch_end(self, trainer, info):
        self.epochs.append(info)
        if self.stop_after and len(self.epochs) == self.stop_after:
            trainer.cancel.set()


def test_loop_reports_each_sweep_and_ends_holding_the_average():
    data = _tensors()
    cfg = resolve(TrainConfig(optimizer="gibbs", epochs=12, burn_in=4, keep_best=False),
                  DataStats(60, 40, 3000, 1, 5, 3))
    model = DotProductBias(60, 40, cfg.n_factors, None, mean_rating=3.0)
    events = Events()
    hist = Trainer(model, cfg, [events]).fit(data)
    assert [e.epoch for e in events.epochs] == list(range(1, 13)) and len(events.batches) == 12
    assert len(hist.loss) == 12 and all(lr == 0 for lr in hist.lr)
    assert hist.epochs[-1]["train_rmse"] < hist.epochs[0]["train_rmse"]
    # the averaged weights predict the training data better than a single sample does
    assert hist.epochs[-1]["train_rmse"] ** 2 < hist.loss[-1]


def test_cancel_stops_between_sweeps():
    data = _tensors()
    cfg = resolve(TrainConfig(optimizer="gibbs", epochs=50), DataStats(60, 40, 3000, 1, 5, 3))
    model = DotProductBias(60, 40, cfg.n_factors, None, mean_rating=3.0)
    hist = Trainer(model, cfg, [Events(stop_after=3)]).fit(data)
    assert hist.cancelled and len(hist.epochs) == 3


def test_default_fit_saves_loads_and_folds_in(tmp_path):
    from cf_core.access import LOCAL
    from cf_core.analysis import recommend_new_user
    from cf_core.store import RunStore

    data = synthetic(n_users=200, n_items=100, n_ratings=8_000, n_factors=3, seed=2)
    rec = Recommender(epochs=30).fit(data.ratings)
    store = RunStore(tmp_path)
    run_id = store.save(rec, owner="local", name="bayes")
    back = store.load(run_id, LOCAL).recommender
    u, i = data.ratings["user"].to_numpy()[:50], data.ratings["item"].to_numpy()[:50]
    np.testing.assert_allclose(back.predict(u, i), rec.predict(u, i), rtol=1e-6)
    top = recommend_new_user(back, {i[0]: 5.0, i[1]: 1.0}, n=5)
    assert len(top) == 5 and not set(top["item"]) & {i[0], i[1]}


class Order(Callback):
    def __init__(self):
        self.events = []

    def on_pretrain(self, trainer, sweep, sweeps):
        self.events.append(("pretrain", sweep, sweeps))

    def on_fit_start(self, trainer):
        self.events.append(("start",))


def test_the_net_starts_from_a_bayesian_fit_by_default_on_small_data():
    small, large = DataStats(300, 200, 24_000, 1, 5, 3), DataStats(160_000, 59_000, 20_000_000, 0.5, 5, 3.5)
    cfg = resolve(TrainConfig(model="nn"), small)
    assert cfg.pretrain and cfg.lr == pytest.approx(2e-3) and cfg.layer_wd > 1e-3
    assert not resolve(TrainConfig(model="nn"), large).pretrain
    assert not resolve(TrainConfig(model="nn", pretrain=False), small).pretrain
    assert resolve(TrainConfig(model="nn", pretrain=False), small).lr == pytest.approx(2e-2)
    assert not resolve(TrainConfig(model="nn", user_factors=1), small).pretrain  # no room for factors and bias
    assert not resolve(TrainConfig(), small).pretrain
    with pytest.raises(ValueError, match="neural net only"):
        TrainConfig(model="dotbias", pretrain=True).validate()


def test_pretrained_net_hears_the_sweeps_first_and_fits_planted_data():
    data = synthetic(n_users=300, n_items=200, n_ratings=30_000, n_factors=4, noise=0.3, seed=5)
    train, valid = random_split(data.ratings, 0.2, 0)
    order = Order()
    rec = Recommender(model="nn", epochs=8).fit(train, callbacks=[order])
    sweeps = [e for e in order.events if e[0] == "pretrain"]
    assert len(sweeps) == sweeps[0][2] and order.events[len(sweeps)] == ("start",)
    pretrained = rec.evaluate(valid)["rmse"]
    plain = Recommender(model="nn", epochs=8, pretrain=False).fit(train).evaluate(valid)["rmse"]
    assert pretrained < 0.5 and pretrained < plain - 0.1  # measured: 0.445 against 0.754 (noise floor 0.3)


@pytest.mark.parametrize("kw", [{}, {"model": "nn"}, {"optimizer": "sgd"}])
def test_constant_ratings_fit_without_error(kw):
    df = synthetic(n_users=20, n_items=15, n_ratings=120, n_factors=2, seed=3).ratings.assign(rating=4.0)
    rec = Recommender(epochs=6, **kw).fit(df)
    np.testing.assert_allclose(rec.predict(df["user"].to_numpy()[:5], df["item"].to_numpy()[:5]), 4.0, atol=1e-4)
