"""Validation of cells: ids, ratings and timestamps converted from whole columns, with the first bad cell's row and
column (and how many more there are) in each DataError."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .types import MAX_RATING, DataError


def _first_bad(mask: np.ndarray) -> tuple[int, int]:
    bad = np.flatnonzero(mask)
    return int(bad[0]), len(bad)


def _reject_blanks(missing: np.ndarray, what: str, col: str, row_of: Callable[[int], int], display: str) -> None:
    """DataError naming the first blank cell of a column (and how many there are), if any."""
    if missing.any():
        i, n = _first_bad(missing)
        raise DataError(f"missing {what} (blank){_how_many(n, 'have none')}", source=display, row=row_of(i), column=col)


def _how_many(n_bad: int, what: str) -> str:
    return f" ({n_bad:,} rows {what})" if n_bad > 1 else ""


def _null_mask(arr: pa.ChunkedArray) -> np.ndarray:
    mask = arr.is_null()
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        mask = pc.or_kleene(mask, pc.equal(arr, ""))  # callers pass trimmed text
    elif pa.types.is_floating(arr.type):
        mask = pc.or_kleene(mask, pc.is_nan(arr))
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _to_ids(arr: pa.ChunkedArray, role: str, col: str, row_of: Callable[[int], int],
            display: str) -> np.ndarray | pd.Series:
    """Raw ids as int64 when every id is an integer (without leading zeros), else as str."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_nested(arr.type) or pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
        raise DataError(f"{role} ids must be numbers or text, found {arr.type}", source=display, column=col)
    numeric = pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)
    text = arr if numeric else pc.utf8_trim_whitespace(arr.cast(pa.string()))
    _reject_blanks(_null_mask(text), f"{role} id", col, row_of, display)
    if pa.types.is_integer(arr.type):
        return arr.to_numpy().astype(np.int64, copy=False)
    if pa.types.is_floating(arr.type):
        values = arr.to_numpy()
        if np.all(values == np.round(values)) and np.all(np.abs(values) < 2**53):
            return values.astype(np.int64)
        return pd.Series(values).astype("str")
    if not _keeps_text(text):
        try:
            return pc.cast(text, pa.int64()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return text.to_pandas().astype("str")


def _to_ratings(arr: pa.ChunkedArray, col: str, row_of: Callable[[int], int], display: str,
                warnings: list[str] | None = None) -> np.ndarray:
    """Ratings as float64; with `warnings`, decimal commas are read too (and said so)."""
    missing = arr.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        text = pc.utf8_trim_whitespace(arr)
        missing = missing | np.asarray(pc.equal(text, "").to_numpy(zero_copy_only=False), dtype=bool)
    _reject_blanks(missing, "rating", col, row_of, display)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        try:
            values = pc.cast(text, pa.float64()).to_numpy()
        except pa.ArrowInvalid:
            values = None
        if values is None and warnings is not None and bool(pc.all(pc.match_substring_regex(
                text, r"^[+-]?\d*,\d+$|^[+-]?\d+$")).as_py()):
            # Decimal commas ("4,5"), as a spreadsheet in much of Europe saves them beside ";" separators.
            values = pc.cast(pc.replace_substring(text, ",", "."), pa.float64()).to_numpy()
            warnings.append(f"Read the ratings in {col!r} with decimal commas (4,5 as 4.5).")
        if values is None:
            raw = text.to_pandas()
            commas = raw.str.fullmatch(r"[+-]?\d*,\d+").fillna(False).to_numpy(bool)
            # With decimal commas in the column, the cells that are wrong are the ones that are no number either way.
            bad = pd.to_numeric(raw.where(~commas, raw.str.replace(",", ".")), errors="coerce").isna().to_numpy()
            i, n = _first_bad(bad)
            raise DataError(f"not a number: {raw.iloc[i]!r}{_how_many(n, 'are not numbers')}",
                            source=display, row=row_of(i), column=col) from None
    elif pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_boolean(arr.type):
        values = arr.cast(pa.float64()).to_numpy()
    else:
        raise DataError(f"ratings must be numbers, found {arr.type}", source=display, column=col)
    finite = np.isfinite(values)
    if not finite.all():
        i, n = _first_bad(~finite)
        raise DataError(f"not a finite number: {values[i]:g}{_how_many(n, 'are not finite')}",
                        source=display, row=row_of(i), column=col)
    _reject_huge(values, lambda i: (row_of(i), col), display)
    return values


def _reject_huge(values: np.ndarray, where: Callable[[int], tuple[int, str]], display: str) -> None:
    """DataError for ratings too large to train on: 32-bit floats hold squares of ratings up to about 1e19."""
    huge = np.abs(values) > MAX_RATING
    if huge.any():
        i, n = _first_bad(huge.ravel())
        row, col = where(i)
        raise DataError(f"the rating {values.ravel()[i]:g} is too large: ratings must lie within +-{MAX_RATING:.0e}"
                        f"{_how_many(n, 'are beyond that')}", source=display, row=row, column=col)


def _to_timestamps(arr: pa.ChunkedArray, col: str, row_of: Callable[[int], int], display: str) -> np.ndarray:
    """Seconds since 1970 as int64, from numbers or from date/time text."""
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        arr = pc.utf8_trim_whitespace(arr)
    _reject_blanks(_null_mask(arr), "timestamp", col, row_of, display)
    if pa.types.is_integer(arr.type):
        return arr.cast(pa.int64()).to_numpy()
    if pa.types.is_floating(arr.type):
        return _whole_seconds(arr.to_numpy(), col, row_of, display)
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
        stamps = pd.to_datetime(arr.to_pandas(), utc=True)
    else:
        text = pc.utf8_trim_whitespace(arr.cast(pa.string()))
        try:
            return pc.cast(text, pa.int64()).to_numpy()
        except pa.ArrowInvalid:
            pass
        try:
            return _whole_seconds(pc.cast(text, pa.float64()).to_numpy(), col, row_of, display)
        except pa.ArrowInvalid:
            pass
        raw = text.to_pandas()
        numbers = pd.to_numeric(raw, errors="coerce")
        dates = raw[numbers.isna()]
        stamps = pd.to_datetime(dates, errors="coerce", utc=True, format="mixed")
        bad = stamps.isna()
        if bad.any():
            # Name the first cell that is neither a number nor a date (not the first number among dates).
            i, n = _first_flagged(raw, bad)
            raise DataError(f"not a timestamp (seconds since 1970 or a date): {raw.iloc[i]!r}"
                            f"{_how_many(n, 'are not timestamps')}", source=display, row=row_of(i),
                            column=col)
        _plausible_dates(stamps, raw, col, row_of, display)
        if len(dates) < len(raw):
            seconds = _whole_seconds(numbers.to_numpy(np.float64, na_value=0), col, row_of, display)
            seconds[numbers.isna().to_numpy()] = _seconds(stamps)
            return seconds
    return _seconds(stamps)


def _first_flagged(raw: pd.Series, bad: pd.Series) -> tuple[int, int]:
    """(position in `raw` of the first cell `bad` flags, how many it flags): `bad` is indexed by a subset of raw's."""
    return int(np.flatnonzero(raw.index.isin(bad.index[bad]))[0]), int(bad.sum())


def _plausible_dates(stamps: pd.Series, raw: pd.Series, col: str, row_of: Callable[[int], int], display: str) -> None:
    """Text that parses as a date only by a stretch ("m1" reads as the year 1) is refused, with its row: a date a
    rating was made on lies between 1900 and 2200 (beyond, it overflowed the conversion to seconds: a traceback)."""
    years = stamps.dt.year
    bad = (years < 1900) | (years > 2200)
    if bad.any():
        i, n = _first_flagged(raw, bad)
        raise DataError(f"not a timestamp (seconds since 1970 or a date): {raw.iloc[i]!r} reads as the year "
                        f"{int(years[bad].iloc[0])}{_how_many(n, 'are not timestamps')}", source=display,
                        row=row_of(i), column=col)


def _whole_seconds(values: np.ndarray, col: str, row_of: Callable[[int], int], display: str) -> np.ndarray:
    """Numbers as whole seconds; a number no clock gives (beyond +-1e15, or not finite) is an error, not a wrap."""
    bad = ~(np.abs(values) < 1e15)
    if bad.any():
        i, n = _first_bad(bad)
        raise DataError(f"not a timestamp (seconds since 1970 or a date): {values[i]:g}"
                        f"{_how_many(n, 'are not timestamps')}", source=display, row=row_of(i), column=col)
    return np.floor(values).astype(np.int64)


def _seconds(stamps: pd.Series) -> np.ndarray:
    return ((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)



def _keeps_text(text: pa.Array | pa.ChunkedArray) -> bool:
    """Whether ids must stay text: "007" stays "007" (ISBNs), and so does a sign."""
    return bool(pc.any(pc.or_(pc.and_(pc.starts_with(text, "0"), pc.greater(pc.utf8_length(text), 1)),
                              pc.starts_with(text, "+"))).as_py())

