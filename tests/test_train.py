import math
import threading

import numpy as np
import pytest
import torch

from cf_core.config import DataStats, TrainConfig, resolve
from cf_core.models import DotProductBias
from cf_core.recording import SmoothedLoss
from cf_core.train import Callback, Tensors, Trainer, find_lr, lr_at, pick_device, suggest_lr


def _data(n=600, n_users=30, n_items=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randint(0, n_users, (n,), generator=g)
    i = torch.randint(0, n_items, (n,), generator=g)
    true_u, true_i = torch.randn(n_users, 2, generator=g), torch.randn(n_items, 2, generator=g)
    r = 3 + (true_u[u] * true_i[i]).sum(1)
    return Tensors(u, i, r.float())


def _cfg(**kw):
    stats = DataStats(30, 20, 600, 1.0, 5.0, 3.0)
    return resolve(TrainConfig(**{"n_factors": 4, "epochs": 3, "batch_size": 64, "optimizer": "adam", **kw}), stats)


class Recorder(Callback):
    def __init__(self):
        self.events, self.batches, self.epochs = [], [], []

    def on_fit_start(self, trainer):
        self.events.append("start")

    def on_batch_end(self, trainer, info):
        self.batches.append(info)

    def on_epoch_end(self, trainer, info):
        self.epochs.append(info)

    def on_fit_end(self, trainer):
        self.events.append("end")


def test_smoothed_loss_is_debiased_ewma():
    smooth = SmoothedLoss()
    assert [smooth(2.0) for _ in range(3)] == pytest.approx([2.0, 2.0, 2.0])
    smooth = SmoothedLoss()
    assert smooth(1.0) == pytest.approx(1.0)
    assert smooth(0.0) == pytest.approx(0.98 * 0.02 / (1 - 0.98**2))


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "adamw"])
def test_each_optimizer_changes_weights_and_lowers_loss(optimizer):
    torch.manual_seed(0)
    data = _data()
    cfg = _cfg(optimizer=optimizer, lr={"sgd": 0.5, "momentum": 0.05}.get(optimizer, 0.02), wd=0.0)
    model = DotProductBias(30, 20, 4, cfg.y_range, mean_rating=3.0)
    before = model.item_factors.weight.detach().clone()
    rec = Recorder()
    hist = Trainer(model, cfg, [rec]).fit(data)
    assert not torch.equal(before, model.item_factors.weight)
    assert hist.epochs[-1]["train_rmse"] < hist.epochs[0]["train_rmse"]
    assert rec.events == ["start", "end"]
    assert len(rec.batches) == 3 * math.ceil(600 / 64)


def test_l2_and_decoupled_weight_decay_shrink_weights_differently():
    data = _data()
    norms = {}
    for mode in ("l2", "decoupled"):
        for wd in (0.0, 1.0):
            torch.manual_seed(0)
            cfg = _cfg(optimizer="adam", lr=0.02, wd=wd, wd_mode=mode)
            model = DotProductBias(30, 20, 4, cfg.y_range, mean_rating=3.0)
            Trainer(model, cfg).fit(data)
            norms[mode, wd] = model.item_factors.weight.norm().item()
    assert norms["l2", 1.0] < norms["l2", 0.0]
    assert norms["decoupled", 1.0] < norms["decoupled", 0.0]
    assert norms["l2", 1.0] != pytest.approx(norms["decoupled", 1.0], rel=1e-3)


def test_adamw_defaults_to_decoupled_and_adam_to_l2():
    stats = DataStats(10, 10, 100, 1, 5, 3)
    assert resolve(TrainConfig(optimizer="adamw"), stats).wd_mode == "decoupled"
    assert resolve(TrainConfig(optimizer="adam"), stats).wd_mode == "l2"


@pytest.mark.parametrize("schedule", ["constant", "onecycle", "cosine", "cosine_restarts"])
def test_schedules_shape(schedule):
    cfg = TrainConfig(lr=1.0, schedule=schedule, restart_epochs=1, restart_mult=2)
    lrs = [lr_at(cfg, s, 100, 10) for s in range(100)]
    assert max(lrs) == pytest.approx(1.0, rel=1e-6)
    if schedule == "constant":
        assert set(lrs) == {1.0}
    if schedule == "onecycle":
        assert lrs[0] == pytest.approx(1 / 25) and lrs.index(max(lrs)) == 25 and lrs[-1] < 1e-3
    if schedule == "cosine":
        assert lrs == sorted(lrs, reverse=True)
    if schedule == "cosine_restarts":  # restarts after 1, 3 and 7 epochs
        assert lrs[10] == pytest.approx(1.0) and lrs[30] == pytest.approx(1.0) and lrs[70] == pytest.approx(1.0)
        assert lrs[9] < 0.1


@pytest.mark.parametrize("schedule", ["constant", "onecycle", "cosine", "cosine_restarts"])
def test_each_schedule_trains(schedule):
    data = _data()
    cfg = _cfg(schedule=schedule)
    torch.manual_seed(0)
    model = DotProductBias(30, 20, 4, cfg.y_range, mean_rating=3.0)
    before = model.user_factors.weight.detach().clone()
    hist = Trainer(model, cfg).fit(data)
    assert not torch.equal(before, model.user_factors.weight)
    assert len(hist.lr) == len(hist.loss) > 0
    assert max(hist.lr) <= cfg.lr * (1 + 1e-9)


def test_cancel_between_batches_keeps_best_model():
    data = _data()
    cfg = _cfg(epochs=50)
    cancel = threading.Event()

    class StopAfter(Callback):
        def on_batch_end(self, trainer, info):
            if info.step == 25:
                cancel.set()

    model = DotProductBias(30, 20, 4, cfg.y_range, mean_rating=3.0)
    evaluations = []

    def evaluate(m):
        evaluations.append(1)
        return 1.0 / len(evaluations), 0.5  # gets "better" each epoch

    hist = Trainer(model, cfg, [StopAfter()], cancel).fit(data, evaluate)
    assert hist.cancelled
    assert sum(1 for _ in hist.loss) == 25
    assert len(hist.epochs) == 3 and hist.epochs[-1]["complete"] is False
    assert hist.best_epoch == 3


@pytest.mark.parametrize("ema_epochs", [0.0, 2.5])
def test_the_model_ends_with_the_average_of_its_recent_weights(ema_epochs):
    """Weight averaging (the default, ema_epochs=2.5): the model ends holding an average of the weights of the
    last steps, not the last step's; with it off, the last step's exactly."""
    data = _data()
    cfg = _cfg(epochs=3, ema_epochs=ema_epochs, schedule="constant", lr=0.05, keep_best=False)
    model = DotProductBias(30, 20, 4, cfg.y_range, mean_rating=3.0)
    raw = []

    class Raw(Callback):
        def on_batch_end(self, trainer, info):
            raw.append(trainer.model.item_factors.weight.detach().clone())

    Trainer(model, cfg, [Raw()]).fit(data)
    final = model.item_factors.weight.detach()
    if not ema_epochs:
        assert torch.equal(final, raw[-1])
        return
    recent = torch.stack(raw[-8:]).mean(0)  # the average sits among the recent weights, not at the last of them
    assert not torch.allclose(final, raw[-1], atol=1e-4)
    assert (final - recent).norm() < (raw[-1] - recent).norm()


def test_keep_best_restores_best_epoch_weights():
    data = _data()
    cfg = _cfg(epochs=4)
    model = DotProductBias(30, 20, 4, cfg.y_range, mean_rating=3.0)
    snapshots = []

    def evaluate(m):
        snapshots.append(m.item_factors.weight.detach().clone())
        return [0.9, 0.5, 0.7, 0.8][len(snapshots) - 1], 0.1

    hist = Trainer(model, cfg).fit(data, evaluate)
    assert hist.best_epoch == 2
    assert torch.equal(model.item_factors.weight, snapshots[1])


@pytest.mark.parametrize("model_name,optimizer", [("dotbias", "adam"), ("dotbias", "adamw"), ("nn", "momentum")])
def test_a_fit_resumed_from_a_checkpoint_ends_where_the_whole_fit_does(model_name, optimizer):
    """The fused step (adam), autograd with decoupled decay (adamw) and the net with dropout (momentum): stopped after
    epoch 2 and resumed from that epoch's checkpoint, the fit ends with the same weights and the same history
    (losses, smoothed losses, rates, epochs, the kept best) as the fit that never stopped."""
    from cf_core.models import EmbeddingNN

    data, valid = _data(), _data(n=200, seed=1)
    cfg = _cfg(epochs=4, optimizer=optimizer, model=model_name, user_factors=5, item_factors=5, layers=[8],
               dropout=[0.2], ema_epochs=1.0, keep_best=True)

    def model():
        torch.manual_seed(0)
        if model_name == "nn":
            return EmbeddingNN(30, 20, 5, 5, (8,), (0.2,), 0.1, cfg.y_range, mean_rating=3.0)
        return DotProductBias(30, 20, 4, cfg.y_range, mean_rating=3.0)

    @torch.no_grad()
    def evaluate(m):
        err = m(valid.user, valid.item) - valid.rating
        return float(err.pow(2).mean().sqrt()), float(err.abs().mean())

    whole = model()
    expected = Trainer(whole, cfg, [Recorder()]).fit(data, evaluate)
    cancel, saved = threading.Event(), {}

    class StopAfterTwo(Callback):
        def on_epoch_end(self, trainer, info):
            if info.epoch == 2:
                saved["ckpt"] = trainer.checkpoint()
                cancel.set()

    Trainer(model(), cfg, [StopAfterTwo()], cancel).fit(data, evaluate)
    resumed_model = model()
    resumed = Trainer(resumed_model, cfg, [Recorder()]).fit(data, evaluate, resume=saved["ckpt"])
    for a, b in zip(whole.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)
    assert resumed.loss == pytest.approx(expected.loss, rel=1e-5)
    assert resumed.smooth_loss == pytest.approx(expected.smooth_loss, rel=1e-5)
    assert resumed.lr == pytest.approx(expected.lr)
    assert [e["valid_rmse"] for e in resumed.epochs] == pytest.approx([e["valid_rmse"] for e in expected.epochs])
    assert resumed.best_epoch == expected.best_epoch


def test_lr_finder_returns_curve_and_leaves_weights():
    data = _data()
    cfg = _cfg()
    model = DotProductBias(30, 20, 4, cfg.y_range, mean_rating=3.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = find_lr(model, data, cfg, steps=80)
    assert len(res.lrs) == len(res.losses) >= 10
    assert res.lrs == sorted(res.lrs)
    assert res.lrs[0] <= res.suggestion <= res.lrs[-1]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_suggest_lr_finds_steepest_descent():
    lrs = [10 ** (-6 + k * 0.1) for k in range(60)]
    losses = [1.0 if k < 30 else (0.2 if k > 40 else 1.0 - 0.08 * (k - 30)) for k in range(60)]
    assert 10**-3 <= suggest_lr(lrs, losses) <= 10**-2


def test_suggest_lr_ignores_the_noise_of_the_flat_start():
    """The old rule took the steepest single slope, which the noise of the flat start always won (about 1e-6)."""
    rng = np.random.default_rng(0)
    lrs = [10 ** (-6 + k * 0.07) for k in range(100)]
    fall = [1.25 - 0.12 * max(0, min(1, (k - 60) / 30)) for k in range(100)]  # falls from 1e-1.8 to 1e0.3
    losses = [f + (rng.normal(0, 0.01) if k < 60 else 0) for k, f in enumerate(fall)]
    assert 10**-1.8 <= suggest_lr(lrs, losses) <= 10**0.3


def test_the_suggested_rate_trains_as_well_as_the_automatic_one():
    """On MovieLens-shaped planted data, Adam at the finder's suggestion ends within 2% of Adam at its automatic
    rate."""
    from cf_core.data import read_ratings
    from cf_core.recommender import Recommender
    from cf_core.splits import random_split
    from tests.app_helpers import fake_movielens_frames

    ratings, _ = fake_movielens_frames(n_users=300, n_items=200, n_ratings=12_000)
    train, valid = random_split(read_ratings(ratings.rename(columns={"user_id": "user", "item_id": "item"})).df, 0.2, 0)
    auto = Recommender(optimizer="adam").fit(train, valid).evaluate(valid)["rmse"]
    suggestion = Recommender(optimizer="adam").lr_find(train).suggestion
    found = Recommender(optimizer="adam", lr=suggestion).fit(train, valid).evaluate(valid)["rmse"]
    assert found <= 1.02 * auto, (suggestion, found, auto)


def test_pick_device():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            pick_device("cuda")


def test_config_validation_messages():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TrainConfig(optimizer="rmsprop").validate()
    with pytest.raises(ValueError, match="betas"):
        TrainConfig(betas=(0.9, 1.5)).validate()
    cfg = TrainConfig(layers=(8, 4))
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_defaults_adapt_to_scale_and_size():
    adam = TrainConfig(optimizer="adam")
    small = resolve(adam, DataStats(900, 1600, 80_000, 1, 5, 3.5))
    ten = resolve(adam, DataStats(900, 1600, 80_000, 1, 10, 5, 2.25))
    big = resolve(adam, DataStats(160_000, 59_000, 20_000_000, 0.5, 5, 3.5))
    assert small.y_range[0] < 1 < 5 < small.y_range[1]
    assert ten.y_range[1] > 10 and ten.wd > small.wd
    assert big.batch_size > small.batch_size


def test_layer_wd_shrinks_the_nets_hidden_layers_and_defaults_on_for_nn_only():
    from cf_core.models import EmbeddingNN

    stats = DataStats(30, 20, 600, 1.0, 5.0, 3.0)
    assert resolve(TrainConfig(model="nn"), stats).layer_wd > 0
    assert resolve(TrainConfig(), stats).layer_wd == 0
    assert resolve(TrainConfig(model="nn", optimizer="adamw"), stats).wd_mode == "decoupled"
    data, norms = _data(), {}
    for layer_wd in (0.0, 0.05):
        torch.manual_seed(0)
        cfg = _cfg(model="nn", optimizer="adam", lr=0.02, wd=0.0, layer_wd=layer_wd, emb_dropout=0.0, dropout=(0.0,))
        model = EmbeddingNN(30, 20, 4, 4, (16,), (0.0,), 0.0, cfg.y_range, mean_rating=3.0)
        Trainer(model, cfg).fit(data)
        norms[layer_wd] = model.layers[0].weight.norm().item()
    assert norms[0.05] < 0.8 * norms[0.0]
    with pytest.raises(ValueError, match="layer_wd"):
        TrainConfig(layer_wd=-1).validate()


def test_default_fit_is_gibbs_for_small_dot_models_and_adam_otherwise():
    small, large = DataStats(900, 1600, 80_000, 1, 5, 3.5), DataStats(160_000, 59_000, 20_000_000, 0.5, 5, 3.5)
    gibbs = resolve(TrainConfig(), small)
    assert gibbs.optimizer == "gibbs" and gibbs.y_range is None and not gibbs.use_y_range
    assert gibbs.n_factors == 10 and gibbs.epochs == 120 and gibbs.lr is None
    assert resolve(TrainConfig(model="dot"), small).optimizer == "gibbs"
    assert resolve(TrainConfig(), large).optimizer == "adam" and resolve(TrainConfig(), large).y_range is not None
    assert resolve(TrainConfig(model="nn"), small).optimizer == "adam"
    chosen = resolve(TrainConfig(optimizer="adamw"), small)
    assert chosen.optimizer == "adamw" and chosen.y_range is not None
    with pytest.raises(ValueError, match="dot-product models only"):
        TrainConfig(model="nn", optimizer="gibbs").validate()
    with pytest.raises(ValueError, match="cannot use a sigmoid y_range"):
        TrainConfig(optimizer="gibbs", y_range=(0.5, 5.5)).validate()
    assert resolve(TrainConfig(optimizer="gibbs"), small).y_range is None  # the default y_range is simply off
