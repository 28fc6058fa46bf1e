"""`read_ratings` and `preview`: any supported input to a validated `Ratings` (or a first look at its rows).

A clean delimited file takes the block-wise path (`blocks`); anything else, and any file with a problem, is read
whole, column by column, and validated (`validate`) so that a problem is reported by row and column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .blocks import _FullRead, _read_long
from .finish import _dropped_missing, _finish
from .roles import _by_content, _count_column, _infer_roles, _looks_wide, _require
from .sources import _open_table
from .types import _ROLES, DataError, Ratings, _Table
from .validate import _to_ids, _to_ratings, _to_timestamps
from .wide import _wide_to_long


def preview(source: Any, *, n: int = 20, sep: str | None = None, header: bool | None = None,
            name: str | None = None) -> pd.DataFrame:
    """The first `n` rows as text, under the column names `read_ratings` sees (to let a user pick columns).

    Raises:
        DataError: when the input cannot be parsed as a table at all (empty, binary, no separator).
    """
    display, table = _open_table(source, name, sep, header, None, [])
    rows = [row[:len(table.names)] + [""] * (len(table.names) - len(row)) for row in table.sample[:n]]
    return pd.DataFrame(rows, columns=table.names, dtype=object)


def read_ratings(source: Any, *, user: str | None = None, item: str | None = None, rating: str | None = None,
                 timestamp: str | None = None, sep: str | None = None, header: bool | None = None,
                 missing: float | None = None, wide: bool | None = None, name: str | None = None) -> Ratings:
    """Read a ratings table from a path, bytes, file-like or DataFrame and validate it.

    Args:
        source: a path, bytes, a binary file-like (with .getvalue() or .read()), or a pandas DataFrame.
        user, item, rating, timestamp: column names that override inference.
        sep: the separator ("," "\\t" ";" "|" " " or "::"); sniffed when None.
        header: whether the first row names the columns; detected when None.
        missing: a rating value that means "not rated" (e.g. 0 or -1): such cells/rows are dropped with a warning.
        wide: True for a user x item matrix, False for a long table; detected when None.
        name: the file name to show in messages.
    Raises:
        DataError: for any problem with the input, naming the file, row and column.
    """
    warnings: list[str] = []
    display, table = _open_table(source, name, sep, header, wide, warnings)
    explicit = {"user": user, "item": item, "rating": rating, "timestamp": timestamp}
    roles = _infer_roles(table, explicit, display)
    if wide or (wide is None and _looks_wide(table, roles, explicit)):
        return _wide_to_long(table, missing, display, warnings)
    counts = _count_column(table, roles)
    if counts is not None:  # plays, clicks...: implicit feedback with a count for each row
        roles["rating"] = counts
        warnings.append(f"No rating column: read {counts!r} as counts of interactions (implicit feedback: who chose "
                        "what, and how often).")
    else:
        _add_guessed(table, roles, warnings)
    if "rating" not in roles and "user" in roles and "item" in roles and rating is None and _pairs(table):
        return _read_whole(table, roles, explicit, missing, display, warnings, "implicit")
    _require(roles, table, display)
    feedback = "counts" if counts is not None else "explicit"
    # (counts take the whole read: a negative one is an error named by its row)
    if table.stream is not None and feedback == "explicit":
        # Delimited text is converted a block at a time, so the file is never in memory as text. Any problem
        # falls through to the all-text read below, which finds and reports it exactly as before.
        try:
            cols, n_read, n_missing = _read_long(table, roles, missing)
        except _FullRead:
            pass
        else:
            if n_missing:
                warnings.append(_dropped_missing(n_missing, missing))
            return _finish(cols, dict(roles), display, warnings, None, n_read, owned=True, feedback=feedback)
    return _read_whole(table, roles, explicit, missing, display, warnings, feedback)


def _pairs(table: _Table) -> bool:
    """Whether a table with a user and an item column and no rating is implicit feedback: with a header naming them,
    always; without one, where it has two columns and one of them is ids that are numbers (two columns of words,
    "name,colour", are more likely a list of something else)."""
    if table.header:
        return True
    from .sniff import _is_number

    return len(table.names) == 2 and any(
        all(_is_number(row[j].strip()) for row in table.sample if len(row) > j and row[j].strip()) for j in (0, 1))


def _add_guessed(table: _Table, roles: dict[str, str], warnings: list[str]) -> None:
    """Add to `roles` what the values say where the names do not, and warn that it was guessed."""
    guessed = _by_content(table, roles)
    if guessed:
        roles.update(guessed)
        said = ", ".join(f"{col!r} as the {role}" for role, col in guessed.items())
        unnamed = [r for r in ("user", "item", "rating") if r in guessed]
        warnings.append(f"No column is named like {' or '.join(('an ' if r == 'item' else 'a ') + r for r in unnamed)}"
                        f": read {said}, from their values. If that is wrong, choose the columns (on the Data page, "
                        f"or --user-col, --item-col, --rating-col, --time-col in the CLI)")


def _read_whole(table: _Table, roles: dict[str, str], explicit: dict[str, str | None], missing: float | None,
                display: str, warnings: list[str], feedback: str = "explicit") -> Ratings:
    """Read the role columns whole and validate them cell by cell (vectorised), naming the first bad cell.
    `feedback` implicit: there is no rating column; each row is one interaction."""
    arrays = table.read([roles[r] for r in _ROLES if r in roles])
    n_read = len(arrays[roles["user"]])
    if n_read == 0:
        raise DataError("the file has a header but no data rows", source=display)
    cols: dict[str, Any] = {
        "user": _to_ids(arrays[roles["user"]], "user", roles["user"], table.row_of, display),
        "item": _to_ids(arrays[roles["item"]], "item", roles["item"], table.row_of, display),
        "rating": np.ones(n_read) if feedback == "implicit" else
        _to_ratings(arrays[roles["rating"]], roles["rating"], table.row_of, display, warnings),
    }
    if feedback == "counts":
        negative = cols["rating"] < 0
        if negative.any():
            i = int(np.flatnonzero(negative)[0])
            more = f" ({int(negative.sum()):,} rows have one)" if negative.sum() > 1 else ""
            raise DataError(f"a count cannot be negative: {cols['rating'][i]:g}{more}", source=display,
                            row=table.row_of(i), column=roles["rating"])
    if feedback == "implicit":
        warnings.append("No rating column: read as implicit feedback, each row one interaction (who chose what). "
                        "A pair that appears on several rows counts that many times.")
    if "timestamp" in roles:
        try:
            cols["timestamp"] = _to_timestamps(arrays[roles["timestamp"]], roles["timestamp"], table.row_of, display)
        except DataError as exc:
            if table.header or explicit["timestamp"]:
                raise
            # A fourth unnamed column may be anything (a review text...); it only costs the timestamp.
            warnings.append(f"Ignored {roles['timestamp']} as a timestamp: {exc.reason}")
            del roles["timestamp"]
    return _finish(cols, dict(roles), display, warnings, None if feedback == "implicit" else missing, n_read,
                   feedback=feedback)
