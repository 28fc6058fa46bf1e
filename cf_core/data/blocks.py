"""The block-wise fast path: a clean delimited file converted a block of rows at a time into compact columns.

Anything the whole-column validation would report raises `_FullRead`, and `read_ratings` reads the file again
whole to report it by row and column; no Python loop ever runs over rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .types import _ROLES, MAX_RATING, _Table
from .validate import _keeps_text


class _FullRead(Exception):
    """A block needs what only the all-text read gives: a bad cell's row and message, a ragged row's line..."""


class _TextIds(Exception):
    """A later block has ids that must stay text, so the column is read again as text from the start."""

    def __init__(self, role: str) -> None:
        super().__init__(role)
        self.role = role


class _Growing:
    """A numpy array filled block by block. Its capacity is a guess; pages past what is filled are never touched,
    so an overestimate costs address space, not memory."""

    def __init__(self, dtype: type, capacity: int) -> None:
        self.data = np.empty(capacity, dtype)
        self.n = 0

    def append(self, values: np.ndarray) -> None:
        end = self.n + len(values)
        if end > len(self.data):
            grown = np.empty(max(2 * len(self.data), end), self.data.dtype)
            grown[:self.n] = self.data[:self.n]
            self.data = grown
        self.data[self.n:end] = values
        self.n = end

    def finish(self) -> np.ndarray:
        self.data.resize(self.n, refcheck=False)  # hands the untouched tail back without a copy
        return self.data


def _block_ids(arr: pa.Array, as_text: bool) -> np.ndarray | pa.Array:
    """One block of ids as `_to_ids` converts a whole column: int64, or trimmed text when they must stay text."""
    if arr.null_count:
        raise _FullRead
    values = None
    if not as_text:
        try:
            values = pc.cast(arr, pa.int64())  # fails on surrounding spaces, so success means nothing to trim
        except pa.ArrowInvalid:
            pass
        if values is not None and not _keeps_text(arr):
            return values.to_numpy()
    text = pc.utf8_trim_whitespace(arr)
    if pc.any(pc.equal(text, "")).as_py():
        raise _FullRead
    if values is None and not as_text and not _keeps_text(text):
        try:
            return pc.cast(text, pa.int64()).to_numpy()
        except pa.ArrowInvalid:
            pass
    return text


def _block_numbers(arr: pa.Array, target: pa.DataType) -> np.ndarray:
    """One block of numbers as the whole-column conversions give them; anything else needs the full read."""
    if arr.null_count:
        raise _FullRead
    for text in (arr, pc.utf8_trim_whitespace(arr)):  # trimming (a copy) only when the plain cast fails
        try:
            return pc.cast(text, target).to_numpy()
        except pa.ArrowInvalid:
            pass
    raise _FullRead


def _read_blocks(table: _Table, roles: dict[str, str], missing: float | None,
                 text_roles: set[str]) -> tuple[dict[str, Any], int, int]:
    """Convert a long table a block of rows at a time into compact columns: (columns, rows read, rows dropped as
    `missing`). Only clean input comes through; anything `read_ratings` would report raises _FullRead."""
    names = list(dict.fromkeys(roles[r] for r in _ROLES if r in roles))
    numbers = {r: _Growing(np.float32 if r == "rating" else np.int64, table.rows_hint)
               for r in roles if r not in text_roles}
    texts: dict[str, list[pa.Array]] = {r: [] for r in text_roles}
    n_read = n_missing = 0
    try:
        for batch in table.stream(names):
            if batch.num_rows == 0:
                continue
            block: dict[str, Any] = {}
            for role in ("user", "item"):
                ids = _block_ids(batch.column(roles[role]), role in texts)
                if isinstance(ids, pa.Array) and role not in texts:
                    if numbers[role].n:
                        raise _TextIds(role)
                    del numbers[role]
                    texts[role] = []
                block[role] = ids
            rating = _block_numbers(batch.column(roles["rating"]), pa.float64())
            if not np.isfinite(rating).all() or np.abs(rating).max() > MAX_RATING:
                raise _FullRead
            block["rating"] = rating
            if "timestamp" in roles:
                block["timestamp"] = _block_numbers(batch.column(roles["timestamp"]), pa.int64())
            n_read += batch.num_rows
            if missing is not None:
                keep = rating != missing  # compared as float64, before ratings become float32
                if not keep.all():
                    n_missing += int((~keep).sum())
                    block = {r: v[keep] if isinstance(v, np.ndarray) else v.filter(pa.array(keep))
                             for r, v in block.items()}
            for role, values in block.items():
                if role in texts:
                    texts[role].append(values)
                else:
                    numbers[role].append(values)
    except pa.ArrowException:
        raise _FullRead from None
    if n_read == 0:
        raise _FullRead
    cols: dict[str, Any] = {r: numbers.pop(r).finish() for r in list(numbers)}
    for role, parts in texts.items():
        cols[role] = pa.chunked_array(parts, type=pa.string()).to_pandas().astype("str")
    return cols, n_read, n_missing


def _read_long(table: _Table, roles: dict[str, str], missing: float | None) -> tuple[dict[str, Any], int, int]:
    """`_read_blocks`, started again with a column as text when a later block finds ids that must stay text."""
    text_roles: set[str] = set()
    while True:
        try:
            return _read_blocks(table, roles, missing, text_roles)
        except _TextIds as again:
            text_roles.add(again.role)


