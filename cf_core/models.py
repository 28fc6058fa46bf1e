"""The lesson's models: dot product (with biases and a sigmoid `y_range`) and a neural net over embeddings.

Models only compute: `forward(user, item)` takes index tensors and returns predicted ratings, and
`penalty(user, item)` returns the per-rating L2 term of the embeddings a batch used. Training, id mapping and
fallbacks for unknown ids live elsewhere (`train.py`, `recommender.py`).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .ordinal import Probit, expected


def sigmoid_range(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Squash x into (lo, hi), as fastai's `sigmoid_range`."""
    return torch.sigmoid(x) * (hi - lo) + lo


def _embedding(n: int, dim: int, std: float) -> nn.Embedding:
    emb = nn.Embedding(n, dim)
    nn.init.normal_(emb.weight, 0.0, std)
    return emb


def _logit_of(value: float, y_range: tuple[float, float] | None) -> float:
    """The pre-activation that makes the output equal `value` (so training starts at the mean rating)."""
    if y_range is None:
        return value
    lo, hi = y_range
    p = min(max((value - lo) / (hi - lo), 1e-3), 1 - 1e-3)
    return math.log(p / (1 - p))


class DotProduct(nn.Module):
    """Plain matrix factorization: rating = user . item (optionally squashed into `y_range`)."""

    has_bias = False

    def __init__(self, n_users: int, n_items: int, n_factors: int, y_range: tuple[float, float] | None = None,
                 init_std: float = 0.01, mean_rating: float = 0.0):
        super().__init__()
        self.user_factors = _embedding(n_users, n_factors, init_std)
        self.item_factors = _embedding(n_items, n_factors, init_std)
        self.y_range = tuple(y_range) if y_range is not None else None
        # A global offset (the mean rating) lets the factors model only the deviations.
        self.global_bias = nn.Parameter(torch.tensor(_logit_of(mean_rating, self.y_range)))

    def raw(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        return (self.user_factors(user) * self.item_factors(item)).sum(1) + self.global_bias

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        x = self.raw(user, item)
        return sigmoid_range(x, *self.y_range) if self.y_range is not None else x

    def forward_user(self, vector: torch.Tensor, bias: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Predictions of a user given as a factor vector (and bias) rather than an index: for fold-in."""
        x = self.linear_user(vector, bias, item)
        if self.y_range is not None:
            return sigmoid_range(x, *self.y_range)
        probit, mean = self.probit(), self.global_bias
        return x if probit is None else mean + expected(probit.levels, probit.cutpoints, x - mean, probit.spread)

    def linear_user(self, vector: torch.Tensor, bias: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """The linear output (before any y_range or ordered probit) of a user given as a vector and bias."""
        x = self.item_factors(item) @ vector + self.global_bias
        return x + bias + self.item_bias(item).squeeze(1) if self.has_bias else x

    def probit(self) -> Probit | None:
        """A Bayesian fit's ordered probit with its kept draws' average cutpoints (`ordinal.py`), for what the
        posterior-mean weights predict (a new user's fold-in); None without one."""
        draws = getattr(self, "draws", None)
        if draws is None or not draws.ordinal or not int(draws.n_kept):
            return None
        return Probit(draws.levels, draws.cutpoints[:int(draws.n_kept)].mean(0), float(draws.spread))

    def penalty(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of the squared norms of the embeddings each rating used."""
        return (self.user_factors(user).pow(2).sum(1) + self.item_factors(item).pow(2).sum(1)).mean()


class DotProductBias(DotProduct):
    """fastai's `EmbeddingDotBias`: user . item + user_bias + item_bias, squashed into `y_range`."""

    has_bias = True

    def __init__(self, n_users: int, n_items: int, n_factors: int, y_range: tuple[float, float] | None = None,
                 init_std: float = 0.01, mean_rating: float = 0.0):
        super().__init__(n_users, n_items, n_factors, y_range, init_std, mean_rating)
        self.user_bias = _embedding(n_users, 1, 0.0)
        self.item_bias = _embedding(n_items, 1, 0.0)

    def raw(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        dot = (self.user_factors(user) * self.item_factors(item)).sum(1)
        return dot + self.user_bias(user).squeeze(1) + self.item_bias(item).squeeze(1) + self.global_bias

    def bias_penalty(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of the squared biases each rating used."""
        return (self.user_bias(user).pow(2) + self.item_bias(item).pow(2)).mean()


SECONDS_PER_DAY = 86_400


class DayTerms(nn.Module):
    """What the day of a rating adds to a dot product, as the Bayesian fit's day block learns it (`bayes_fm.py`):
    v_t . (user + item) + w_t, for `n_days` days from day `first` (days since 1970, UTC), from the posterior-mean
    weights. A rating whose day is outside them, or unknown, gets the average day's terms. Attached to a dot-product
    model as its `day`; `forward` of the model itself leaves it out (top-N and similar items have no day);
    `Recommender` adds it to every prediction of a rating (evaluation), with the rating's day where its time is
    known. Where the model also has kept draws (`PosteriorDraws`), those predict ratings instead, day terms and all.
    """

    def __init__(self, n_days: int, n_factors: int, first: int = 0):
        super().__init__()
        self.factors = _embedding(n_days, n_factors, 0.0)
        self.bias = _embedding(n_days, 1, 0.0)
        self.register_buffer("first", torch.tensor(int(first)))

    @classmethod
    def like(cls, state: dict[str, torch.Tensor], prefix: str = "") -> DayTerms:
        """An empty DayTerms of the shapes in a state dict (to load it into)."""
        return cls(*state[f"{prefix}factors.weight"].shape)

    def index(self, timestamp: torch.Tensor) -> torch.Tensor:
        """Day rows of timestamps (seconds since 1970); -1 for a day outside the fit's."""
        day = torch.div(timestamp, SECONDS_PER_DAY, rounding_mode="floor") - self.first
        return torch.where((day >= 0) & (day < self.factors.num_embeddings), day, -1)

    def forward(self, model: nn.Module, user: torch.Tensor, item: torch.Tensor, day: torch.Tensor) -> torch.Tensor:
        """The day's part of each rating's prediction; a day outside the fit's (-1) gets the average day's."""
        known, t = day >= 0, day.clamp(min=0)
        v = torch.where(known[:, None], self.factors(t), self.factors.weight.mean(0))
        x = (v * (model.user_factors(user) + model.item_factors(item))).sum(1)
        return x + torch.where(known, self.bias(t).squeeze(1), self.bias.weight.mean())


class PosteriorDraws(nn.Module):
    """Draws a Gibbs fit kept of its weights, in rating units: in each, every user's [factors | bias] (the factors
    with their relation blocks folded in), every item's, and with the day block every day's [v_t | w_t].

    The prediction of a rating is the average of the draws' predictions, the posterior predictive mean, as Bayesian
    PMF and myFM predict: the average of p . q over draws is not the product of the averaged p and q, and on
    MovieLens 100k it predicts better (`bayes.py`). The model's own embeddings stay the posterior means, for
    everything that needs one vector per user or item (PCA, similar items, top-N, fold-in).

    With the ordered-probit output (`ordinal.py`) the draws also keep their cutpoints, and a draw predicts the
    expected rating of its output x (`levels`: the rating levels, `cutpoints` and x about the global mean, in rating
    units; `spread`: the latent noise's standard deviation in them).
    """

    def __init__(self, capacity: int, n_users: int, n_items: int, n_factors: int, n_days: int = 0,
                 levels: torch.Tensor | None = None, spread: float = 1.0):
        super().__init__()
        for name, rows in (("users", n_users), ("items", n_items), ("days", n_days)):
            self.register_buffer(name, torch.zeros(capacity, rows, n_factors + 1))
        self.register_buffer("n_kept", torch.tensor(0))
        levels = torch.zeros(0) if levels is None else levels.float()
        self.register_buffer("levels", levels.clone())
        self.register_buffer("cutpoints", torch.zeros(capacity, max(len(levels) - 1, 0)))
        self.register_buffer("spread", torch.tensor(float(spread)))

    @classmethod
    def like(cls, state: dict[str, torch.Tensor], prefix: str = "") -> PosteriorDraws:
        """An empty PosteriorDraws of the shapes in a state dict (to load it into)."""
        capacity, n_users, width = state[f"{prefix}users"].shape
        levels = state.get(f"{prefix}levels")  # (none in runs saved before the ordered probit)
        return cls(capacity, n_users, state[f"{prefix}items"].shape[1], width - 1, state[f"{prefix}days"].shape[1],
                   levels if levels is not None and len(levels) else None)

    @property
    def ordinal(self) -> bool:
        return len(self.levels) > 0

    def _outputs(self, a: int, b: int, user: torch.Tensor, item: torch.Tensor,
                 day: torch.Tensor | None) -> torch.Tensor:
        """Draws a..b-1's outputs x (their linear predictions less the global mean), (b - a) x ratings."""
        k = self.users.shape[2] - 1
        p, q = self.users[a:b].index_select(1, user), self.items[a:b].index_select(1, item)
        x = (p[..., :k] * q[..., :k]).sum(2) + p[..., k] + q[..., k]
        if day is not None and self.days.shape[1] > 0:
            rows = self.days[a:b]
            v = torch.where((day >= 0)[None, :, None], rows.index_select(1, day.clamp(min=0)), rows.mean(1, True))
            x += (v[..., :k] * (p[..., :k] + q[..., :k])).sum(2) + v[..., k]
        return x

    def _expected(self, a: int, b: int, x: torch.Tensor) -> torch.Tensor:
        """Draws a..b-1's expected ratings (less the global mean) of their outputs x under their cutpoints."""
        return expected(self.levels, self.cutpoints[a:b, None, :], x, self.spread)

    def one(self, s: int, user: torch.Tensor, item: torch.Tensor, day: torch.Tensor | None = None) -> torch.Tensor:
        """Draw s's prediction, less the global mean (as `forward` for that draw alone)."""
        x = self._outputs(s, s + 1, user, item, day)
        return (self._expected(s, s + 1, x) if self.ordinal else x)[0]

    def forward(self, user: torch.Tensor, item: torch.Tensor, day: torch.Tensor | None = None) -> torch.Tensor:
        """The average over the kept draws of p_u . q_i + b_u + c_i (+ v_t . (p_u + q_i) + w_t where `day`, the
        ratings' day rows, is given and the draws have days; -1: the average day's), less the global mean.

        The average of the draws' dot products is one dot product of each row's draws side by side (n x k wide), and
        the biases' is the dot product with their mean: computed so, a rating at a time, in chunks of ratings."""
        n, k = int(self.n_kept), self.users.shape[2] - 1
        if not n:
            return torch.zeros(len(user), device=user.device)
        if self.ordinal:  # each draw's expected rating: one draw's output at a time per rating, not a dot product
            step = max(1, (1 << 22) // (n * (k + 1)))
            return torch.cat([self._expected(0, n, self._outputs(0, n, user[a:a + step], item[a:a + step],
                                                                  None if day is None else day[a:a + step])).mean(0)
                              for a in range(0, len(user), step)]) if len(user) else torch.zeros(0)

        def side_by_side(draws: torch.Tensor) -> torch.Tensor:  # rows x (n k): each row's draws' factors
            return draws[:n, :, :k].permute(1, 0, 2).reshape(draws.shape[1], n * k)

        P, Q = side_by_side(self.users), side_by_side(self.items)
        out = self.users[:n, :, k].mean(0)[user] + self.items[:n, :, k].mean(0)[item]
        with_day = day is not None and self.days.shape[1] > 0
        if with_day:
            known, t = day >= 0, day.clamp(min=0)
            V, V_mean = side_by_side(self.days), self.days[:n, :, :k].mean(1).reshape(n * k)
            w = self.days[:n, :, k].mean(0)
            out = out + torch.where(known, w[t], w.mean())
        step = max(1, (1 << 22) // (n * k))  # ratings at once: 4M floats of each side's rows
        for a in range(0, len(user), step):
            p, q = P.index_select(0, user[a:a + step]), Q.index_select(0, item[a:a + step])
            x = p * q
            if with_day:
                v = torch.where(known[a:a + step, None], V.index_select(0, t[a:a + step]), V_mean)
                x += v * (p + q)
            out[a:a + step] += x.sum(1) / n
        return out


class EmbeddingNN(nn.Module):
    """fastai's `EmbeddingNN`: concatenated user and item embeddings through hidden layers with dropout."""

    has_bias = False

    def __init__(self, n_users: int, n_items: int, user_factors: int, item_factors: int,
                 layers: tuple[int, ...] = (128,), dropout: tuple[float, ...] = (0.2,), emb_dropout: float = 0.0,
                 y_range: tuple[float, float] | None = None, init_std: float = 0.01, mean_rating: float = 0.0):
        super().__init__()
        if len(dropout) == 1 and len(layers) > 1:
            dropout = tuple(dropout) * len(layers)
        if len(dropout) != len(layers):
            raise ValueError(f"need one dropout per hidden layer: {len(layers)} layers, {len(dropout)} dropouts")
        self.user_factors = _embedding(n_users, user_factors, init_std)
        self.item_factors = _embedding(n_items, item_factors, init_std)
        self.emb_drop = nn.Dropout(emb_dropout)
        blocks: list[nn.Module] = []
        width = user_factors + item_factors
        for size, p in zip(layers, dropout):
            blocks += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(p)]
            width = size
        self.layers = nn.Sequential(*blocks)
        self.head = nn.Linear(width, 1)
        self.y_range = tuple(y_range) if y_range is not None else None
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, _logit_of(mean_rating, self.y_range))

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        x = self.emb_drop(torch.cat([self.user_factors(user), self.item_factors(item)], dim=1))
        x = self.head(self.layers(x)).squeeze(1)
        return sigmoid_range(x, *self.y_range) if self.y_range is not None else x

    def forward_user(self, vector: torch.Tensor, bias: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Predictions of a user given as an embedding vector rather than an index: for fold-in."""
        x = torch.cat([vector.expand(len(item), -1), self.item_factors(item)], dim=1)
        x = self.head(self.layers(x)).squeeze(1)
        return sigmoid_range(x, *self.y_range) if self.y_range is not None else x

    def penalty(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of the squared norms of the embeddings each rating used."""
        return (self.user_factors(user).pow(2).sum(1) + self.item_factors(item).pow(2).sum(1)).mean()

    def layer_penalty(self) -> torch.Tensor:
        """Squared norm of the hidden layers' weights (every rating uses them, so it is not averaged)."""
        return sum(m.weight.pow(2).sum() for m in self.layers if isinstance(m, nn.Linear))


MODELS = {"dotbias": DotProductBias, "dot": DotProduct, "nn": EmbeddingNN}
