"""Tests for cf_core.datasets: the MovieLens 100k cache (without network) and planted synthetic data."""

import re
import zipfile

import numpy as np
import pandas as pd
import pytest

import cf_core.datasets as ds
from cf_core.data import DataError, read_ratings

# A few MovieLens rows, in file order (not sorted), as both archives carry them.
RATINGS = pd.DataFrame({"user_id": [196, 186, 22, 196], "item_id": [242, 302, 377, 302],
                        "rating": [3, 3, 1, 5], "timestamp": [881250949, 891717742, 878887116, 881250950]})
GENRES = ["Animation", "Children's", "Comedy"]


def fake_grouplens_zip(dest):
    path = dest / "ml-100k.zip"
    flags = ["0"] * 19
    flags[3] = flags[4] = flags[5] = "1"  # Animation, Children's, Comedy
    u_item = "".join(f"{i}|Movie é{i} (1995)|01-Jan-1995||http://x|" + "|".join(flags) + "\n"
                     for i in (22, 242, 302, 377))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ml-100k/u.data", RATINGS.to_csv(sep="\t", header=False, index=False))
        archive.writestr("ml-100k/u.item", u_item.encode("latin-1"))
    return path


def fake_recbole_wheel(dest):
    path = dest / "recbole-1.2.1-py3-none-any.whl"
    inter = RATINGS.to_csv(sep="\t", index=False,
                           header=["user_id:token", "item_id:token", "rating:float", "timestamp:float"])
    item = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n" + "".join(
        f"{i}\tMovie é{i}\t1995\t{' '.join(GENRES)}\n" for i in (22, 242, 302, 377))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("recbole/__init__.py", "")
        archive.writestr("recbole/dataset_example/ml-100k/ml-100k.inter", inter)
        archive.writestr("recbole/dataset_example/ml-100k/ml-100k.item", item)
    return path


def failing(dest):
    raise OSError("no network")


@pytest.fixture
def calls(monkeypatch):
    """Count downloads; the checksum constant is that of the fake ratings."""
    counts = {"grouplens": 0, "recbole": 0}

    def counted(name, make):
        def download(dest):
            counts[name] += 1
            return make(dest)
        return download

    monkeypatch.setattr(ds, "_download_grouplens", counted("grouplens", fake_grouplens_zip))
    monkeypatch.setattr(ds, "_download_recbole", counted("recbole", fake_recbole_wheel))
    monkeypatch.setattr(ds, "ML100K_SHA256", ds.ratings_sha256(RATINGS))
    return counts


def check_cache(folder):
    assert folder.name == "ml-100k"
    assert sorted(p.name for p in folder.iterdir()) == ["items.csv", "ratings.csv"]  # no temp files left
    pd.testing.assert_frame_equal(pd.read_csv(folder / "ratings.csv"), RATINGS)
    items = pd.read_csv(folder / "items.csv")
    assert list(items.columns) == ["item_id", "title", "year", "genres"]
    assert items["item_id"].tolist() == [22, 242, 302, 377]
    assert items["title"].tolist() == [f"Movie é{i}" for i in (22, 242, 302, 377)]
    assert items["year"].tolist() == [1995] * 4
    assert items["genres"].tolist() == ["|".join(GENRES)] * 4


def test_fetch_from_grouplens_then_cached(tmp_path, calls):
    folder = ds.fetch_movielens_100k(tmp_path)
    check_cache(folder)
    assert ds.fetch_movielens_100k(tmp_path) == folder
    assert calls == {"grouplens": 1, "recbole": 0}  # the second call found a verified cache
    ratings, items = ds.movielens_100k(tmp_path)
    assert (ratings.n_users, ratings.n_items, ratings.n_ratings) == (3, 3, 4)
    assert ratings.df["timestamp"].dtype == "int64" and items["item"].tolist() == [22, 242, 302, 377]
    ds.fetch_movielens_100k(tmp_path, force=True)
    assert calls["grouplens"] == 2


def test_fetch_falls_back_to_the_wheel(tmp_path, calls, monkeypatch):
    monkeypatch.setattr(ds, "_download_grouplens", failing)
    check_cache(ds.fetch_movielens_100k(tmp_path))
    assert calls["recbole"] == 1


def test_corrupt_cache_is_fetched_again(tmp_path, calls):
    folder = ds.fetch_movielens_100k(tmp_path)
    (folder / "ratings.csv").write_text("user_id,item_id,rating,timestamp\n1,1,1,1\n")
    check_cache(ds.fetch_movielens_100k(tmp_path))
    assert calls["grouplens"] == 2


def test_checksum_mismatch_leaves_no_cache(tmp_path, calls, monkeypatch):
    monkeypatch.setattr(ds, "ML100K_SHA256", "0" * 64)
    with pytest.raises(DataError, match="checksum"):
        ds.fetch_movielens_100k(tmp_path)
    assert not (tmp_path / "ml-100k").exists() or not any((tmp_path / "ml-100k").iterdir())
    assert calls == {"grouplens": 1, "recbole": 1}


def test_no_source_reachable(tmp_path, monkeypatch):
    monkeypatch.setattr(ds, "_download_grouplens", failing)
    monkeypatch.setattr(ds, "_download_recbole", failing)
    with pytest.raises(RuntimeError, match="GroupLens: no network; recbole wheel: no network"):
        ds.fetch_movielens_100k(tmp_path)
    assert not (tmp_path / "ml-100k").exists()


def test_checksum_constant_and_canonical_form():
    assert re.fullmatch(r"[0-9a-f]{64}", ds.ML100K_SHA256)
    shuffled = RATINGS.sample(frac=1, random_state=1)
    assert ds.ratings_sha256(shuffled) == ds.ratings_sha256(RATINGS)
    assert ds.ratings_sha256(RATINGS.assign(rating=[3, 3, 1, 4])) != ds.ratings_sha256(RATINGS)


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLAB_STUDIO_CACHE", str(tmp_path / "cache"))
    assert ds.cache_dir() == tmp_path / "cache" and (tmp_path / "cache").is_dir()


# ----------------------------------------------------------------------------------------------- synthetic


@pytest.fixture(scope="module")
def syn():
    return ds.synthetic(n_users=400, n_items=300, n_ratings=20_000, n_factors=4, noise=0.3, seed=1)


def test_synthetic_shapes_and_ids(syn):
    r = syn.ratings
    assert list(r.columns) == ["user", "item", "rating", "timestamp"] and len(r) == 20_000
    assert r.dtypes.astype(str).tolist() == ["int64", "int64", "float32", "int64"]
    assert set(r["user"]) == set(range(1, 401)) and set(r["item"]) == set(range(1, 301))
    assert not r.duplicated(["user", "item"]).any()
    assert syn.user_factors.shape == (400, 4) and syn.item_factors.shape == (300, 4)
    assert syn.user_bias.shape == (400,) and syn.item_bias.shape == (300,)
    assert syn.global_mean == 3.0


def test_synthetic_is_deterministic(syn):
    again = ds.synthetic(n_users=400, n_items=300, n_ratings=20_000, n_factors=4, noise=0.3, seed=1)
    pd.testing.assert_frame_equal(again.ratings, syn.ratings)
    np.testing.assert_array_equal(again.user_factors, syn.user_factors)
    other = ds.synthetic(n_users=400, n_items=300, n_ratings=20_000, n_factors=4, noise=0.3, seed=2)
    assert not other.ratings["rating"].equals(syn.ratings["rating"])


def test_synthetic_popularity_skew(syn):
    counts = syn.ratings["item"].value_counts()
    assert counts.iloc[:30].sum() > 0.3 * len(syn.ratings)  # top 10% of items: far more than 10% of ratings
    flat = ds.synthetic(n_users=400, n_items=300, n_ratings=20_000, popularity=0.0).ratings["item"].value_counts()
    assert flat.iloc[:30].sum() < 0.15 * 20_000


def test_synthetic_noise_floor_and_scale(syn):
    r = syn.ratings
    residual = r["rating"].to_numpy() - syn.predict(r["user"].to_numpy(), r["item"].to_numpy())
    assert residual.std() == pytest.approx(0.3, rel=0.03) and abs(residual.mean()) < 0.01
    inside = r["rating"].between(1.0, 5.0).mean()
    assert 0.9 < inside < 1.0  # mostly in the scale, but continuous and never clipped
    assert (r["rating"] != r["rating"].round()).mean() > 0.99


def test_synthetic_full_matrix_and_bounds():
    full = ds.synthetic(n_users=20, n_items=10, n_ratings=200)
    assert len(full.ratings) == 200 and not full.ratings.duplicated(["user", "item"]).any()
    with pytest.raises(ValueError):
        ds.synthetic(n_users=20, n_items=10, n_ratings=201)
    with pytest.raises(ValueError):
        ds.synthetic(n_users=20, n_items=10, n_ratings=19)


def test_synthetic_reads_as_ratings(syn):
    ratings = read_ratings(syn.ratings, name="synthetic")
    assert (ratings.n_users, ratings.n_items, ratings.n_ratings, ratings.n_duplicates) == (400, 300, 20_000, 0)
