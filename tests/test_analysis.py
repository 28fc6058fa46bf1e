import numpy as np
import pytest
import torch

from cf_core import analysis as A


def test_density_counts_every_point():
    rng = np.random.default_rng(0)
    actual = rng.integers(1, 6, 10_000).astype(float)
    pred = actual + rng.normal(0, 0.5, 10_000)
    d = A.density(pred, actual, bins=40)
    assert d["counts"].shape == (40, 40)
    assert d["counts"].sum() == 10_000
    assert d["actual_hist"].sum() == d["pred_hist"].sum() == 10_000


def test_error_tables(trained, split_planted):
    _, valid = split_planted
    pf = trained.predict_frame(valid)
    by_rating = A.error_by_rating(pf)
    assert by_rating["n"].sum() == len(valid)
    assert (by_rating["rmse"] >= by_rating["mae"] - 1e-9).all()
    by_act = A.error_by_activity(trained, pf)
    assert by_act["n"].sum() == len(valid)


def test_item_pca_and_extremes(trained, items_meta):
    frame, ratio = A.item_pca(trained, items_meta, n_components=3, min_ratings=5)
    assert {"item", "title", "genres", "pc1", "pc2", "pc3", "n_ratings", "mean_rating"} <= set(frame.columns)
    assert (frame["n_ratings"] >= 5).all()
    assert len(ratio) == 3 and ratio[0] >= ratio[1] >= ratio[2] > 0
    assert frame["title"].str.startswith("Movie ").all()
    low, high = A.component_extremes(frame, 1, 5)
    assert len(low) == len(high) == 5
    assert low["pc1"].max() <= high["pc1"].min()
    with pytest.raises(ValueError, match="lower the minimum"):
        A.item_pca(trained, items_meta, min_ratings=10**6)


def test_bias_tables_sorted_with_counts_and_means(trained, items_meta, split_planted):
    train, _ = split_planted
    t = A.item_bias_table(trained, items_meta, min_ratings=10)
    assert t.attrs["learned"] is True
    assert t["bias"].is_monotonic_increasing
    assert (t["n_ratings"] >= 10).all()
    first = t.iloc[0]
    mine = train[train["item"] == first["item"]]
    assert first["n_ratings"] == len(mine)
    assert first["mean_rating"] == pytest.approx(mine["rating"].mean(), rel=1e-5)
    # the learned bias agrees with the data: low-bias items have low mean ratings
    assert t.head(5)["mean_rating"].mean() < t.tail(5)["mean_rating"].mean()
    u = A.user_bias_table(trained, min_ratings=1)
    assert u["bias"].is_monotonic_increasing and len(u) == trained.n_users


def test_similar_items_are_nearest_by_cosine(trained, items_meta):
    item = trained.item_map.decode([0])[0]
    sims = A.similar_items(trained, item, items_meta, n=5)
    assert len(sims) == 5 and item not in sims["item"].tolist()
    assert sims["similarity"].is_monotonic_decreasing
    f = trained.item_factors()
    cos = f @ f[0] / (np.linalg.norm(f, axis=1) * np.linalg.norm(f[0]))
    cos[0] = -np.inf
    assert trained.item_map.encode(sims["item"].tolist())[0] == int(np.argmax(cos))


def test_recommend_excludes_rated_and_ranks(trained, items_meta, split_planted):
    train, _ = split_planted
    user = train["user"].iloc[0]
    recs = A.recommend(trained, user, items_meta, n=10)
    rated = set(train.loc[train["user"] == user, "item"])
    assert len(recs) == 10 and not rated & set(recs["item"])
    assert recs["predicted_rating"].is_monotonic_decreasing
    hist = A.user_history(trained, train, user, items_meta, n=3)
    assert hist["rating"].is_monotonic_decreasing and set(hist["item"]) <= rated


def test_fold_in_learns_a_new_users_taste(trained, planted, items_meta):
    # A new user who loves the items the planted model rates highest for some user and hates the lowest:
    # fold-in should place them near that user's taste.
    user = trained.user_map.decode([0])[0]
    scores = trained.predict(user, trained.item_map.ids)
    order = np.argsort(scores)
    liked, hated = trained.item_map.ids[order[-6:]], trained.item_map.ids[order[:6]]
    ratings = {**{i: 5.0 for i in liked}, **{i: 1.0 for i in hated}}
    vector, bias = A.fold_in(trained, ratings)
    assert vector.shape == (trained.model.user_factors.weight.shape[1],)
    recs = A.recommend_new_user(trained, ratings, items_meta, n=10)
    assert not set(recs["item"]) & set(ratings)
    ranked = np.argsort(-scores)
    top_of_user = set(trained.item_map.ids[ranked[6:30]])
    assert len(set(recs["item"]) & top_of_user) >= 4
    with pytest.raises(ValueError, match="at least one"):
        A.fold_in(trained, {})


@pytest.mark.parametrize("optimizer, output", [("gibbs", "ordinal"), ("gibbs", "gaussian"), ("adam", None)])
def test_a_new_user_with_one_or_three_ratings_is_predicted_better_than_by_the_mean(movielens_shaped, optimizer,
                                                                                   output):
    """Fold-in starts from the average known user and moves as far as the ratings say (the known users' spread and
    the noise of a rating as the prior). Fitting a vector and a free bias to one rating instead predicted every item
    near that rating: RMSE 1.39 on MovieLens 100k from one rating, worse than the mean rating for everyone (1.095).
    With the ordered probit the ratings are fitted by its likelihood, each at its level (comparing ratings with levels
    about the mean instead put every rating at the top level: 1.25 from three ratings, the mean 1.01)."""
    from cf_core.recommender import Recommender

    train, _ = movielens_shaped
    rng = np.random.default_rng(0)
    held = rng.choice(train["user"].unique(), 40, replace=False)
    known = train[~train["user"].isin(held)]
    rec = Recommender(optimizer=optimizer, epochs=30 if optimizer == "gibbs" else 4, output=output).fit(known)
    assert rec.config.output == (output or "gaussian")
    mean = known["rating"].mean()
    for n in (1, 3):
        errors, baseline = [], []
        for user in held:
            mine = train[(train["user"] == user) & train["item"].isin(known["item"])].sample(frac=1, random_state=1)
            given, rest = mine.iloc[:n], mine.iloc[n:]
            vector, bias = A.fold_in(rec, dict(zip(given["item"], given["rating"])))
            items = torch.from_numpy(rec.item_map.encode(rest["item"].to_numpy())).to(rec.device)
            with torch.no_grad():
                pred = rec.model.forward_user(vector, bias, items).clamp(1, 5).cpu().numpy()
            errors.append((pred - rest["rating"].to_numpy()) ** 2)
            baseline.append((mean - rest["rating"].to_numpy()) ** 2)
        rmse, base = np.sqrt(np.concatenate(errors).mean()), np.sqrt(np.concatenate(baseline).mean())
        assert rmse < base, (n, rmse, base)


def test_fold_in_without_a_usable_training_rmse_still_gives_finite_numbers(trained):
    """A run without its history, or with a NaN training RMSE: the noise falls back to a quarter of the scale."""
    import copy

    rec = copy.copy(trained)
    item = trained.item_map.ids[0]
    for epochs in ([], [{"train_rmse": float("nan")}]):
        rec.history = copy.copy(trained.history)
        rec.history.epochs = epochs
        vector, bias = A.fold_in(rec, {item: 5.0})
        assert torch.isfinite(vector).all() and torch.isfinite(bias)
