"""What reading produces and how it fails: `Ratings`, `DataError`, the names columns go by, and a parsed `_Table`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd
import pyarrow as pa

DUPLICATE_RULE = (
    "When a (user, item) pair is rated more than once, the latest rating by timestamp is kept (the later one in "
    "the file among equal timestamps); without a timestamp, the last one in the file is kept."
)

# Names people give each column, compared after lower-casing and dropping punctuation ("User-ID" == "userid").
# A ":type" suffix (RecBole's "user_id:token") is ignored.
KNOWN_NAMES: dict[str, tuple[str, ...]] = {
    "user": ("user_id", "userId", "user", "User-ID", "uid", "customer_id", "customer", "reviewer_id",
             "reviewerID", "member_id", "person_id", "rater_id", "visitor_id", "client_id", "account_id",
             "username", "user_name"),
    "item": ("item_id", "movieId", "movie_id", "item", "ISBN", "product_id", "asin", "book_id", "isbn",
             "movie", "book", "product", "iid", "track_id", "song_id", "artist_id", "anime_id", "game_id",
             "recipe_id", "business_id", "article_id", "parent_asin", "song", "track", "artist", "video", "sku"),
    "rating": ("rating", "score", "stars", "star", "Book-Rating", "rate", "overall", "preference",
               "user_rating", "review_score", "grade"),
    "timestamp": ("timestamp", "time", "date", "datetime", "date_time", "unix_time", "unix_timestamp",
                  "unixReviewTime", "ts", "rated_at", "created_at"),
}
_ROLES = ("user", "item", "rating", "timestamp")
# A column of counts of interactions (implicit feedback), by name: with no rating column it is read as the counts.
COUNT_NAMES = ("count", "counts", "plays", "play_count", "playcount", "plays_count", "listens", "listen_count",
               "clicks", "click_count", "views", "view_count", "quantity", "qty", "purchases", "purchase_count",
               "times_played", "n_plays", "frequency", "interactions", "sessions", "visits")
_COUNT_NORM = {_n for _n in (re.sub(r"[^0-9a-z]", "", name) for name in COUNT_NAMES)}
FEEDBACKS = {"explicit": "ratings", "implicit": "interactions (each row one)", "counts": "interactions with counts"}
# A substring that marks a column's role when no exact name matches ("movie_rating", "customerNumber"...).
_FUZZY = {
    "user": ("user", "customer", "reviewer"),
    "item": ("item", "movie", "product", "book", "isbn"),
    "rating": ("rating", "score"),
    "timestamp": ("timestamp", "time", "date"),
}

_SAMPLE_BYTES = 1 << 16
_MAX_LINE_BYTES = 16 << 20  # a longer line is not a row of ratings (nor a wide matrix's header)
MAX_RATING = 1e9  # larger ratings overflow the 32-bit sums of squares training takes
_SAMPLE_LINES = 200
_MULTI_SEP = "\x1f"  # "::" is rewritten to this byte because pyarrow only takes one-byte delimiters
_BOM = b"\xef\xbb\xbf"


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).split(":")[0].lower())


_KNOWN_NORM = {role: {_norm(n) for n in names} for role, names in KNOWN_NAMES.items()}


class DataError(ValueError):
    """Bad input a user can cause; the message names the file, row and column."""

    def __init__(self, message: str, *, source: str | None = None, row: int | None = None,
                 column: str | None = None) -> None:
        self.reason = message
        self.source = source
        self.row = row
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        where = [self.source] if self.source else []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


@dataclass
class Ratings:
    """A validated long ratings table plus what reading it found out."""

    df: pd.DataFrame  # user, item, rating (float32)[, timestamp (int64 seconds)]; index 0..n-1
    columns: dict[str, str]  # role -> column name as found in the file ("column 1"... without a header)
    source: str  # the file name shown in messages
    n_rows_read: int = 0  # data rows in the input (cells for a wide matrix)
    n_duplicates: int = 0  # rows removed because their (user, item) pair was rated again (DUPLICATE_RULE)
    warnings: list[str] = field(default_factory=list)  # notes for the user about what reading did
    # explicit: ratings; implicit: no rating column, each (user, item) pair an interaction (its rating 1, or the
    # number of rows it had); counts: a column of counts (plays, clicks) as the rating
    feedback: str = "explicit"

    @cached_property
    def n_users(self) -> int:
        """Number of distinct users."""
        return int(self.df["user"].nunique())

    @cached_property
    def n_items(self) -> int:
        """Number of distinct items."""
        return int(self.df["item"].nunique())

    @property
    def n_ratings(self) -> int:
        """Number of ratings (rows of `df`)."""
        return len(self.df)

    @property
    def sparsity(self) -> float:
        """Share of the user x item matrix that is empty."""
        return 1.0 - self.n_ratings / (self.n_users * self.n_items)

    @cached_property
    def rating_scale(self) -> tuple[float, float]:
        """Smallest and largest rating."""
        r = self.df["rating"].to_numpy()
        return float(r.min()), float(r.max())


@dataclass
class _Table:
    """A parsed input before validation: column names and a way to read columns as Arrow arrays."""

    names: list[str]  # unique column names
    raw_names: list[str]  # header cells as written (a wide matrix's item ids)
    header: bool
    sample: list[list[str]]  # first data rows as text, for inference
    read: Callable[[list[str]], dict[str, pa.ChunkedArray]]
    row_of: Callable[[int], int]  # data row index -> row number a person sees
    # Delimited text only: the chosen columns as text, one block of rows at a time, and a guess at the row count.
    stream: Callable[[list[str]], Iterator[pa.RecordBatch]] | None = None
    rows_hint: int = 0
