"""Training settings in one place: `TrainConfig`, with the defaults that adapt to the data.

Every field that says "auto" (None) is filled in by `resolve(config, stats)` from the data's size and rating
scale, so a user who changes nothing gets a well-trained model on MovieLens 100k and on other data alike.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pandas as pd

MODEL_NAMES = ("dotbias", "dot", "nn")
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "gibbs")
SCHEDULES = ("onecycle", "constant", "cosine", "cosine_restarts")
WD_MODES = ("l2", "decoupled")
OUTPUTS = ("gaussian", "ordinal")
FEEDBACKS = ("explicit", "implicit")
IMPLICIT_LOSSES = ("bce", "bpr")
# The ordered-probit output (cf_core/ordinal.py) is the Bayesian fit's default where the ratings take from 2 to this
# many distinct values (a star scale, half stars included).
ORDINAL_MAX_LEVELS = 10


# The Bayesian fit's optional feature blocks (cf_core/bayes_fm.py), by TrainConfig field, as messages name them.
BAYES_BLOCKS = {"implicit": "what each user rated (implicit)", "genres": "the genres block",
                "day": "the day of the rating block"}


@dataclass
class DataStats:
    """What the defaults depend on: counts and the rating scale of the training data."""

    n_users: int
    n_items: int
    n_ratings: int
    rating_min: float
    rating_max: float
    rating_mean: float
    rating_std: float = 1.126  # MovieLens 100k's, when not given
    n_levels: int = 5  # distinct ratings (MovieLens 100k's, when not given)


def data_stats(df) -> DataStats:
    """The statistics `resolve` needs, from a frame with user, item and rating columns."""
    r = df["rating"].to_numpy(dtype="float64")
    return DataStats(int(df["user"].nunique()), int(df["item"].nunique()), len(df), float(r.min()), float(r.max()),
                     float(r.mean()), float(r.std()) if len(r) > 1 else 1.0, len(pd.unique(r)))


@dataclass
class TrainConfig:
    """Everything that defines a training run. None means "choose from the data" (see `resolve`)."""

    # model
    model: str = "dotbias"                 # dotbias (dot product + biases), dot (no biases) or nn (EmbeddingNN)
    n_factors: int | None = None           # embedding size; nn uses it for users and items unless set below
    user_factors: int | None = None        # nn only: user embedding size
    item_factors: int | None = None        # nn only: item embedding size
    layers: tuple[int, ...] = (64,)        # nn only: hidden layer sizes
    dropout: tuple[float, ...] = (0.1,)    # nn only: dropout after each hidden layer (one value applies to all)
    emb_dropout: float = 0.2               # nn only: dropout on the concatenated embeddings
    pretrain: bool | None = None           # nn only: start the embeddings from a Bayesian dot-product fit of the same
                                           # training data; None: under 2M ratings
    y_range: tuple[float, float] | None = None  # sigmoid range; None: the rating scale widened by 1/8 each side
    use_y_range: bool = True               # False: a plain linear output (no sigmoid)
    init_std: float = 0.01                 # std of the normal init of the embeddings
    # optimizer
    optimizer: str | None = None           # sgd, momentum (SGD with momentum), adam, adamw, or gibbs (Bayesian PMF by
                                           # Gibbs sampling, dot models);
                                           # None: gibbs for dot models under 2M ratings, else adam
    lr: float | None = None                # peak learning rate; None: a default per optimizer
    betas: tuple[float, float] = (0.9, 0.99)  # Adam/AdamW moment decay rates
    eps: float | None = None               # Adam/AdamW denominator guard;
                                           # None: one rating's gradient scale / batch_size (see resolve)
    momentum: float = 0.9                  # for optimizer="momentum"
    emb_lr_scale: float | None = None      # sgd/momentum: the embeddings' rate is lr times this; None: by batch size
    wd: float | None = None                # weight decay strength; None: a default per model and scale
    wd_mode: str | None = None             # l2 (penalty in the loss) or decoupled (AdamW style);
                                           # None: decoupled for adamw, else l2
    bias_wd: float = 0.0                   # extra L2 on the biases, relative to wd (l2 mode)
    layer_wd: float | None = None          # nn only: L2 on the hidden layers' weights (l2 mode);
                                           # None: a default by scale
    # schedule
    epochs: int | None = None              # None: by data size
    batch_size: int | None = None          # None: by data size
    schedule: str = "onecycle"             # onecycle, constant, cosine, cosine_restarts
    pct_start: float = 0.25                # onecycle: fraction of steps spent warming up
    div: float = 25.0                      # onecycle: start lr = lr / div
    final_div: float = 1e4                 # onecycle/cosine: end lr = lr / final_div
    restart_epochs: float = 1.0            # cosine_restarts: length of the first cycle, in epochs
    restart_mult: float = 2.0              # cosine_restarts: each cycle is this many times longer
    burn_in: int = 5                       # gibbs: sweeps drawn before averaging starts (at most half of them); the
                                           # first two are ALS steps to a mode, so the chain needs little burn-in:
                                           # 5 beat 20 on all six checks of `bench/accuracy.py --robustness`'s data
    implicit: bool | None = None           # gibbs, dotbias/dot: add what each user rated and who rated each item
                                           # (Bayesian SVD++ both ways, cf_core/bayes_fm.py); None: on for the Gibbs fit
    genres: bool | None = None             # gibbs, dotbias/dot: add the items' genres (from the item table) as a block;
                                           # None: on for the Gibbs fit when the item table has genres
    day: bool = False                      # gibbs, dotbias/dot: add the day of the rating as a block (needs
                                           # timestamps; off by default: MovieLens 100k predicted worse with it)
    output: str | None = None              # gibbs: gaussian (a rating is the model's output plus noise) or ordinal
                                           # (an ordered probit over the rating levels, cf_core/ordinal.py); None:
                                           # ordinal where the ratings take 2 to ORDINAL_MAX_LEVELS values
    # implicit feedback (cf_core/wals.py): who interacted with what, fitted by weighted ALS and judged by its top K
    feedback: str = "explicit"             # explicit (ratings) or implicit
    alpha: float | None = None             # implicit: an interaction's confidence is 1 + alpha * count (None: 1.0)
    like: float | None = None              # implicit from ratings: only ratings of at least this are interactions
    counts: bool = False                   # implicit: the rating column holds counts (plays, clicks); else each
                                           # row is one interaction
    implicit_loss: str | None = None       # implicit with sgd, momentum, adam or adamw: bce (the lesson's dot
                                           # product with a sigmoid; binary cross-entropy over the interactions
                                           # and sampled negatives) or bpr (pairwise ranking); None: bce
    negatives: int = 4                     # bce: items drawn at random per interaction as its negatives
    # run
    ema_epochs: float = 2.5                # average the weights over about this many recent epochs, at most 1/8 of
                                           # the run (0: off); the average is evaluated and kept
    keep_best: bool = True                 # end with the weights of the best validation epoch
    fused: bool | None = None              # fused step with row-wise Adam (dot models, adam, l2);
                                           # None: wherever it applies
    compile: bool | None = None            # torch.compile the fused step; None: from 2M training ratings
    seed: int = 42                         # seeds torch for init and batch order
    device: str = "auto"                   # auto (cuda if present), cpu, cuda

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-safe dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Inverse of `to_dict`; unknown keys are ignored so old runs still load."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        kw = {}
        for k, v in d.items():
            if k not in names:
                continue
            kw[k] = tuple(v) if isinstance(v, list) else v
        # Saved before `implicit` existed, a config meant the plain Bayesian fit; resolving None now turns it on,
        # which would resume such a job's checkpoint with the wrong sampler.
        kw.setdefault("implicit", False)
        kw.setdefault("genres", False)  # likewise for the genres block
        kw.setdefault("output", "gaussian")  # and for the ordered probit
        return cls(**kw)

    def validate(self) -> None:
        """Raise ValueError with a plain sentence for a setting that cannot work."""
        checks = [
            (self.model in MODEL_NAMES, f"model must be one of {', '.join(MODEL_NAMES)}, not {self.model!r}"),
            (self.optimizer in (None, *OPTIMIZERS) or (self.optimizer == "als" and self.feedback == "implicit"),
             f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}"),
            (self.feedback in FEEDBACKS, f"feedback must be explicit or implicit, not {self.feedback!r}"),
            (self.feedback != "implicit" or (self.model in ("dot", "dotbias") and self.optimizer != "gibbs"),
             "implicit feedback trains the dot product, by weighted ALS or by SGD, momentum, Adam or AdamW: choose "
             "the dot product and one of those"),
            (self.implicit_loss in (None, *IMPLICIT_LOSSES),
             f"implicit_loss must be bce or bpr, not {self.implicit_loss!r}"),
            (self.negatives >= 1, "negatives must be at least 1"),
            (self.alpha is None or self.alpha >= 0, "alpha must be zero or positive"),
            (self.optimizer != "gibbs" or self.model != "nn",
             "Gibbs sampling fits the dot-product models only; the neural net needs sgd, momentum, adam or adamw"),
            (self.optimizer != "gibbs" or self.y_range is None or not self.use_y_range,
             "Gibbs sampling fits the linear dot product and cannot use a sigmoid y_range: turn the y_range off"),
            (self.burn_in >= 0, "burn_in must be zero or positive"),
            (self.output in (None, *OUTPUTS), f"output must be gaussian or ordinal, not {self.output!r}"),
            (self.output != "ordinal" or (self.model != "nn" and self.optimizer in (None, "gibbs")),
             "the ordinal output is part of the Bayesian fit of the dot products: choose the dot product and Gibbs "
             "sampling, or the gaussian output"),
            *((not getattr(self, name) or (self.model != "nn" and self.optimizer in (None, "gibbs")),
               f"{what} is part of the Bayesian fit of the dot products: choose the dot product and Gibbs sampling, "
               "or turn it off") for name, what in BAYES_BLOCKS.items()),
            (not self.pretrain or self.model == "nn", "pretrain applies to the neural net only"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}"),
            (self.wd_mode in (None, *WD_MODES), f"wd_mode must be l2 or decoupled, not {self.wd_mode!r}"),
            (self.n_factors is None or self.n_factors >= 1, "n_factors must be at least 1"),
            (self.lr is None or self.lr > 0, "lr must be positive"),
            (self.emb_lr_scale is None or self.emb_lr_scale > 0, "emb_lr_scale must be positive"),
            (self.eps is None or self.eps > 0, "eps must be positive"),
            (self.ema_epochs >= 0, "ema_epochs must be zero or positive"),
            (self.wd is None or self.wd >= 0, "wd must be zero or positive"),
            (self.layer_wd is None or self.layer_wd >= 0, "layer_wd must be zero or positive"),
            (self.epochs is None or self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size is None or self.batch_size >= 1, "batch_size must be at least 1"),
            (all(0 <= b < 1 for b in self.betas), "betas must each be in [0, 1)"),
            (all(0 <= p < 1 for p in (*self.dropout, self.emb_dropout)), "dropout must be in [0, 1)"),
            (all(int(n) == n and n >= 1 for n in self.layers), "each hidden layer needs at least 1 unit (leave the "
             "layers empty for none)"),
            (self.user_factors is None or self.user_factors >= 1, "user_factors must be at least 1"),
            (self.item_factors is None or self.item_factors >= 1, "item_factors must be at least 1"),
            (self.y_range is None or self.y_range[0] < self.y_range[1], "y_range must be (low, high) with low < high"),
            (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
             "device must be auto, cpu or cuda"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


# Peak learning rates that work with the mean-squared-error loss at the default batch sizes.
DEFAULT_LR = {"sgd": 1.0, "momentum": 0.5, "adam": 2e-2, "adamw": 2e-2}
# SGD's embedding rows, per rating of theirs in a batch: the batch's mean loss gives a row 1/batch_size of each
# rating's gradient while the global offset gets all of them, so one rate for both either leaves the factors at
# their tiny start (the dot product without biases learned nothing: RMSE 1.132, the mean's 1.133) or makes the
# offset swing. The embeddings' rate is lr x batch_size x this (classic per-rating SGD, as Funk's), the rest lr.
# Adam's steps do not depend on the gradient's size: no scale. Measured on MovieLens 100k: bench/README.md.
EMB_LR_PER_RATING = {"sgd": 1 / 64, "momentum": 1 / 256}
# Per-rating L2 strength on a 1..5 scale (scaled with the rating range for other scales).
DEFAULT_WD = {"dotbias": 0.07, "dot": 0.07, "nn": 0.02}
# Adam's eps in units of one rating's gradient on a 1..5 scale. Adam divides each row's step by the root of its
# squared gradients, so a rare user or item would move as far as a popular one on every batch it appears in; an
# eps of about one rating's gradient (which is 1/batch_size of the mean loss) keeps rare rows' steps in
# proportion to their evidence, as plain SGD does, while popular rows still get Adam's normalized steps.
EPS_PER_RATING = 1.0
DEFAULT_WD_DECOUPLED = {"dotbias": 0.3, "dot": 0.3, "nn": 0.05}
# L2 on the net's hidden-layer weights. The embeddings' per-rating penalty does not reach the layers, and without
# this the net overfits in the second half of a run (MovieLens 100k: valid RMSE 0.923 at epoch 12, 0.932 at 20).
# A net whose embeddings start from a Bayesian fit (pretrain) learns fast from them and needs ten times more.
DEFAULT_LAYER_WD = {False: 3e-4, True: 3e-3}
# Pretrained embeddings already hold what the data says; the default learning rate moves them ten times more gently
# (MovieLens 100k: 0.906 at the last epoch; at the usual rate the net reaches 0.907 at epoch 7 and then overfits).
PRETRAINED_LR_FACTOR = 0.1


# Gibbs sampling (Bayesian PMF) on data this small beats every optimizer here (MovieLens 100k: 0.903 against Adam's
# 0.910) at a similar cost; from this size on, a sweep's batched solves cost more than the fused Adam epochs.
GIBBS_MAX_RATINGS = 2_000_000
# Bayesian PMF's factor count and sweeps: few factors mix fast and the prior switches off the ones the data does not
# support (MovieLens 100k, 100 averaged samples: 10 factors 0.903, 32 factors 0.906).
GIBBS_FACTORS, GIBBS_SWEEPS = 10, 120


def default_optimizer(model: str, n_ratings: int) -> str:
    """What optimizer=None means: Gibbs sampling for the dot models on data under GIBBS_MAX_RATINGS, else Adam."""
    return "gibbs" if model != "nn" and n_ratings < GIBBS_MAX_RATINGS else "adam"


# From this many ratings an epoch's cost is memory traffic proportional to the factor width: 50 factors (the
# lesson's size, and the ML-25M reference's) instead of 64, and 10 epochs instead of 20.
LARGE_RATINGS = 2_000_000


def default_n_factors(model: str, optimizer: str, n_ratings: int) -> int:
    """The factor count an empty field trains with (the Train page shows it as its placeholder)."""
    if optimizer == "gibbs":
        return GIBBS_FACTORS
    return 64 if model != "nn" and n_ratings < LARGE_RATINGS else 50


def default_epochs(optimizer: str, n_ratings: int) -> int:
    """The epochs (Gibbs: sweeps) an empty field trains for."""
    return GIBBS_SWEEPS if optimizer == "gibbs" else 20 if n_ratings < LARGE_RATINGS else 10


def burn_in(cfg: TrainConfig) -> int:
    """Gibbs sweeps before averaging starts: cfg.burn_in, but at most half of the sweeps."""
    return min(cfg.burn_in, cfg.epochs // 2)


def default_y_range(rating_min: float, rating_max: float) -> tuple[float, float]:
    """The rating scale widened by 1/8 of its span each side, so the sigmoid can reach the extreme ratings."""
    pad = max(rating_max - rating_min, 1e-6) / 8
    return float(rating_min - pad), float(rating_max + pad)


def resolve(cfg: TrainConfig, stats: DataStats) -> TrainConfig:
    """Fill every None field of `cfg` from the data; the result is what actually trains (and is saved).

    In three steps, each reading what the one before settled: what fits (`_fit`: the optimizer, the model's
    shape, the pretraining), how strongly (`_strengths`: weight decay, learning rate), and in what steps (`_steps`:
    batch size, eps, epochs)."""
    cfg.validate()
    if cfg.feedback == "implicit":
        return cfg.replace(**(_implicit(cfg, stats) if cfg.optimizer in (None, "als") else
                              _implicit_gradient(cfg, stats)))
    cfg = cfg.replace(**_fit(cfg, stats))
    cfg = cfg.replace(**_strengths(cfg, stats))
    return cfg.replace(**_steps(cfg, stats))


def _implicit(cfg: TrainConfig, stats: DataStats) -> dict[str, Any]:
    """Implicit feedback: the dot product without biases by weighted ALS (cf_core/wals.py), its defaults from the
    number of interactions; no sigmoid, no feature blocks, no keep-best (no RMSE to keep the best by)."""
    from .wals import ALPHA, REG, SWEEPS, default_factors

    return {"model": "dot", "optimizer": "als", "n_factors": cfg.n_factors or default_factors(stats.n_ratings),
            "alpha": ALPHA if cfg.alpha is None else cfg.alpha, "wd": REG if cfg.wd is None else cfg.wd,
            "epochs": cfg.epochs or SWEEPS, "use_y_range": False, "y_range": None, "implicit": False,
            "genres": False, "day": False, "output": "gaussian", "keep_best": False, "pretrain": False,
            "wd_mode": "l2", "layer_wd": 0.0, "lr": None, "batch_size": cfg.batch_size or 1, "eps": 1e-8,
            "emb_lr_scale": 1.0}


# The gradient-trained implicit losses' defaults, by loss: a loss over logits, whose size does not follow a rating
# scale, so none of it scales with the data's. Adam's rate and the penalty were chosen on MovieLens 100k's per-user
# split of seed 1 (64 factors, 20 epochs, 4 negatives; NDCG@10 bce 0.4025 at 1e-2 and 1e-3, bpr 0.3783 at 2e-2 and
# 1e-2, against weighted ALS's 0.4416, which stays the default); SGD's and momentum's rates are not tuned.
IMPLICIT_GRADIENT = {"lr": {"bce": 1e-2, "bpr": 2e-2}, "wd": {"bce": 1e-3, "bpr": 1e-2}, "epochs": 20,
                     "n_factors": 64, "sgd_factor": {"sgd": 50.0, "momentum": 10.0, "adam": 1.0, "adamw": 1.0}}


def _implicit_gradient(cfg: TrainConfig, stats: DataStats) -> dict[str, Any]:
    """Implicit feedback by a gradient optimizer: the dot product (with biases, as the lesson's) and a sigmoid in
    the loss (bce) or a pairwise loss (bpr) over sampled negatives; no feature blocks, no keep-best."""
    steps = 32
    batch_size = cfg.batch_size or 1 << max(8, min(18, int(stats.n_ratings / steps).bit_length() - 1))
    d, loss = IMPLICIT_GRADIENT, cfg.implicit_loss or "bce"
    return {"implicit_loss": loss, "n_factors": cfg.n_factors or d["n_factors"],
            "lr": cfg.lr or d["lr"][loss] * d["sgd_factor"][cfg.optimizer], "wd": d["wd"][loss] if cfg.wd is None
            else cfg.wd,
            "epochs": cfg.epochs or d["epochs"], "use_y_range": False, "y_range": None, "implicit": False,
            "genres": False, "day": False, "output": "gaussian", "keep_best": False, "pretrain": False,
            "wd_mode": cfg.wd_mode or "l2", "layer_wd": 0.0, "batch_size": batch_size, "eps": cfg.eps or 1e-8,
            "emb_lr_scale": cfg.emb_lr_scale or 1.0, "fused": False}


def _fit(cfg: TrainConfig, stats: DataStats) -> dict[str, Any]:
    """The optimizer, what each user rated, the sigmoid, the factor counts and the net's pretraining."""
    optimizer = cfg.optimizer or default_optimizer(cfg.model, stats.n_ratings)
    for name, what in BAYES_BLOCKS.items():
        if getattr(cfg, name) and optimizer != "gibbs":
            raise ValueError(f"{what} is part of the Bayesian fit, and this data trains with {optimizer} "
                             f"({stats.n_ratings:,} ratings): turn it off, or choose Gibbs sampling")
    # What each user rated, and who rated each item: the Bayesian fit predicts better with it on every check made
    # (MovieLens 100k, ratings x2 and x0.2, other seeds, per-user and time splits: by 0.015 to 0.021; `bench/accuracy.py
    # --robustness`) and takes about three times as long (a sweep on 800,000 ratings: 1.0 s against 0.3 s).
    bayes = optimizer == "gibbs" and cfg.model != "nn"
    implicit = cfg.implicit if cfg.implicit is not None else bayes
    # The items' genres, where the item table has them (Recommender.build turns the block off where it has none):
    # MovieLens 100k predicts better with them (0.8822 against 0.8846 with the implicit blocks; `bench/accuracy.py`).
    genres = cfg.genres if cfg.genres is not None else bayes
    changes: dict[str, Any] = {"optimizer": optimizer, "implicit": bool(implicit), "genres": bool(genres),
                               "output": _output(cfg, stats, bayes)}
    if optimizer == "gibbs":  # a linear model: no sigmoid
        changes.update(use_y_range=False, y_range=None)
    elif cfg.y_range is None and cfg.use_y_range:
        changes["y_range"] = default_y_range(stats.rating_min, stats.rating_max)
    n_factors = cfg.n_factors or default_n_factors(cfg.model, optimizer, stats.n_ratings)
    changes["n_factors"] = n_factors
    if cfg.model == "nn":
        changes["user_factors"] = cfg.user_factors or n_factors
        changes["item_factors"] = cfg.item_factors or n_factors
    # The net's embeddings start from a Bayesian fit where that fit is the default (it needs one spare dimension, for
    # the bias, beside at least one factor).
    changes["pretrain"] = cfg.model == "nn" \
        and (stats.n_ratings < GIBBS_MAX_RATINGS if cfg.pretrain is None else bool(cfg.pretrain)) \
        and min(changes["user_factors"], changes["item_factors"]) >= 2
    return changes


def _output(cfg: TrainConfig, stats: DataStats, bayes: bool) -> str:
    """The Bayesian fit's output. The ordered probit predicted better than the Gaussian on every check made
    (MovieLens 100k, default features, 120 sweeps, `bench/accuracy.py` and `--robustness`: random split 0.8789
    against 0.8822, ratings x2 0.8787 against 0.8819, x0.2 0.8786 against 0.8825, seed 1 0.8690 against 0.8703,
    per-user 0.8773 against 0.8779, each user's latest 20% 0.9196 against 0.9242) in about 1.5 times the time, so it
    is the default wherever the ratings are a few levels."""
    few = 2 <= stats.n_levels <= ORDINAL_MAX_LEVELS
    if cfg.output == "ordinal":
        if not bayes:
            raise ValueError("the ordinal output is part of the Bayesian fit, and this data trains with "
                             f"{cfg.optimizer or default_optimizer(cfg.model, stats.n_ratings)}: choose Gibbs "
                             "sampling, or the gaussian output")
        if not few:
            raise ValueError(f"the ordinal output needs ratings on 2 to {ORDINAL_MAX_LEVELS} levels, and these take "
                             f"{stats.n_levels:,} distinct values: choose the gaussian output")
    return cfg.output or ("ordinal" if bayes and few else "gaussian")


def _strength(cfg: TrainConfig, stats: DataStats) -> float:
    """How much stronger than on MovieLens 100k a penalty (or a gradient) is on these ratings.

    Strengths tuned on MovieLens 100k (1..5, std 1.126) scale with the spread of the ratings: the std, not max - min,
    so a few outliers on a continuous scale do not over-regularise. A squared error grows with the square of the
    spread. Behind a sigmoid y_range (which stretches with the ratings) the weights are logits, the same whatever the
    scale, so penalties and gradients grow with the square too. In a linear model the factors grow with the root of
    the scale, so the factors' squared norms grow linearly."""
    scale = max(stats.rating_std, 1e-6) / 1.126
    return scale**2 if cfg.use_y_range and cfg.y_range is not None else scale


def _strengths(cfg: TrainConfig, stats: DataStats) -> dict[str, Any]:
    """Weight decay (and its mode), the hidden layers' L2 and the learning rate, scaled to the ratings' spread."""
    strength = _strength(cfg, stats)
    wd_mode = cfg.wd_mode or ("decoupled" if cfg.optimizer == "adamw" else "l2")
    changes: dict[str, Any] = {"wd_mode": wd_mode}
    if cfg.wd is None:  # the penalty competes with the squared errors
        base = (DEFAULT_WD_DECOUPLED if wd_mode == "decoupled" else DEFAULT_WD)[cfg.model]
        changes["wd"] = base * (strength if wd_mode == "l2" else 1.0)  # decoupled decay is a rate, not a penalty
    if cfg.layer_wd is None:
        changes["layer_wd"] = DEFAULT_LAYER_WD[cfg.pretrain] * strength if cfg.model == "nn" else 0.0
    if cfg.lr is None and cfg.optimizer in DEFAULT_LR:  # gibbs has no learning rate
        # Adam's steps do not depend on the gradient's size; SGD's grow with it, so its rate shrinks as it grows.
        changes["lr"] = DEFAULT_LR[cfg.optimizer] / (strength if cfg.optimizer in ("sgd", "momentum") else 1.0) \
            * (PRETRAINED_LR_FACTOR if cfg.pretrain else 1.0)
    return changes


def _steps(cfg: TrainConfig, stats: DataStats) -> dict[str, Any]:
    """The batch size, the embeddings' rate multiplier, Adam's eps and the epochs."""
    changes: dict[str, Any] = {}
    batch_size = cfg.batch_size
    if batch_size is None:
        # At least 32 steps per epoch (64 for the net, which gains from more), a power of two, capped so huge data
        # still makes big, fast steps. Quality holds across batch sizes because the L2 penalty is per rating and
        # eps scales with 1/batch_size.
        steps = 64 if cfg.model == "nn" else 32
        batch_size = changes["batch_size"] = 1 << max(8, min(18, int(stats.n_ratings / steps).bit_length() - 1))
    if cfg.emb_lr_scale is None:
        changes["emb_lr_scale"] = max(1.0, batch_size * EMB_LR_PER_RATING[cfg.optimizer]) \
            if cfg.optimizer in EMB_LR_PER_RATING else 1.0
    if cfg.eps is None:
        changes["eps"] = EPS_PER_RATING * _strength(cfg, stats) / batch_size
    if cfg.epochs is None:
        changes["epochs"] = default_epochs(cfg.optimizer, stats.n_ratings)
    return changes
