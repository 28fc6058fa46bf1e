"""The last step of every read: drop ratings equal to the missing-value marker and duplicate (user, item) pairs
(DUPLICATE_RULE), check there is enough to learn from, warn about odd ratings, and build the `Ratings`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .types import _ROLES, DUPLICATE_RULE, DataError, Ratings


def _codes(ids: np.ndarray | pd.Series) -> tuple[np.ndarray, int, int]:
    """Dense non-negative codes as (array, offset, range): code = array - offset. Integer ids are their own codes
    (no hash table, no copy); anything else is factorized."""
    if isinstance(ids, np.ndarray) and ids.dtype.kind == "i":
        lo, hi = int(ids.min()), int(ids.max())
        if hi - lo < 2**31:
            return ids, lo, hi - lo + 1
    codes, uniques = pd.factorize(ids)
    return codes.astype(np.int64, copy=False), 0, len(uniques)


def _duplicate_drops(user: Any, item: Any, ts: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Row positions to drop under DUPLICATE_RULE, and how many distinct pairs were duplicated."""
    ucode, ulo, _ = _codes(user)
    icode, ilo, n_icode = _codes(item)
    # One int64 key per row, built in place and sorted in place: with 25M rows every extra array is 200 MB.
    # Sorting is far cheaper than hashing 25M keys; the full regrouping runs only on duplicated rows.
    key = np.subtract(ucode, ulo, dtype=np.int64)
    key *= n_icode
    key += icode
    key -= ilo
    key.sort()
    repeated = key[1:][key[1:] == key[:-1]]
    del key
    if len(repeated) == 0:
        return np.empty(0, np.int64), 0
    dup_keys = repeated[np.r_[True, repeated[1:] != repeated[:-1]]]  # already sorted
    # A table lookup by user narrows the rows first; searchsorted over every row would cost seconds.
    user_code = ucode - ulo
    dup_user = np.zeros(int(user_code.max()) + 1, dtype=bool)
    dup_user[dup_keys // n_icode] = True
    rows = np.flatnonzero(dup_user[user_code])
    del user_code
    sub = (ucode[rows] - ulo) * n_icode + (icode[rows] - ilo)
    pos = np.minimum(np.searchsorted(dup_keys, sub), len(dup_keys) - 1)
    found = dup_keys[pos] == sub
    rows, sub = rows[found], sub[found]
    order = np.lexsort((rows, ts[rows], sub) if ts is not None else (rows, sub))
    sub_sorted = sub[order]
    last = np.r_[sub_sorted[1:] != sub_sorted[:-1], True]
    return rows[order[~last]], len(dup_keys)


def _dropped_missing(n: int, missing: float) -> str:
    return f"Dropped {n:,} ratings equal to the missing-value marker {missing:g}."


def _interactions(df: pd.DataFrame, feedback: str, warnings: list[str]) -> tuple[pd.DataFrame, str]:
    """Implicit feedback: rows of no interaction (a count of 0) dropped, and each (user, item) pair on one row,
    its count the sum of its rows' (each row one where there is no count column; the latest timestamp)."""
    if feedback == "counts":
        zero = df["rating"].to_numpy() == 0
        if zero.any():
            df = df[~zero]
            n = int(zero.sum())
            warnings.append(f"Dropped {n:,} row{'s' if n > 1 else ''} whose count is 0 (no interaction).")
    pairs = df.groupby(["user", "item"], sort=False)
    if len(pairs) == len(df):
        return df, feedback
    agg = {"rating": "sum", **({"timestamp": "max"} if "timestamp" in df else {})}
    merged = pairs.agg(agg).reset_index()
    n = len(df) - len(merged)
    warnings.append(f"{n:,} row{'s repeat' if n > 1 else ' repeats'} a (user, item) pair already seen: each pair "
                    "is one interaction whose count is the sum of its rows'"
                    + (" (the number of rows it has)." if feedback == "implicit" else "."))
    return merged, "counts"


def _finish(cols: dict[str, Any], columns: dict[str, str], display: str,
            warnings: list[str], missing: float | None, n_rows_read: int, *, owned: bool = False,
            feedback: str = "explicit") -> Ratings:
    """Drop sentinel ratings and duplicates, check there is enough data, and build the Ratings.

    `owned` says the arrays in `cols` belong to this read, so the frame may wrap them instead of copying them.
    `feedback` (`Ratings.feedback`): implicit or counts, whose duplicate pairs add up instead (`_interactions`).
    """
    df = pd.DataFrame({r: cols[r] for r in _ROLES if r in cols}, copy=not owned)
    if feedback != "explicit":
        df, feedback = _interactions(df, feedback, warnings)
        return _built(df.reset_index(drop=True), columns, display, warnings, n_rows_read, 0, feedback)
    if missing is not None and "rating" in columns and columns.get("item") != "(header row)":
        is_missing = df["rating"].to_numpy() == missing
        if is_missing.any():
            df = df[~is_missing]
            warnings.append(_dropped_missing(int(is_missing.sum()), missing))
    ts = df["timestamp"].to_numpy() if "timestamp" in df else None
    n_dup = 0
    if len(df) > 1:
        drops, n_pairs = _duplicate_drops(df["user"].to_numpy() if df["user"].dtype.kind == "i" else df["user"],
                                          df["item"].to_numpy() if df["item"].dtype.kind == "i" else df["item"], ts)
        if len(drops):
            n_dup = len(drops)
            keep = np.ones(len(df), dtype=bool)
            keep[drops] = False
            df = df[keep]
            warnings.append(f"{n_pairs:,} (user, item) pairs were rated more than once; removed {n_dup:,} "
                            f"duplicate ratings. {DUPLICATE_RULE}")
    return _built(df.reset_index(drop=True), columns, display, warnings, n_rows_read, n_dup)


def _built(df: pd.DataFrame, columns: dict[str, str], display: str, warnings: list[str], n_rows_read: int,
           n_dup: int, feedback: str = "explicit") -> Ratings:
    """The Ratings, once there is enough to learn from (with warnings about odd ratings)."""
    df["rating"] = df["rating"].astype(np.float32)
    if len(df) < 2:
        raise DataError(f"needs at least 2 ratings, found {len(df)}", source=display)
    for role in ("user", "item"):
        n = df[role].nunique()
        if n < 2:
            raise DataError(f"needs at least 2 different {role}s, found {n}", source=display,
                            column=columns.get(role))
    r = df["rating"].to_numpy()
    if feedback != "explicit":
        pass  # counts: any spread is fine, and all ones is what plain interactions are
    elif r.min() == r.max():
        warnings.append(f"Every rating is {r[0]:g}; a model cannot learn preferences from that.")
    else:
        odd = _odd_rating_column(r)
        far = _far_ratings(r)
        if far:
            warnings.append(far)
        if odd:
            warnings.append(f"The rating column {columns.get('rating', 'rating')!r} {odd}: check that it is the "
                            "rating, and pick the right column if not.")
    return Ratings(df=df, columns=columns, source=display, n_rows_read=n_rows_read, n_duplicates=n_dup,
                   warnings=warnings, feedback=feedback)



def _odd_rating_column(r: np.ndarray) -> str | None:
    """Why a chosen rating column looks like times or ids rather than ratings, or None."""
    distinct = len(np.unique(r[:200_000]))
    if distinct < 100:
        return None
    if r.min() >= 1e8 and r.max() < 1e11:
        return (f"looks like times (seconds since 1970: {r.min():.0f} to {r.max():.0f}, {distinct:,} different "
                "values), not ratings")
    if np.all(r == np.round(r)) and distinct > 1000 and distinct > 0.5 * min(len(r), 200_000):
        return f"looks like ids ({distinct:,} different whole numbers), not ratings"
    return None


def _far_ratings(r: np.ndarray) -> str | None:
    """A warning when a few ratings lie far outside where the rest are (a typo such as 40 for 4.0 or 1e30)."""
    lo, hi = np.percentile(r[::max(1, len(r) // 1_000_000)], [0.5, 99.5])  # an even sample: files come sorted
    if hi == lo:  # nearly every rating is one value: no spread to measure "far" by
        return None
    far = (r < lo - 100 * (hi - lo)) | (r > hi + 100 * (hi - lo))
    if not far.any():
        return None
    return (f"{int(far.sum()):,} ratings lie far outside the range of the rest ({lo:g} to {hi:g}), for example "
            f"{r[far][0]:g}: check them; they will dominate what the model learns.")


