"""Item metadata: items.csv, MovieLens movies.csv / movies.dat / u.item, Parquet or Excel, as item, title, year,
genres."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .encoding import _decode_text
from .sniff import _looks_binary, _role_of_name, _sample_lines, _sniff_sep, _split
from .sources import _cell_str, _check_workbook, _open
from .types import _KNOWN_NORM, _MULTI_SEP, _SAMPLE_BYTES, KNOWN_NAMES, DataError, _norm
from .validate import _to_ids

# MovieLens 100k's u.item: id | title | release date | video release date | IMDb URL | 19 genre flags.
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                 "War", "Western")
_ITEM_NAMES = {
    "title": {_norm(n) for n in ("title", "movie_title", "name", "book_title", "Book-Title", "product_title")},
    "year": {_norm(n) for n in ("year", "release_year", "Year-Of-Publication", "year_of_publication")},
    "genres": {_norm(n) for n in ("genres", "genre", "class", "categories", "category", "tags")},
}
_YEAR_SUFFIX = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$")


def read_items(source: Any, *, name: str | None = None) -> pd.DataFrame:
    """Read item metadata (items.csv, MovieLens movies.csv or u.item) as item, title, year, genres.

    `item` is int64 when every id is an integer, else str; `year` is nullable Int64 (taken from a
    "Title (1995)" suffix when there is no year column); `genres` is '|'-joined ("" when none). A missing title
    becomes str(item); repeated item ids keep their first row.
    """
    display, buf = _open(source, name)
    if len(buf) == 0:
        raise DataError("the file is empty (0 bytes)", source=display)
    frame, header = _item_frame(bytes(buf), display)
    out, item_col = _item_columns(frame, header, display)
    return _tidy_items(out, item_col, 2 if header else 1, display)


def _item_frame(data: bytes, display: str) -> tuple[pd.DataFrame, bool]:
    """The file as a frame of text cells, and whether its first row was a header."""
    if data[:4] == b"PAR1":
        try:
            frame = pd.read_parquet(io.BytesIO(data)).astype("str").fillna("")
        except Exception as exc:  # pyarrow's errors have no common base: any of them means a damaged file
            raise DataError(f"could not be read as Parquet ({str(exc).splitlines()[0]})", source=display) from exc
        return frame, True
    if data[:4] == b"PK\x03\x04":
        _check_workbook(data, display)
        try:
            frame = pd.read_excel(io.BytesIO(data), dtype=object).map(_cell_str)
        except Exception as exc:  # zipfile, openpyxl and XML errors alike
            raise DataError(f"could not be read as an Excel workbook ({str(exc).splitlines()[0]})",
                            source=display) from exc
        return frame, True
    return _text_items(data, display)


def _text_items(data: bytes, display: str) -> tuple[pd.DataFrame, bool]:
    """Delimited item text, decoded as a ratings file is (`_decode_text`), cells stripped."""
    if _looks_binary(data[:_SAMPLE_BYTES]):
        raise DataError("does not look like an items table (it is a binary file)", source=display)
    text = _decode_text(data, display, [])
    encoded = text.encode("utf-8")
    lines = _sample_lines(encoded[:_SAMPLE_BYTES], len(encoded) > _SAMPLE_BYTES)
    if not lines:
        raise DataError("the file is empty", source=display)
    sep = _sniff_sep(lines, display)
    if sep == "::":  # MovieLens 1M's movies.dat: one byte for the parsers, as for ratings
        text, sep = text.replace("::", _MULTI_SEP), _MULTI_SEP
        lines = [line.replace("::", _MULTI_SEP) for line in lines]
    first = _split(lines[:1], sep)[0]
    header = any(_role_of_name(c) in ("item",) or any(_norm(c) in s for s in _ITEM_NAMES.values())
                 for c in first)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, header=0 if header else None, dtype=str,
                            keep_default_na=False, quoting=csv.QUOTE_MINIMAL if sep in ",;" else csv.QUOTE_NONE)
    except pd.errors.ParserError as exc:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if found is None:
            raise DataError(f"could not be read as a table ({str(exc).splitlines()[0]})", source=display) from exc
        raise DataError(f"expected {found[1]} fields, found {found[3]}", source=display,
                        row=int(found[2])) from exc
    frame.columns = [str(c) for c in frame.columns] if header else [f"column {j + 1}"
                                                                      for j in range(frame.shape[1])]
    return frame.apply(lambda col: col.str.strip()), header


def _item_columns(frame: pd.DataFrame, header: bool, display: str) -> tuple[pd.DataFrame, str]:
    """item, title, year, genres as text (by name, by u.item's layout or by position), and the id column's name."""
    names = list(frame.columns)
    if not header and frame.shape[1] >= 5 + len(ML100K_GENRES):
        return _u_item_frame(frame), names[0]
    if header:
        return _named_item_columns(frame, display)
    # Headerless and not u.item: positions as in movies.csv (id, title, genres) or items.csv (+ year).
    layout = {3: ("item", "title", "genres"), 4: ("item", "title", "year", "genres")}.get(
        frame.shape[1], ("item", "title")[:frame.shape[1]])
    out = pd.DataFrame({k: (frame.iloc[:, layout.index(k)] if k in layout else "")
                        for k in ("item", "title", "year", "genres")})
    return out, names[0]


def _named_item_columns(frame: pd.DataFrame, display: str) -> tuple[pd.DataFrame, str]:
    """item, title, year, genres from a header's names; no item id column is a DataError."""
    names = list(frame.columns)
    roles: dict[str, str] = {}
    for col in names:
        n = _norm(col)
        if "item" not in roles and n in _KNOWN_NORM["item"]:
            roles["item"] = col
        for key, known in _ITEM_NAMES.items():
            if key not in roles and n in known:
                roles[key] = col
    if "item" not in roles:
        raise DataError("no item id column found; the columns are " + ", ".join(repr(c) for c in names)
                        + "; looked for names like " + ", ".join(KNOWN_NAMES["item"][:8]), source=display)
    out = pd.DataFrame({k: frame[roles[k]] if k in roles else "" for k in ("item", "title", "year", "genres")})
    return out, roles["item"]


def _u_item_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """item, title, year, genres from MovieLens 100k's u.item columns (genres from its 19 flag columns)."""
    flags = frame.iloc[:, 5:5 + len(ML100K_GENRES)].to_numpy() == "1"
    genres = pd.Series("", index=frame.index)
    for j, genre in enumerate(ML100K_GENRES):  # 19 columns, not rows
        genres = genres + np.where(flags[:, j], genre + "|", "")
    return pd.DataFrame({"item": frame.iloc[:, 0], "title": frame.iloc[:, 1],
                         "year": frame.iloc[:, 2].str.extract(r"(\d{4})\s*$")[0],
                         "genres": genres.str.rstrip("|")})


def _tidy_items(out: pd.DataFrame, item_col: str, row_base: int, display: str) -> pd.DataFrame:
    """Typed ids, titles without their "(1995)" suffix, years, '|'-joined genres; first row of each item."""
    out = out.fillna("").astype("str")
    if out.empty:
        raise DataError("the file has no items", source=display)
    ids = _to_ids(pa.chunked_array([pa.array(out["item"], type=pa.string(), from_pandas=True)]), "item",
                  item_col, lambda i: i + row_base, display)
    parts = out["title"].str.extract(_YEAR_SUFFIX)
    has_suffix = parts["title"].notna()
    title = out["title"].where(~has_suffix, parts["title"]).str.strip()
    year_text = out["year"].where(out["year"].str.strip() != "", parts["year"])
    year = pd.to_numeric(year_text, errors="coerce")
    year = year.where(year == year.round()).astype("Int64")
    genres = out["genres"].str.replace(r"\s*\|\s*", "|", regex=True).replace("(no genres listed)", "")
    result = pd.DataFrame({"item": ids, "title": title, "year": year, "genres": genres.astype("str")})
    result["title"] = result["title"].where(result["title"] != "", result["item"].astype("str"))
    return result.drop_duplicates("item", keep="first").reset_index(drop=True)
