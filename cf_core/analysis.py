"""What the dashboard shows about a trained model: predictions vs actuals, errors, PCA of the item
embeddings, learned biases, similar items, top-N recommendations and fold-in for a new user.

Every function takes a fitted `Recommender` (and optionally the item metadata: item, title, year, genres)
and returns DataFrames or arrays; nothing here draws.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA

from .recommender import Recommender


def _titles(rec: Recommender, items: pd.DataFrame | None, idx: np.ndarray) -> pd.DataFrame:
    """item id, title (and genres/year when known) for item indices."""
    ids = rec.item_map.decode(idx)
    out = pd.DataFrame({"item": ids})
    if items is not None and len(items):
        meta = items.drop_duplicates("item").set_index("item")
        key = pd.Index(meta.index)
        if key.dtype.kind in "iu" and out["item"].dtype == object:
            key = key.astype(str)
        pos = key.get_indexer(out["item"])
        for col in ("title", "year", "genres"):
            if col in meta.columns:
                vals = meta[col].to_numpy()
                out[col] = np.where(pos >= 0, vals[np.maximum(pos, 0)], None)
    if "title" not in out.columns:
        out["title"] = out["item"].astype(str)
    out["title"] = out["title"].where(out["title"].notna(), out["item"].astype(str))
    return out


def item_stats(rec: Recommender) -> pd.DataFrame:
    """Per item index: number of training ratings and mean training rating."""
    n = rec.item_counts
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, rec.item_sum / np.maximum(n, 1), np.nan)
    return pd.DataFrame({"n_ratings": n.astype(np.int64), "mean_rating": mean})


# ---------------------------------------------------------------- predictions vs actuals
def density(pred: np.ndarray, actual: np.ndarray, bins: int = 60, lo: float | None = None,
            hi: float | None = None) -> dict:
    """A 2-D histogram of (actual, prediction) plus both marginals: what a joint plot of millions of points needs."""
    pred, actual = np.asarray(pred, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    lo = float(min(pred.min(), actual.min())) if lo is None else lo
    hi = float(max(pred.max(), actual.max())) if hi is None else hi
    edges = np.linspace(lo, hi + 1e-9, bins + 1)
    grid, _, _ = np.histogram2d(actual, pred, bins=[edges, edges])
    return {"edges": edges, "centers": (edges[:-1] + edges[1:]) / 2, "counts": grid,
            "actual_hist": grid.sum(1), "pred_hist": grid.sum(0)}


def error_by_rating(pf: pd.DataFrame, max_groups: int = 20) -> pd.DataFrame:
    """RMSE, MAE, mean prediction and count for each true rating value; on a scale with more than `max_groups`
    values (Jester's -10..10 in hundredths has about 640), for ranges of equal width, labelled "a to b"."""
    err = pf["prediction"] - pf["rating"]
    rating = pf["rating"]
    if rating.nunique() > max_groups:
        lo, hi = float(rating.min()), float(rating.max())
        edges = np.linspace(lo, hi, max(2, min(max_groups, 10)) + 1)
        for digits in (3, 4, 6, 10):  # as few digits as keep the ranges apart
            labels = [f"{a:.{digits}g} to {b:.{digits}g}" for a, b in zip(edges[:-1], edges[1:])]
            if len(set(labels)) == len(labels):
                break
        rating = pd.cut(rating, edges, labels=labels if len(set(labels)) == len(labels) else None,
                        include_lowest=True)
    g = pd.DataFrame({"rating": rating, "se": err**2, "ae": err.abs(), "prediction": pf["prediction"]}).groupby(
        "rating", observed=True)
    out = g.agg(n=("se", "size"), rmse=("se", "mean"), mae=("ae", "mean"),
                mean_prediction=("prediction", "mean")).reset_index()
    out["rmse"] = np.sqrt(out["rmse"])
    if isinstance(out["rating"].dtype, pd.CategoricalDtype):
        out["rating"] = out["rating"].astype(str)
    return out


def error_by_activity(rec: Recommender, pf: pd.DataFrame,
                      bins: tuple[int, ...] = (0, 1, 10, 25, 50, 100, 250, 10**9)) -> pd.DataFrame:
    """RMSE and count of predictions grouped by how many training ratings their user had."""
    u = rec.user_map.encode(pf["user"].to_numpy(), "ignore")
    activity = np.where(u >= 0, rec.user_counts[np.maximum(u, 0)], 0)
    labels = [f"{a}-{b - 1}" if b < 10**9 else f"{a}+" for a, b in zip(bins[:-1], bins[1:])]
    labels[0] = "0 (cold)"
    group = pd.cut(activity, bins=list(bins), labels=labels, right=False)
    se = (pf["prediction"].to_numpy() - pf["rating"].to_numpy()) ** 2
    out = pd.DataFrame({"user_ratings": group, "se": se}).groupby("user_ratings", observed=True)["se"].agg(
        ["size", "mean"]).reset_index()
    out.columns = ["user_ratings", "n", "rmse"]
    out["rmse"] = np.sqrt(out["rmse"])
    return out


# ---------------------------------------------------------------- embeddings
def item_pca(rec: Recommender, items: pd.DataFrame | None = None, n_components: int = 3,
             min_ratings: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """PCA of the item embeddings of items with at least `min_ratings` training ratings.

    Returns one row per item (item, title, [year, genres], n_ratings, mean_rating, pc1..pcK) and the explained
    variance ratio of each component.
    """
    keep = np.flatnonzero(rec.item_counts >= min_ratings)
    if len(keep) < 2:
        raise ValueError(f"fewer than 2 items have at least {min_ratings} ratings: lower the minimum")
    factors = rec.item_factors()[keep]
    k = max(1, min(n_components, factors.shape[1], len(keep)))
    pca = PCA(n_components=k, random_state=0)
    coords = pca.fit_transform(factors)
    out = _titles(rec, items, keep)
    out = pd.concat([out, item_stats(rec).iloc[keep].reset_index(drop=True)], axis=1)
    for c in range(k):
        out[f"pc{c + 1}"] = coords[:, c].astype(np.float32)
    return out, pca.explained_variance_ratio_


def component_extremes(pca_frame: pd.DataFrame, component: int, n: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The items at the low and the high end of principal component `component` (1-based), as the lesson names them."""
    col = f"pc{component}"
    order = pca_frame.sort_values(col)
    cols = [c for c in ("item", "title", col, "n_ratings") if c in order.columns]
    return order.head(n)[cols].reset_index(drop=True), order.tail(n)[cols].iloc[::-1].reset_index(drop=True)


# ---------------------------------------------------------------- biases
def item_bias_table(rec: Recommender, items: pd.DataFrame | None = None, min_ratings: int = 0) -> pd.DataFrame:
    """Items with their learned bias, number of ratings and mean rating, lowest bias first.

    For models without biases (dot, nn) the column holds the damped baseline offset from the data, and the
    frame's attrs["learned"] is False.
    """
    bias = rec.item_bias()
    learned = bias is not None
    keep = np.flatnonzero(rec.item_counts >= min_ratings)
    out = _titles(rec, items, keep)
    out["bias"] = (bias if learned else rec.item_offset)[keep]
    out = pd.concat([out, item_stats(rec).iloc[keep].reset_index(drop=True)], axis=1)
    out = out.sort_values("bias", kind="stable").reset_index(drop=True)
    out.attrs["learned"] = learned
    return out


def user_bias_table(rec: Recommender, min_ratings: int = 0) -> pd.DataFrame:
    """Users with their learned bias (or damped baseline offset), number of ratings and mean rating."""
    bias = rec.user_bias()
    keep = np.flatnonzero(rec.user_counts >= min_ratings)
    n = rec.user_counts[keep]
    out = pd.DataFrame({"user": rec.user_map.decode(keep),
                        "bias": (bias if bias is not None else rec.user_offset)[keep],
                        "n_ratings": n, "mean_rating": rec.user_sum[keep] / np.maximum(n, 1)})
    out = out.sort_values("bias", kind="stable").reset_index(drop=True)
    out.attrs["learned"] = bias is not None
    return out


# ---------------------------------------------------------------- neighbours and recommendations
def similar_items(rec: Recommender, item: Any, items: pd.DataFrame | None = None, n: int = 10,
                  min_ratings: int = 0) -> pd.DataFrame:
    """Items nearest to `item` (raw id) by cosine similarity of their embeddings."""
    i = int(rec.item_map.encode([item])[0])
    f = rec.item_factors()
    norms = np.linalg.norm(f, axis=1)
    sim = f @ f[i] / np.maximum(norms * norms[i], 1e-12)
    top = _best(rec, sim, np.array([i]), n, min_ratings)
    out = _titles(rec, items, top)
    out["similarity"] = sim[top]
    out["n_ratings"] = rec.item_counts[top]
    return out


def _best(rec: Recommender, scores: np.ndarray, exclude: np.ndarray, n: int, min_ratings: int) -> np.ndarray:
    """Indices of the n highest scores, best first, leaving out `exclude` and items with too few ratings."""
    scores = scores.astype(np.float64)  # a copy: the caller's scores stay as they were
    scores[exclude] = -np.inf
    scores[rec.item_counts < min_ratings] = -np.inf
    n = min(n, int(np.isfinite(scores).sum()))
    top = np.argpartition(-scores, n - 1)[:n] if n else np.array([], dtype=np.int64)
    return top[np.argsort(-scores[top], kind="stable")]


def _top_n(rec: Recommender, scores: np.ndarray, exclude: np.ndarray, items: pd.DataFrame | None, n: int,
           min_ratings: int) -> pd.DataFrame:
    top = _best(rec, scores, exclude, n, min_ratings)
    out = _titles(rec, items, top)
    if rec.config.feedback == "implicit" and rec.config.optimizer != "als":  # logits: the chance of choosing
        out["predicted_rating"] = 1 / (1 + np.exp(-scores[top].astype(np.float64)))
    else:  # (weighted ALS's scores are preferences, 0 to 1)
        out["predicted_rating"] = np.clip(scores[top], *rec.rating_scale)
    out["n_ratings"] = rec.item_counts[top]
    return out


def rated_items(rec: Recommender, user: Any) -> np.ndarray:
    """Item indices the user rated in training."""
    u = int(rec.user_map.encode([user])[0])
    return rec.rated_items[rec.rated_indptr[u]:rec.rated_indptr[u + 1]]


def recommend(rec: Recommender, user: Any, items: pd.DataFrame | None = None, n: int = 10,
              min_ratings: int = 0) -> pd.DataFrame:
    """Top-n items for a known user by predicted rating, excluding what they rated in training."""
    u = int(rec.user_map.encode([user])[0])
    # Rank on the unclipped model output: clipping to the rating scale would tie the best items.
    idx = torch.arange(rec.n_items, device=rec.device)
    scores = rec.predict_tensor(rec.model, torch.full_like(idx, u), idx).float().cpu().numpy()
    return _top_n(rec, scores, rated_items(rec, user), items, n, min_ratings)


def user_history(rec: Recommender, ratings: pd.DataFrame, user: Any, items: pd.DataFrame | None = None,
                 n: int = 10) -> pd.DataFrame:
    """What the user rated highest (for context beside their recommendations)."""
    mine = ratings[ratings["user"] == rec.user_map.decode(rec.user_map.encode([user]))[0]]
    mine = mine.sort_values("rating", ascending=False, kind="stable").head(n)
    idx = rec.item_map.encode(mine["item"].to_numpy(), "ignore")
    out = _titles(rec, items, np.maximum(idx, 0))
    out["item"] = mine["item"].to_numpy()
    out["rating"] = mine["rating"].to_numpy()
    return out


class _Prior(NamedTuple):
    mean: torch.Tensor       # per dimension of a user's vector
    var: torch.Tensor
    bias_mean: float
    bias_var: float
    noise: float             # the variance of a rating about its prediction


def _user_prior(rec: Recommender) -> _Prior:
    """What the fit learned about users in general, as a prior for a new one: the mean and variance, per dimension, of
    the known users' vectors and biases, and the noise variance of a rating (the last epoch's training MSE)."""
    model, floor = rec.model, 1e-6  # (a dimension every known user has at 0 stays near 0)
    P = model.user_factors.weight.detach().float()
    bias = model.user_bias.weight.detach().float()[:, 0] if getattr(model, "has_bias", False) else None
    bias_mean, bias_var = (float(bias.mean()), max(float(bias.var()), floor)) if bias is not None and len(bias) > 1 \
        else (0.0, 1.0)
    last = rec.history.epochs[-1].get("train_rmse") if rec.history is not None and rec.history.epochs else None
    lo, hi = rec.rating_scale
    # without a finite training RMSE (a run saved without its history), a quarter of the scale: 1 star on 1..5
    noise = float(last) ** 2 if last is not None and math.isfinite(last) else ((hi - lo) / 4) ** 2 or 1.0
    var = P.var(0).clamp(min=floor) if len(P) > 1 else torch.ones_like(P[0])
    return _Prior(P.mean(0), var, bias_mean, bias_var, max(noise, floor))


def fold_in(rec: Recommender, ratings: dict, steps: int = 300, lr: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """A new user's vector (and bias) from a handful of ratings against the frozen item side: no retraining.

    The most probable vector and bias given those ratings, under a prior that is what the fit learned about
    its users: each dimension's mean and spread over the known users, and the noise of a rating (`_user_prior`;
    Bayesian PMF's conditional for a user, with the population's moments as its prior). One rating moves a new user
    a little, many ratings as far as they say. (After a fit with what each user rated, adding SVD++'s term for the
    items rated here, sum_j y_j / sqrt(n), made a new user's predictions worse at every count of ratings from 1 to
    10 on MovieLens 100k's held-out users, in a check made while it was built that no benchmark repeats: the fit
    does not keep the y_j apart from the user vectors. It is left out.)

    Args:
        ratings: raw item id -> rating.
    Returns the user's vector and bias.
    """
    if not ratings:
        raise ValueError("rate at least one item to get recommendations")
    if rec.config.feedback == "implicit":  # what they chose: weighted ALS's exact step for one more user
        from .wals import fold_in as wals_fold_in

        items = torch.from_numpy(rec.item_map.encode(list(ratings.keys()))).to(rec.device)
        counts = torch.tensor([float(v) if rec.config.counts else 1.0 for v in ratings.values()], device=rec.device)
        Y = rec.model.item_factors.weight.detach()
        # (after the gradient-trained losses too: the weighted least-squares fit of their choices, no bias)
        alpha = rec.config.alpha if rec.config.alpha is not None else 1.0
        return wals_fold_in(Y, items, counts, max(rec.config.wd, 1e-3), alpha), torch.zeros((), device=rec.device)
    model = rec.model
    item = torch.from_numpy(rec.item_map.encode(list(ratings.keys()))).to(rec.device)
    target = torch.tensor(list(ratings.values()), dtype=torch.float32, device=rec.device)
    prior = _user_prior(rec)
    vector = prior.mean.clone().requires_grad_()  # the average user, from where the ratings move them
    bias = torch.tensor(prior.bias_mean, device=rec.device, requires_grad=True)
    was_training = model.training
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam([vector, bias], lr=lr)
    probit = getattr(model, "probit", lambda: None)()
    try:
        for _ in range(steps):
            # twice the negative log posterior, per rating (the same minimum; a step size that suits any number of
            # ratings); with the ordered probit the likelihood is its own, of the linear output
            if probit is not None:
                mean = model.global_bias
                fit = -2 * probit.log_prob(model.linear_user(vector, bias, item) - mean, target - mean).sum()
            else:
                fit = (model.forward_user(vector, bias, item) - target).pow(2).sum() / prior.noise
            loss = (fit + ((vector - prior.mean).pow(2) / prior.var).sum()
                    + (bias - prior.bias_mean) ** 2 / prior.bias_var) / len(item)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
        model.train(was_training)
    return vector.detach(), bias.detach()


def recommend_new_user(rec: Recommender, ratings: dict, items: pd.DataFrame | None = None, n: int = 10,
                       min_ratings: int = 0) -> pd.DataFrame:
    """Top-n for someone who rated a few items on the page (fold-in), excluding those items."""
    vector, bias = fold_in(rec, ratings)
    with torch.no_grad():
        scores = rec.model.forward_user(vector, bias,
                                        torch.arange(rec.n_items, device=rec.device)).float().cpu().numpy()
    return _top_n(rec, scores, rec.item_map.encode(list(ratings.keys())), items, n, min_ratings)
