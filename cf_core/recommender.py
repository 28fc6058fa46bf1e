"""`Recommender`: one interface for every model (Surprise's AlgoBase): fit, predict on raw ids, evaluate.

It owns what a bare model does not know: the id <-> index mappings, the rating scale, the device, and the
fallback for users or items never seen in training (global mean plus whatever bias is known), so unknown ids
never reach an embedding lookup.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from .config import TrainConfig, data_stats, resolve
from .cost import check_cost
from .ids import IdMap
from .lr_find import LRFinderResult, find_lr
from .metrics import mae, rmse
from .models import MODELS, SECONDS_PER_DAY, DayTerms, EmbeddingNN, PosteriorDraws
from .pretrain import pretrain_embeddings
from .recording import Callback, History
from .train import Checkpoint, Tensors, Trainer, pick_device

# Shrinkage of the fallback biases toward zero, in ratings (the classic damped baseline).
ITEM_DAMPING, USER_DAMPING = 25.0, 10.0
PREDICT_CHUNK = 1 << 18  # rows per forward pass when predicting: bounds the memory of a 25M-row evaluation


def _frame(data: Any) -> pd.DataFrame:
    """Accept a `Ratings` (from cf_core.data) or a DataFrame with user, item, rating columns."""
    df = getattr(data, "df", data)
    missing = {"user", "item", "rating"} - set(df.columns)
    if missing:
        raise ValueError(f"ratings need columns user, item, rating; missing {', '.join(sorted(missing))}")
    return df


@torch.no_grad()
def _draws_average(draws: PosteriorDraws, running: dict, user: torch.Tensor, item: torch.Tensor,
                   day: torch.Tensor | None) -> torch.Tensor:
    """The kept draws' average prediction (less the mean) of the same ratings, sweep after sweep, from `running`
    (the draws, their number and the sum of their predictions at the last call): where one draw was added since,
    only its prediction is computed; where the draws were thinned (or are others), all of them."""
    n = int(draws.n_kept)
    same = running.get("draws") is draws
    if same and n == running["n"]:
        return running["sum"] / n
    if same and n == running["n"] + 1:
        total = running["sum"] + draws.one(n - 1, user, item, day)
    else:
        total = draws(user, item, day) * n
    running.update(draws=draws, n=n, sum=total)
    return total / n


def item_genres(items: pd.DataFrame | None, item_map: IdMap) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """The genres of the trained items, from an item table's `genres` column (genres separated by |): (item index,
    genre index, number of genres), one entry per item and genre; None where the table gives none."""
    if items is None or "genres" not in items.columns or "item" not in items.columns:
        return None
    table = items[["item", "genres"]].dropna()
    # matched as text, id by id: an item table read with string ids ("12") meets ratings read with integer ones
    idx = pd.Index(item_map.ids.astype(str)).get_indexer(table["item"].astype(str))
    pairs = pd.DataFrame({"item": idx, "genre": table["genres"].astype(str).str.split("|")}).explode("genre")
    pairs["genre"] = pairs["genre"].str.strip()
    pairs = pairs[(pairs["item"] >= 0) & (pairs["genre"] != "")].drop_duplicates()
    if pairs.empty:
        return None
    codes, names = pd.factorize(pairs["genre"], sort=True)
    return torch.tensor(pairs["item"].to_numpy(np.int64)), torch.from_numpy(codes.astype(np.int64)), len(names)


class Recommender:
    """A collaborative-filtering model with its id mappings; `fit` returns self."""

    def __init__(self, config: TrainConfig | None = None, **overrides: Any):
        self.config = (config or TrainConfig()).replace(**overrides) if overrides else (config or TrainConfig())
        self.config.validate()
        self.model: torch.nn.Module | None = None
        self.history = History()
        self.user_map: IdMap | None = None   # raw id <-> index, from the training data (`build`)
        self.item_map: IdMap | None = None
        self.device = torch.device("cpu")
        self.warnings: list[str] = []  # what the fit's settings cost, when it is a lot (cost.check_cost)
        # From the training ratings (`build`), saved with the run (STATE_ARRAYS):
        self.rating_scale: tuple[float, float] = (0.0, 0.0)  # the lowest and highest rating; predictions are clipped
        self.global_mean = 0.0
        self.user_counts = self.item_counts = np.zeros(0, dtype=np.int64)  # ratings per user, per item
        self.user_sum = self.item_sum = np.zeros(0)                        # and their sums
        self.user_offset = self.item_offset = np.zeros(0)  # damped biases: the cold-start fallback (`fallback`)
        self.rated_indptr = np.zeros(1, dtype=np.int64)    # what each user rated, as CSR over item indices
        self.rated_items = np.zeros(0, dtype=np.int32)
        self._train_tensors: Tensors | None = None  # the encoded training ratings, on the device, while fitting

    # ------------------------------------------------------------ building
    def build(self, df: pd.DataFrame, items: pd.DataFrame | None = None) -> None:
        """Resolve the settings from `df`, map its ids, compute the fallbacks and make a fresh, untrained model (for
        `fit`, `lr_find` and the benchmarks; nothing is trained here). `items`: the item table, whose genres the
        Bayesian fit's genres block reads."""
        df = self._interactions(df)
        stats = data_stats(df)
        asked = {name: getattr(self.config, name) for name in ("genres", "day")}
        self.config = resolve(self.config, stats)
        self.device = pick_device(self.config.device)
        self.warnings = check_cost(self.config, stats, str(self.device))  # TooCostly before any large allocation
        self.user_map = IdMap.from_values(df["user"].to_numpy(), "user")
        self.item_map = IdMap.from_values(df["item"].to_numpy(), "item")
        self.rating_scale = (stats.rating_min, stats.rating_max)
        # int32 indices and float32 ratings: at 25M ratings every 8-byte column costs 200 MB.
        user = self.user_map.encode(df["user"].to_numpy()).astype(np.int32)
        item = self.item_map.encode(df["item"].to_numpy()).astype(np.int32)
        rating = np.require(df["rating"].to_numpy(dtype=np.float32), requirements="W")  # torch needs writable memory
        self.global_mean = stats.rating_mean
        nu, ni = len(self.user_map), len(self.item_map)
        self.user_counts = np.bincount(user, minlength=nu)
        self.item_counts = np.bincount(item, minlength=ni)
        self.item_sum = np.bincount(item, weights=rating, minlength=ni)
        self.user_sum = np.bincount(user, weights=rating, minlength=nu)
        # Damped baseline biases: the fallback for cold users or items (global mean plus known bias).
        n_mean_i = self.item_counts * self.global_mean
        self.item_offset = (self.item_sum - n_mean_i) / (self.item_counts + ITEM_DAMPING)
        # sum over a user's ratings of (r - mean - item_offset) = user_sum - n mean - sum of their items' offsets
        their_offsets = np.bincount(user, weights=self.item_offset.astype(np.float32)[item], minlength=nu)
        self.user_offset = ((self.user_sum - self.user_counts * self.global_mean - their_offsets)
                            / (self.user_counts + USER_DAMPING))
        # What each user rated, as CSR (indptr into item indices), to leave it out of their recommendations.
        self.rated_indptr = np.concatenate([[0], np.cumsum(self.user_counts)]).astype(np.int64)
        self.rated_items = item[np.argsort(user, kind="stable")]
        if self.config.feedback == "implicit":  # a score is a preference, 0 (none) to 1; no biases to fall back on
            self.global_mean, self.rating_scale = 0.0, (0.0, 1.0)
            self.user_offset, self.item_offset = np.zeros(nu), np.zeros(ni)
        self.model = self._new_model().to(self.device)
        genres, day = self._block_data(df, items, asked)
        self._train_tensors = Tensors(torch.from_numpy(user), torch.from_numpy(item),
                                      torch.from_numpy(rating), genres, day).to(self.device)

    def _interactions(self, df: pd.DataFrame) -> pd.DataFrame:
        """The rows that train: all of them, or for implicit feedback with `like` only the ratings of at least it."""
        cfg = self.config
        if cfg.feedback != "implicit" or cfg.like is None:
            return df
        kept = df[df["rating"].to_numpy(dtype=np.float64) >= cfg.like]
        if len(kept) < 2:
            raise ValueError(f"only {len(kept):,} of the {len(df):,} ratings are at least {cfg.like:g}, the rating "
                             "that counts as liked: choose a lower one")
        return kept

    def _block_data(self, df: pd.DataFrame, items: pd.DataFrame | None, asked: dict[str, bool | None]):
        """The Bayesian fit's genres (from `items`) and each rating's day (from `df`'s timestamps, the model's `day`
        attached): a block that is on by default goes off where the data has nothing for it; one asked for raises."""
        genres = item_genres(items, self.item_map) if self.config.genres else None
        has_time = "timestamp" in df.columns and len(df) > 0
        for name, missing, what in (("genres", genres is None, "an item table with a genres column (genres "
                                                               "separated by |) for the items rated"),
                                    ("day", not has_time, "the ratings' timestamps")):
            if getattr(self.config, name) and missing:
                if asked[name]:
                    raise ValueError(f"the {name} block needs {what}: give them, or turn the block off")
                self.config = self.config.replace(**{name: False})  # on by default only where there is data for it
                if name == "genres" and items is not None and "genres" in items.columns:
                    self.warnings.append("The item table's ids match none of the rated items, so the fit does not "
                                         "learn from their genres: check that its item column holds the same ids.")
        if not self.config.day:
            return genres, None
        day = torch.div(torch.tensor(df["timestamp"].to_numpy(np.int64)), SECONDS_PER_DAY, rounding_mode="floor")
        first = int(day.min())
        self.model.day = DayTerms(int(day.max()) - first + 1, self.config.n_factors, first).to(self.device)
        return genres, day - first

    def _new_model(self) -> torch.nn.Module:
        cfg, nu, ni = self.config, len(self.user_map), len(self.item_map)
        torch.manual_seed(cfg.seed)
        y_range = cfg.y_range if cfg.use_y_range else None
        if cfg.model == "nn":
            return EmbeddingNN(nu, ni, cfg.user_factors, cfg.item_factors, tuple(cfg.layers), tuple(cfg.dropout),
                               cfg.emb_dropout, y_range, cfg.init_std, self.global_mean)
        return MODELS[cfg.model](nu, ni, cfg.n_factors, y_range, cfg.init_std,
                                 0.0 if cfg.feedback == "implicit" else self.global_mean)

    # ------------------------------------------------------------ training
    def fit(self, train: Any, valid: Any = None, callbacks: Sequence[Callback] = (),
            cancel: threading.Event | None = None, resume: Checkpoint | None = None,
            items: pd.DataFrame | None = None) -> Recommender:
        """Train on `train`; with `valid`, report validation RMSE/MAE each epoch and keep the best epoch.

        `items`: the item table (item, title, genres, ...), whose genres the Bayesian fit learns from (`genres`).

        `resume`: a checkpoint of an earlier fit of the same data and settings (`Trainer.checkpoint`, taken by a
        callback); the fit goes on from it (the net's pretraining, already in its weights, is not run again).
        """
        df = _frame(train)
        self.build(df, items)
        # (implicit feedback has no rating to predict: its runs are judged by their top K, `ranking`)
        evaluate = self._validator(_frame(valid)) if valid is not None and len(_frame(valid)) \
            and self.config.feedback != "implicit" else None
        if self.config.model == "nn" and self.config.pretrain and resume is None:
            dot, fit, history = pretrain_embeddings(self.model, self.config, self._train_tensors, self.global_mean,
                                                     callbacks, cancel, evaluate)
            if cancel is not None and cancel.is_set():
                # Stopped while the embeddings were being fitted: the best model so far is that Bayesian fit of the
                # dot product with biases, not a net that never trained. Keep it as the run.
                self.model, self.config, self.history = dot, fit.replace(keep_best=self.config.keep_best), history
                self._train_tensors = None
                return self
        trainer = Trainer(self.model, self.config, callbacks, cancel)
        self.history = trainer.fit(self._train_tensors, evaluate, resume)
        self._train_tensors = None
        return self

    def lr_find(self, train: Any, **kwargs: Any) -> LRFinderResult:
        """Run the learning-rate finder on a fresh model for `train` (the weights are thrown away)."""
        self.build(_frame(train))
        result = find_lr(self.model, self._train_tensors, self.config, **kwargs)
        self._train_tensors = None
        return result

    def _validator(self, valid: pd.DataFrame):
        """A closure computing (rmse, mae) on `valid`, cold rows predicted by the fallback."""
        u, i = (self.user_map.encode(valid["user"].to_numpy(), "ignore"),
                self.item_map.encode(valid["item"].to_numpy(), "ignore"))
        truth = torch.tensor(valid["rating"].to_numpy(dtype=np.float32), device=self.device)
        day = self._days(valid)
        warm = (u >= 0) & (i >= 0)
        fallback = torch.from_numpy(self.fallback(u, i).astype(np.float32)).to(self.device)
        warm_t = torch.from_numpy(warm).to(self.device)
        tu, ti = (torch.from_numpy(np.where(warm, u, 0)).to(self.device),
                  torch.from_numpy(np.where(warm, i, 0)).to(self.device))
        lo, hi = self.rating_scale

        running: dict = {}  # a Bayesian fit's kept draws: the sum of their predictions so far

        def evaluate(model: torch.nn.Module) -> tuple[float, float]:
            draws = getattr(model, "draws", None)
            raw = self.predict_tensor(model, tu, ti, day) if draws is None or not int(draws.n_kept) \
                else model.global_bias.detach() + _draws_average(draws, running, tu, ti, day)
            pred = torch.where(warm_t, raw.clamp(lo, hi), fallback)
            err = pred - truth
            return float(err.pow(2).mean().sqrt()), float(err.abs().mean())

        return evaluate

    # ------------------------------------------------------------ predicting
    @torch.no_grad()
    def predict_tensor(self, model: torch.nn.Module, user: torch.Tensor, item: torch.Tensor,
                       day: torch.Tensor | None = None) -> torch.Tensor:
        """`model`'s raw output (unclipped) for index tensors of known users and items, in chunks, in eval mode;
        with `day` (the model's day rows, `_days`), the day of each rating's part too. A Bayesian fit's model
        predicts by the average of its kept draws (`PosteriorDraws`) where it has some."""
        was_training = model.training
        model.eval()
        draws = getattr(model, "draws", None)
        if draws is not None and not int(draws.n_kept):
            draws = None

        def chunk(s: slice) -> torch.Tensor:
            if draws is not None:
                return model.global_bias + draws(user[s], item[s], None if day is None else day[s])
            out = model(user[s], item[s])
            return out + model.day(model, user[s], item[s], day[s]) if day is not None else out

        out = (torch.cat([chunk(slice(s, s + PREDICT_CHUNK)) for s in range(0, len(user), PREDICT_CHUNK)])
               if len(user) else torch.zeros(0, device=user.device))
        model.train(was_training)
        return out

    def _days(self, df: pd.DataFrame) -> torch.Tensor | None:
        """The model's day rows of `df`'s ratings where it has a day block (-1 for every rating when `df` has no
        timestamps: the average day's terms); else None."""
        if not hasattr(self.model, "day"):
            return None
        if "timestamp" not in df.columns:
            return torch.full((len(df),), -1, dtype=torch.long, device=self.device)
        return self.model.day.index(torch.tensor(df["timestamp"].to_numpy(np.int64)).to(self.device))

    def fallback(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Global mean plus the known user and item biases (0 for the unknown side)."""
        pred = self.global_mean + np.where(u >= 0, self.user_offset[np.maximum(u, 0)], 0.0) \
            + np.where(i >= 0, self.item_offset[np.maximum(i, 0)], 0.0)
        return np.clip(pred, *self.rating_scale)

    def _check_fitted(self) -> None:
        if self.model is None:
            raise RuntimeError("this Recommender is not trained yet: call fit() or load a run first")

    def predict_indices(self, u: np.ndarray, i: np.ndarray, day: torch.Tensor | None = None) -> np.ndarray:
        """Predictions for index arrays (-1 = unknown, predicted by the fallback), clipped to the rating scale; `day`:
        each pair's day row (`_days`), where the model has a day block and the ratings' time is known."""
        self._check_fitted()
        u, i = np.asarray(u, dtype=np.int64), np.asarray(i, dtype=np.int64)
        warm = (u >= 0) & (i >= 0)
        out = self.fallback(u, i)
        if warm.any():
            w = torch.from_numpy(warm).to(self.device)
            pred = self.predict_tensor(self.model, torch.from_numpy(u[warm]).to(self.device),
                                       torch.from_numpy(i[warm]).to(self.device), None if day is None else day[w])
            out[warm] = np.clip(pred.float().cpu().numpy(), *self.rating_scale)
        return out

    def predict(self, user: Any, item: Any, unknown: str = "fallback") -> np.ndarray:
        """Predicted ratings for raw (user, item) ids. unknown='fallback' (default) or 'error' (UnknownIdError)."""
        self._check_fitted()
        mode = "error" if unknown == "error" else "ignore"
        users, items = (np.atleast_1d(np.asarray(user, dtype=object if isinstance(user, str) else None)),
                        np.atleast_1d(np.asarray(item, dtype=object if isinstance(item, str) else None)))
        if len(users) == 1 and len(items) > 1:
            users = np.repeat(users, len(items))
        return self.predict_indices(self.user_map.encode(users, mode), self.item_map.encode(items, mode))

    def predict_frame(self, data: Any) -> pd.DataFrame:
        """The ratings with a `prediction` column and a `cold` flag (user or item unseen in training)."""
        df = _frame(data)
        u, i = (self.user_map.encode(df["user"].to_numpy(), "ignore"),
                self.item_map.encode(df["item"].to_numpy(), "ignore"))
        out = df[["user", "item", "rating"]].copy()
        out["prediction"] = self.predict_indices(u, i, self._days(df)).astype(np.float32)
        out["cold"] = (u < 0) | (i < 0)
        return out

    def evaluate(self, data: Any) -> dict:
        """RMSE and MAE on `data`, cold rows included (predicted by the fallback), with their count, and the RMSE of
        the baseline every model must beat: the training data's mean rating for everyone."""
        pf = self.predict_frame(data)
        if self.config.feedback == "implicit":  # no rating predicted: the top K's figures (with `like`, of the liked)
            from .ranking import ranking

            return {"rmse": None, "mae": None, "n": int(len(pf)), "n_cold": int(pf["cold"].sum()),
                    "baseline_rmse": None, "ranking": ranking(self, _frame(data), like=self.config.like)}
        return {"rmse": rmse(pf["prediction"], pf["rating"]), "mae": mae(pf["prediction"], pf["rating"]),
                "n": int(len(pf)), "n_cold": int(pf["cold"].sum()),
                "baseline_rmse": rmse(np.full(len(pf), self.global_mean), pf["rating"])}


    # ------------------------------------------------------------ saving and loading (used by store.py)
    STATE_ARRAYS = ("user_counts", "item_counts", "user_sum", "item_sum", "user_offset", "item_offset", "rated_indptr",
                    "rated_items")

    def to_state(self) -> tuple[dict, dict[str, torch.Tensor], dict]:
        """(meta, tensors, ids): everything needed to rebuild this Recommender, with no pickle."""
        self._check_fitted()
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        if hasattr(self.model, "draws"):  # the kept draws only, not the room left for more
            n = int(self.model.draws.n_kept)
            for name in ("users", "items", "days", "cutpoints"):
                tensors[f"model.draws.{name}"] = tensors[f"model.draws.{name}"][:n].clone()
        tensors.update({k: torch.from_numpy(np.ascontiguousarray(getattr(self, k))) for k in self.STATE_ARRAYS})
        meta = {"config": self.config.to_dict(), "history": self.history.to_dict(),
                "rating_scale": list(self.rating_scale), "global_mean": self.global_mean}
        return meta, tensors, {"user": self.user_map.to_list(), "item": self.item_map.to_list()}

    @classmethod
    def from_state(cls, meta: dict, tensors: dict[str, torch.Tensor], ids: dict, device: str = "auto") -> Recommender:
        """Inverse of `to_state`, onto `device` (a run trained on a GPU loads on a CPU and back)."""
        rec = cls(TrainConfig.from_dict(meta["config"]).replace(device=device))
        rec.device = pick_device(device)
        rec.user_map, rec.item_map = IdMap.from_list(ids["user"], "user"), IdMap.from_list(ids["item"], "item")
        rec.rating_scale = tuple(meta["rating_scale"])
        rec.global_mean = float(meta["global_mean"])
        for k in cls.STATE_ARRAYS:
            setattr(rec, k, tensors[k].numpy())
        rec.model = rec._new_model()
        if "model.day.factors.weight" in tensors:  # the Bayesian fit's day block
            rec.model.day = DayTerms.like(tensors, "model.day.")
        if "model.draws.users" in tensors:  # the Bayesian fit's kept draws
            rec.model.draws = PosteriorDraws.like(tensors, "model.draws.")
            for name, value in rec.model.draws.state_dict().items():  # runs saved before the ordered probit
                tensors.setdefault(f"model.draws.{name}", value)
        # (runs saved before the kept draws of the whole model kept the day's alone, as day.kept_*: not read)
        rec.model.load_state_dict({k[len("model."):]: v for k, v in tensors.items()
                                   if k.startswith("model.") and not k.startswith(("model.day.kept_",
                                                                                    "model.day.n_kept"))})
        rec.model.to(rec.device).eval()
        rec.history = History.from_dict(meta.get("history", {}))
        return rec

    # ------------------------------------------------------------ learned parameters, as numpy
    @property
    def n_users(self) -> int:
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    def item_factors(self) -> np.ndarray:
        """Item embedding matrix, one row per item index."""
        self._check_fitted()
        return self.model.item_factors.weight.detach().float().cpu().numpy()

    def user_factors(self) -> np.ndarray:
        """User embedding matrix, one row per user index."""
        self._check_fitted()
        return self.model.user_factors.weight.detach().float().cpu().numpy()

    def item_bias(self) -> np.ndarray | None:
        """Learned item biases (None for models without them)."""
        self._check_fitted()
        return (self.model.item_bias.weight.detach().float().cpu().numpy()[:, 0]
                if getattr(self.model, "has_bias", False) else None)

    def user_bias(self) -> np.ndarray | None:
        """Learned user biases (None for models without them)."""
        self._check_fitted()
        return (self.model.user_bias.weight.detach().float().cpu().numpy()[:, 0]
                if getattr(self.model, "has_bias", False) else None)


class TrainingDiverged(ValueError):
    """A fit whose weights or predictions are not finite numbers: it must not be saved as if it were a model."""


def check_finite(rec: Recommender, metrics: dict) -> None:
    """Raise TrainingDiverged, with what to try, when a fit diverged (NaN or infinite weights or validation error)."""
    weights_ok = all(bool(torch.isfinite(p).all()) for p in rec.model.parameters())
    rmse_ = metrics.get("rmse", metrics.get("valid_rmse"))
    if weights_ok and (rmse_ is None or np.isfinite(rmse_)):
        return
    lo, hi = rec.rating_scale
    raise TrainingDiverged(
        "training diverged: the model's " + ("weights" if not weights_ok else "predictions") + " became infinite or "
        "not a number, so nothing was saved. Try a smaller learning rate"
        + (f", and check the ratings, which run from {lo:g} to {hi:g}" if max(abs(lo), abs(hi)) > 1e6 else "") + ".")


def no_better_than_the_mean(metrics: dict) -> bool:
    """Whether a run's validation RMSE is not clearly (2%) below that of predicting the mean rating for everyone."""
    rmse_, base = metrics.get("valid_rmse"), metrics.get("valid_baseline_rmse")
    return rmse_ is not None and base is not None and not rmse_ < 0.98 * base
