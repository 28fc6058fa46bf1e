"""The net's embeddings started from a Bayesian fit of the dot product with biases (as NeuMF starts from pretrained
factors): each embedding row begins as [factors, bias, its random rest]."""
from __future__ import annotations

import threading
from collections.abc import Sequence

import torch

from .bayes import rating_spread
from .config import GIBBS_FACTORS, GIBBS_SWEEPS, TrainConfig
from .models import DotProductBias, EmbeddingNN
from .recording import Callback, EpochInfo, History
from .train import Evaluator, Tensors, Trainer

# The net's pretraining fit includes what each user rated (Bayesian SVD++); bench/choices.py compares it without.
PRETRAIN_IMPLICIT = True


class _PretrainRelay(Callback):
    """Tells the fit's callbacks about each sweep of the pretraining fit (their other hooks are for the net's own)."""

    def __init__(self, callbacks: Sequence[Callback]):
        self.callbacks = callbacks

    def on_epoch_end(self, trainer: Trainer, info: EpochInfo) -> None:
        for cb in self.callbacks:
            cb.on_pretrain(trainer, info.epoch, trainer.cfg.epochs)


def pretrain_embeddings(net: EmbeddingNN, cfg: TrainConfig, train: Tensors, global_mean: float,
                        callbacks: Sequence[Callback] = (), cancel: threading.Event | None = None,
                        evaluate: Evaluator | None = None) -> tuple[DotProductBias, TrainConfig, History]:
    """Fit a Bayesian dot product with biases on `train` and start `net`'s embeddings from it (in place).

    The net then begins from what the data already says about every user and item, and the concatenation still lets
    it learn anything else. Callbacks hear each sweep through `on_pretrain`. Returns the fit, its settings and its
    history (validated each sweep with `evaluate`).
    The fit includes what each user rated (Bayesian SVD++, `bayes_fm.py`), so each embedding starts from the user's
    vector plus the sum over what they rated: on MovieLens 100k the net then predicts better than from the plain
    Bayesian fit, at about twice the time (`bench/choices.py --only pretrain` prints both, for two seeds).
    """
    n_users, n_items = net.user_factors.num_embeddings, net.item_factors.num_embeddings
    k = min(GIBBS_FACTORS, cfg.user_factors - 1, cfg.item_factors - 1)
    dot = DotProductBias(n_users, n_items, k, None, cfg.init_std, global_mean).to(train.rating.device)
    fit = cfg.replace(model="dotbias", optimizer="gibbs", n_factors=k, epochs=GIBBS_SWEEPS, y_range=None,
                      use_y_range=False, keep_best=False, pretrain=False, implicit=PRETRAIN_IMPLICIT)
    history = Trainer(dot, fit, [_PretrainRelay(callbacks)], cancel).fit(train, evaluate)
    # In units of the ratings' spread, as the sampler works, so the net (whose sigmoid output stretches with the
    # scale) starts from the same embeddings on any rating scale.
    spread = rating_spread(train.rating)
    with torch.no_grad():
        for side in ("user", "item"):
            start = torch.cat([getattr(dot, f"{side}_factors").weight / spread**0.5,
                               getattr(dot, f"{side}_bias").weight / spread], 1)
            getattr(net, f"{side}_factors").weight[:, :k + 1] = start
    return dot, fit, history
