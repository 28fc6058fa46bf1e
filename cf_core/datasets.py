"""Built-in and synthetic data: MovieLens 100k fetched into a local cache, and planted low-rank ratings.

MovieLens 100k (GroupLens Research; 100,000 ratings by 943 users on 1,682 movies) comes from GroupLens, or,
when that fails, from the copy inside the `recbole` 1.2.1 wheel fetched with pip (which uses whatever package
index this machine is configured for). Either way it is written as `ratings.csv` and `items.csv` and checked
against a checksum, so every machine trains on exactly the same data.

`synthetic` draws ratings from a known model (biases + a dot product of factors + Gaussian noise), so tests and
demos know the answer a model should recover and the RMSE floor it cannot beat.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cf_core.data import DataError, Ratings, read_items, read_ratings

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
RECBOLE_REQUIREMENT = "recbole==1.2.1"
_RECBOLE_DIR = "recbole/dataset_example/ml-100k/"
# sha256 of the canonical ratings: sorted by (user, item), lines "user,item,rating,timestamp\n", no header.
ML100K_SHA256 = "0fccc4b62e2f6aa246014ac7b8946c15ccb82269dc40eaae7d45d81a5fb44e1a"
_RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]


def cache_dir() -> Path:
    """The data cache: $COLLAB_STUDIO_CACHE if set, else ~/.cache/collab-studio (created on demand)."""
    env = os.environ.get("COLLAB_STUDIO_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "collab-studio"
    path.mkdir(parents=True, exist_ok=True)
    return path


def ratings_sha256(ratings: pd.DataFrame) -> str:
    """Checksum of a user_id, item_id, rating, timestamp table in canonical form (independent of row order)."""
    canonical = ratings[_RATING_COLUMNS].astype("int64").sort_values(["user_id", "item_id"], kind="stable")
    text = canonical.to_csv(header=False, index=False, lineterminator="\n")
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# ------------------------------------------------------------------------------------------- downloaders


def _download_grouplens(dest: Path) -> Path:
    """Download GroupLens' ml-100k.zip into dest."""
    path = dest / "ml-100k.zip"
    # A short timeout: behind a firewall the fallback should start quickly, not after minutes.
    with urllib.request.urlopen(GROUPLENS_URL, timeout=5) as response, open(path, "wb") as out:
        shutil.copyfileobj(response, out)
    return path


def _download_recbole(dest: Path) -> Path:
    """Download the recbole wheel (which carries ml-100k) into dest with pip."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    RECBOLE_REQUIREMENT, "-d", str(dest)], check=True, capture_output=True, timeout=600)
    wheels = sorted(dest.glob("recbole-*.whl"))
    if not wheels:
        raise FileNotFoundError("pip download produced no recbole wheel")
    return wheels[0]


def _parse_grouplens(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ratings and items from ml-100k.zip (u.data: tab-separated user item rating timestamp; u.item)."""
    with zipfile.ZipFile(path) as archive:
        u_data = archive.read("ml-100k/u.data")
        u_item = archive.read("ml-100k/u.item")
    ratings = pd.read_csv(io.BytesIO(u_data), sep="\t", header=None, names=_RATING_COLUMNS, dtype="int64")
    return ratings, read_items(u_item, name="u.item")


def _parse_recbole(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ratings and items from the recbole wheel's ml-100k.inter and ml-100k.item (tab-separated, typed headers)."""
    with zipfile.ZipFile(path) as archive:
        inter = archive.read(_RECBOLE_DIR + "ml-100k.inter")
        item = archive.read(_RECBOLE_DIR + "ml-100k.item")
    ratings = pd.read_csv(io.BytesIO(inter), sep="\t")
    ratings.columns = [c.split(":")[0] for c in ratings.columns]
    ratings = ratings[_RATING_COLUMNS].astype("float64").astype("int64")
    items = pd.read_csv(io.BytesIO(item), sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    items.columns = [c.split(":")[0] for c in items.columns]
    # Each MovieLens genre is one token ("Children's", "Film-Noir", "Sci-Fi"), so splitting on spaces is safe.
    genres = items["class"].str.split().str.join("|").fillna("")
    return ratings, pd.DataFrame({
        "item": items["item_id"].astype("int64"),
        "title": items["movie_title"].str.strip(),
        "year": pd.to_numeric(items["release_year"], errors="coerce").astype("Int64"),
        "genres": genres,
    })


# Tried in order; tests replace the downloaders.
_SOURCES: tuple[tuple[str, str, str], ...] = (
    ("GroupLens", "_download_grouplens", "_parse_grouplens"),
    ("recbole wheel", "_download_recbole", "_parse_recbole"),
)


def _is_verified(folder: Path) -> bool:
    try:
        ratings = pd.read_csv(folder / "ratings.csv", dtype="int64")
        return (folder / "items.csv").is_file() and ratings_sha256(ratings) == ML100K_SHA256
    except (OSError, ValueError, KeyError):
        return False


def _write_atomically(folder: Path, files: dict[str, Callable[[Path], None]]) -> None:
    """Write each file under a temporary name, then rename all; ratings.csv last, as it marks a full cache."""
    folder.mkdir(parents=True, exist_ok=True)
    temps = {name: folder / f".{name}.{os.getpid()}.tmp" for name in files}
    try:
        for name, write in files.items():
            write(temps[name])
        for name in sorted(files, key=lambda n: n == "ratings.csv"):
            os.replace(temps[name], folder / name)
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)


def fetch_movielens_100k(cache: Path | None = None, *, force: bool = False) -> Path:
    """Make sure MovieLens 100k is in the cache; return the folder holding ratings.csv and items.csv.

    Does nothing when a verified copy is there (unless force). Raises DataError when the downloaded data does
    not match ML100K_SHA256, and RuntimeError when no source could be downloaded; neither leaves files behind.
    """
    folder = Path(cache if cache is not None else cache_dir()) / "ml-100k"
    if not force and _is_verified(folder):
        return folder
    module = sys.modules[__name__]
    failures: list[str] = []
    mismatch = False
    for label, download_name, parse_name in _SOURCES:
        with tempfile.TemporaryDirectory(prefix="collab-studio-") as tmp:
            try:
                ratings, items = getattr(module, parse_name)(getattr(module, download_name)(Path(tmp)))
            except Exception as exc:  # any failure (network, pip, a corrupt archive) means: try the next source
                failures.append(f"{label}: {exc}")
                continue
        digest = ratings_sha256(ratings)
        if digest != ML100K_SHA256:
            mismatch = True
            failures.append(f"{label}: checksum {digest[:12]}... does not match {ML100K_SHA256[:12]}...")
            continue
        items_out = items.rename(columns={"item": "item_id"})
        _write_atomically(folder, {
            "items.csv": lambda p, items_out=items_out: items_out.to_csv(p, index=False, lineterminator="\n"),
            "ratings.csv": lambda p, ratings=ratings: ratings[_RATING_COLUMNS].to_csv(p, index=False,
                                                                                     lineterminator="\n"),
        })
        return folder
    message = "could not fetch MovieLens 100k: " + "; ".join(failures)
    if mismatch:
        raise DataError(message, source="ml-100k")
    raise RuntimeError(message)


def movielens_100k(cache: Path | None = None) -> tuple[Ratings, pd.DataFrame]:
    """MovieLens 100k as (Ratings, items), fetching it into the cache first if needed."""
    folder = fetch_movielens_100k(cache)
    return read_ratings(folder / "ratings.csv"), read_items(folder / "items.csv")


# ----------------------------------------------------------------------------------------------- synthetic


@dataclass
class Synthetic:
    """Ratings drawn from a planted low-rank model, with the model that made them."""

    ratings: pd.DataFrame  # user, item (int64 ids from 1), rating (float32), timestamp (int64)
    user_factors: np.ndarray  # (n_users, n_factors) float32; row u-1 belongs to user id u
    item_factors: np.ndarray  # (n_items, n_factors) float32
    user_bias: np.ndarray  # (n_users,) float32
    item_bias: np.ndarray  # (n_items,) float32
    global_mean: float
    noise: float  # std of the added Gaussian noise: the RMSE a perfect model reaches

    def predict(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """The noiseless model's rating for user and item ids."""
        u, i = np.asarray(user) - 1, np.asarray(item) - 1
        dot = np.einsum("ij,ij->i", self.user_factors[u], self.item_factors[i])
        return (self.global_mean + self.user_bias[u] + self.item_bias[i] + dot).astype(np.float32)


def _drop_sorted(keys: np.ndarray, remove: np.ndarray) -> np.ndarray:
    """keys without the values in the sorted array remove (a cheaper np.isin for large inputs)."""
    if len(remove) == 0:
        return keys
    pos = np.minimum(np.searchsorted(remove, keys), len(remove) - 1)
    return keys[remove[pos] != keys]


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """np.unique by sorting: for tens of millions of int64 keys it is several times faster than hashing."""
    keys = np.sort(keys)
    return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys


def _draw_pairs(rng: np.random.Generator, n_users: int, n_items: int, n_ratings: int,
                item_p: np.ndarray) -> np.ndarray:
    """Sorted unique keys user * n_items + item: everyone covered once, the rest drawn by popularity."""
    # k -> (k mod n_users, k mod n_items) over k < max(n_users, n_items) covers every user and every item with
    # distinct pairs; the permutations make the coverage pairs random.
    k = np.arange(max(n_users, n_items), dtype=np.int64)
    cover = np.sort(rng.permutation(n_users)[k % n_users].astype(np.int64) * n_items
                    + rng.permutation(n_items)[k % n_items])
    need = n_ratings - len(cover)
    item_cdf = np.cumsum(item_p)
    pool = np.empty(0, np.int64)
    attempt = 0
    while len(pool) < need:
        m = int((need - len(pool)) * 1.1) + 64
        users = rng.integers(0, n_users, m, dtype=np.int32).astype(np.int64)
        # Near-full matrices saturate the popular items; after a few rounds draw items uniformly to finish.
        if attempt < 3:
            items = np.searchsorted(item_cdf, rng.random(m) * item_cdf[-1], side="right")
        else:
            items = rng.integers(0, n_items, m)
        items = np.minimum(items, n_items - 1).astype(np.int64)
        pool = _drop_sorted(_sorted_unique(np.concatenate([pool, users * n_items + items])), cover)
        attempt += 1
    # The pool overshoots by about 10%: dropping that many random keys is cheaper than choosing the rest.
    keep = np.ones(len(pool), dtype=bool)
    keep[rng.choice(len(pool), len(pool) - need, replace=False)] = False
    chosen = pool[keep]
    return np.sort(np.concatenate([cover, chosen]))


def synthetic(n_users: int = 1000, n_items: int = 500, n_ratings: int = 50_000, n_factors: int = 8,
              noise: float = 0.3, scale: tuple[float, float] = (1.0, 5.0), popularity: float = 1.0,
              seed: int = 0) -> Synthetic:
    """Ratings from a planted model: global_mean + user_bias + item_bias + <user, item factors> + N(0, noise²).

    Ratings are continuous (not rounded or clipped); the signal is scaled so they mostly sit in `scale`. Item
    popularity follows a Zipf-like law with exponent `popularity` (0 = uniform); every user and item has at
    least one rating and (user, item) pairs are unique. Same seed, same data.
    """
    if n_users < 2 or n_items < 2 or n_factors < 1:
        raise ValueError("synthetic data needs n_users >= 2, n_items >= 2 and n_factors >= 1")
    if not max(n_users, n_items) <= n_ratings <= n_users * n_items:
        raise ValueError(f"n_ratings must lie between max(n_users, n_items) = {max(n_users, n_items)} and "
                         f"n_users * n_items = {n_users * n_items}")
    rng = np.random.default_rng(seed)
    lo, hi = scale
    # Signal std is a quarter of the range, so about 95% of ratings fall inside `scale`; biases take a share
    # of the variance as they do in real data (some users rate high, some films are loved).
    signal = (hi - lo) / 4
    bias_std = 0.4 * signal
    dot_var = signal**2 - 2 * bias_std**2
    factor_std = (dot_var / n_factors) ** 0.25  # the dot product of n_factors such pairs has variance dot_var
    user_factors = rng.normal(0, factor_std, (n_users, n_factors)).astype(np.float32)
    item_factors = rng.normal(0, factor_std, (n_items, n_factors)).astype(np.float32)
    user_bias = rng.normal(0, bias_std, n_users).astype(np.float32)
    item_bias = rng.normal(0, bias_std, n_items).astype(np.float32)
    global_mean = (lo + hi) / 2

    weights = 1.0 / np.arange(1, n_items + 1) ** popularity
    item_p = weights[rng.permutation(n_items)]
    item_p /= item_p.sum()
    keys = _draw_pairs(rng, n_users, n_items, n_ratings, item_p)
    user = (keys // n_items).astype(np.int32)
    item = (keys % n_items).astype(np.int32)
    del keys

    rating = np.empty(n_ratings, np.float32)
    chunk = 1 << 21  # bounds the gathered factor rows to a few hundred MB however many ratings there are
    for start in range(0, n_ratings, chunk):
        u, i = user[start:start + chunk], item[start:start + chunk]
        dot = np.einsum("ij,ij->i", user_factors[u], item_factors[i])
        rating[start:start + chunk] = (global_mean + user_bias[u] + item_bias[i] + dot
                                       + rng.normal(0, noise, len(u)).astype(np.float32))
    timestamp = rng.integers(946_684_800, 1_577_836_800, n_ratings, dtype=np.int64)  # 2000 to 2020
    ratings = pd.DataFrame({"user": user.astype(np.int64) + 1, "item": item.astype(np.int64) + 1,
                            "rating": rating, "timestamp": timestamp})
    return Synthetic(ratings, user_factors, item_factors, user_bias, item_bias, float(global_mean), float(noise))
