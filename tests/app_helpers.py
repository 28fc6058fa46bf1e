"""Helpers for the app tests: a small MovieLens-shaped dataset and AppTest set-up (no network, no shared cache)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from cf_core.data import read_items, read_ratings
from cf_core.datasets import ratings_sha256, synthetic

APP = Path(__file__).resolve().parent.parent / "app.py"
GENRES = ["Comedy", "Drama|Romance", "Action|Thriller", "Animation|Children's", "Horror"]


def fake_movielens_frames(n_users: int = 120, n_items: int = 90, n_ratings: int = 3000, seed: int = 7
                          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ratings (user_id, item_id, rating 1-5, timestamp) and items (item_id, title, year, genres) shaped like
    ml-100k."""
    data = synthetic(n_users=n_users, n_items=n_items, n_ratings=n_ratings, n_factors=3, noise=0.3, seed=seed)
    r = data.ratings
    ratings = pd.DataFrame({"user_id": r["user"], "item_id": r["item"],
                            "rating": np.clip(np.rint(r["rating"]), 1, 5).astype("int64"), "timestamp": r["timestamp"]})
    ids = np.arange(1, n_items + 1)
    items = pd.DataFrame({"item_id": ids, "title": [f"Film {i} ({1970 + i % 30})" for i in ids],
                          "year": 1970 + ids % 30, "genres": [GENRES[i % len(GENRES)] for i in ids]})
    return ratings, items


def write_fake_movielens(cache: Path) -> str:
    """Write cache/ml-100k/ratings.csv and items.csv as fetch_movielens_100k does; return the ratings checksum."""
    ratings, items = fake_movielens_frames()
    folder = cache / "ml-100k"
    folder.mkdir(parents=True, exist_ok=True)
    items.to_csv(folder / "items.csv", index=False)
    ratings.to_csv(folder / "ratings.csv", index=False)
    return ratings_sha256(ratings)


def fake_movielens_100k(cache=None):
    """Stands in for cf_core.datasets.movielens_100k in app tests."""
    ratings, items = fake_movielens_frames()
    return read_ratings(ratings, name="ml-100k"), read_items(items.to_csv(index=False).encode(), name="items.csv")


def app(timeout: float = 30) -> AppTest:
    """A fresh AppTest of the whole app (one browser session)."""
    return AppTest.from_file(str(APP), default_timeout=timeout)


def open_page(at: AppTest, page: str) -> AppTest:
    """Run the app once (to register the navigation), then switch to `page` (e.g. "views/train.py") and run it."""
    at.run()
    return at.switch_page(page).run()


def tables(at: AppTest) -> list[pd.DataFrame]:
    """The DataFrames the page shows, in page order (AppTest does not expose st.dataframe keys)."""
    return [d.value for d in at.dataframe]


def chart_keys(at: AppTest) -> set[str]:
    """Keys of the Plotly charts on the page (a chart's element id ends with its user key)."""
    return {c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart")}


def explore(run_id: str, page: str) -> AppTest:
    """A fresh session that opens `page` through a share link (?run=ID)."""
    at = app()
    at.query_params["run"] = run_id
    return open_page(at, page)


def figure(at: AppTest, key: str) -> dict:
    """The Plotly figure (as a dict: data, layout) of the chart with this key."""
    import json

    charts = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert charts, f"no chart with key {key!r}; keys: {sorted(chart_keys(at))}"
    return json.loads(charts[0].proto.spec)


def values(data) -> np.ndarray:
    """An array from a Plotly figure's JSON, which encodes numpy arrays as {"dtype", "bdata"[, "shape"]}."""
    import base64

    if isinstance(data, dict) and "bdata" in data:
        arr = np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
        shape = data.get("shape")
        return arr.reshape([int(s) for s in str(shape).split(",")]) if shape else arr
    return np.asarray(data)
