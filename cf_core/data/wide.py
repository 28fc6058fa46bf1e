"""A user x item matrix (first column user ids, header item ids, a rating per cell) turned into a long table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .finish import _finish
from .sources import _cell_str, _to_arrow
from .types import DataError, Ratings, _Table
from .validate import _first_bad, _how_many, _null_mask, _reject_huge, _to_ids


def _as_text(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    """Cells as text as a person wrote them (a spreadsheet's 4.0 as "4"), blanks as nulls."""
    if pa.types.is_string(arr.type):
        return arr
    if pa.types.is_large_string(arr.type):
        return pc.cast(arr, pa.string())
    if pa.types.is_floating(arr.type):  # NaN is a blank cell, as in pandas' matrices
        return pc.cast(pc.if_else(pc.is_nan(arr), pa.scalar(None, arr.type), arr), pa.string())
    if pa.types.is_integer(arr.type):
        return pc.cast(arr, pa.string())
    return _to_arrow(pd.Series(arr.to_pandas(), dtype=object).map(_cell_str).replace("", None))


def _wide_to_long(table: _Table, missing: float | None, display: str, warnings: list[str]) -> Ratings:
    """Convert a user x item matrix (first column user ids, header item ids) to long form."""
    if not table.header:
        raise DataError("a wide matrix needs a header row of item ids", source=display)
    user_col, item_cols = table.names[0], table.names[1:]
    if not item_cols:
        raise DataError("a wide matrix needs item columns after the user column", source=display)
    cols = table.read(table.names)
    values = _cell_values(table, cols, user_col, item_cols, display)
    present = ~np.isnan(values)
    if missing is not None:
        present &= values != missing
    _reject_huge(np.where(present, values, 0.0),
                 lambda k: (table.row_of(k // values.shape[1]), item_cols[k % values.shape[1]]), display)
    rows, users = _rated_users(table, cols[user_col], user_col, present, display)
    items = _to_ids(pa.chunked_array([pa.array(table.raw_names[1:])]), "item", "(header row)",
                    lambda i: 1, display)
    r_idx, c_idx = np.nonzero(present[rows])
    long = {
        "user": users[r_idx] if isinstance(users, np.ndarray) else users.iloc[r_idx].reset_index(drop=True),
        "item": items[c_idx] if isinstance(items, np.ndarray) else items.iloc[c_idx].reset_index(drop=True),
        "rating": values[rows][r_idx, c_idx],
    }
    marker = " or equal to " + f"{missing:g}" if missing is not None else ""
    warnings.append(f"Converted a wide {len(values):,} users x {len(item_cols):,} items matrix to "
                    f"{len(r_idx):,} ratings (blank cells{marker} are missing).")
    columns = {"user": user_col, "item": "(header row)", "rating": "(cells)"}
    return _finish(long, columns, display, warnings, missing, values.size)


def _cell_values(table: _Table, cols: dict[str, pa.ChunkedArray], user_col: str, item_cols: list[str],
                 display: str) -> np.ndarray:
    """The matrix's cells as a users x items array of float64, NaN where blank; a cell that is no number (or is
    infinite) is a DataError with its row and item column."""
    # One flat column of cells, item by item, converted at once (12,000 item columns took 20 s one by one).
    flat = pa.chunked_array([chunk for c in item_cols for chunk in _as_text(cols[c]).chunks], type=pa.string())
    text = pc.utf8_trim_whitespace(flat)
    blank = _null_mask(text)
    numbers = pd.to_numeric(text.to_pandas(), errors="coerce").to_numpy(np.float64, na_value=np.nan)
    n_users = len(cols[user_col])
    values = numbers.reshape(len(item_cols), n_users).T
    bad = (np.isnan(numbers) & ~blank).reshape(len(item_cols), n_users).T
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(f"not a number: {flat[int(j * n_users + i)].as_py()!r}"
                        f"{_how_many(int(bad.sum()), 'are not numbers')}",
                        source=display, row=table.row_of(int(i)), column=item_cols[j])
    inf = np.isinf(values)
    if inf.any():
        i, j = np.argwhere(inf)[0]
        raise DataError(f"not a finite number: {values[i, j]:g}", source=display, row=table.row_of(int(i)),
                        column=item_cols[j])
    return values


def _rated_users(table: _Table, user_cells: pa.ChunkedArray, user_col: str, present: np.ndarray,
                 display: str) -> tuple[np.ndarray, Any]:
    """The rows with at least one rating, and their user ids; such a row without a user id is a DataError."""
    has_any = present.any(axis=1)
    user_text = user_cells
    if pa.types.is_string(user_text.type):
        user_text = pc.utf8_trim_whitespace(user_text)
    no_user = _null_mask(user_text) & has_any
    if no_user.any():
        i, n = _first_bad(no_user)
        raise DataError(f"missing user id (blank) in a row with ratings{_how_many(n, 'have none')}",
                        source=display, row=table.row_of(i), column=user_col)
    rows = np.flatnonzero(has_any)
    users = _to_ids(user_cells.take(pa.array(rows)), "user", user_col, lambda i: table.row_of(int(rows[i])),
                    display)
    return rows, users
