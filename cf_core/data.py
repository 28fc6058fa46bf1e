"""Read and validate ratings tables and item metadata.

`read_ratings` turns whatever a user hands us (CSV, TSV, `::`, `|` or `;` separated text, Parquet, Excel, a wide
user x item matrix, with or without a header, UTF-8 or Latin-1) into a `Ratings`: a long table of
user, item, rating[, timestamp]. Bad input is a first-class case: every problem a user can cause raises a
`DataError` whose message names the file, the row (as an editor shows it) and the column. `read_items` reads
movie/item metadata; `summarize`, `ratings_per_user`, `ratings_per_item` and `crosstab` describe a table.

The delimited path is built for large files (tens of millions of rows): pyarrow parses a block of rows at a
time straight into compact numpy columns, so the file is never held as text, and validation is vectorised; no
Python loop ever runs over rows. Input with a problem is read again whole as text to report it by row and column.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
import threading
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

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
             "recipe_id", "business_id", "article_id", "parent_asin"),
    "rating": ("rating", "score", "stars", "star", "Book-Rating", "rate", "overall", "preference",
               "user_rating", "review_score", "grade"),
    "timestamp": ("timestamp", "time", "date", "datetime", "date_time", "unix_time", "unix_timestamp",
                  "unixReviewTime", "ts", "rated_at", "created_at"),
}
_ROLES = ("user", "item", "rating", "timestamp")
# A substring that marks a column's role when no exact name matches ("movie_rating", "customerNumber"...).
_FUZZY = {
    "user": ("user", "customer", "reviewer"),
    "item": ("item", "movie", "product", "book", "isbn"),
    "rating": ("rating", "score"),
    "timestamp": ("timestamp", "time", "date"),
}

_SAMPLE_BYTES = 1 << 16
_MAX_LINE_BYTES = 16 << 20  # a longer line is not a row of ratings (nor a wide matrix's header)
_MAX_COLUMNS = 100_000
csv.field_size_limit(max(csv.field_size_limit(), _MAX_LINE_BYTES))  # the sniffer splits whole long lines
MAX_RATING = 1e9  # larger ratings overflow the 32-bit sums of squares training takes
_MAX_UNPACKED = 512 << 20  # Excel's own limit, 1,048,576 rows of a few columns, unpacks to a few hundred MB
_BLOCK_BYTES = 1 << 20  # delimited text is parsed and converted this many bytes at a time
_SAMPLE_LINES = 200
_SEPARATORS = ("\t", ",", ";", "|", " ")  # tried in this order after "::"; the first most consistent wins
_MULTI_SEP = "\x1f"  # "::" is rewritten to this byte because pyarrow only takes one-byte delimiters
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
_YEAR_SUFFIX = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$")
_BOM = b"\xef\xbb\xbf"
_DATE = re.compile(r"^(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})([ T]\d{1,2}:\d{2}(:\d{2})?.*)?$")


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


# ----------------------------------------------------------------------------------------------------- input


def _open(source: Any, name: str | None) -> tuple[str, Any]:
    """Return (display name, buffer) for a path, bytes or binary file-like (e.g. Streamlit's UploadedFile)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        display = name or path.name
        if not path.is_file():
            raise DataError("file not found" if not path.exists() else "not a file", source=display)
        if path.stat().st_size == 0:
            return display, b""
        # Memory-mapping lets pyarrow parse a large file without first copying it into a bytes object.
        return display, pa.memory_map(str(path)).read_buffer()
    if isinstance(source, (bytes, bytearray, memoryview)):
        return name or "<upload>", bytes(source)
    if hasattr(source, "getvalue"):
        data = source.getvalue()  # UploadedFile.read() is empty once read; getvalue() always has it all
    elif hasattr(source, "read"):
        data = source.read()
    else:
        raise TypeError(f"cannot read ratings from {type(source).__name__}")
    if isinstance(data, str):
        data = data.encode("utf-8")
    raw_name = getattr(source, "name", None)
    return name or (Path(str(raw_name)).name if raw_name else "<upload>"), bytes(data)


def _opener(source: Any, buf: Any) -> Callable[[], pa.NativeFile]:
    """Fresh streams of the input; a file is read with ordinary reads, because the pages of a memory map that a
    parser touched stay resident (a 650 MB file would add 650 MB to the peak)."""
    if isinstance(source, (str, os.PathLike)):
        path = str(source)
        return lambda: pa.OSFile(path)
    return lambda: pa.BufferReader(buf)


def _looks_binary(sample: bytes) -> bool:
    if b"\x00" in sample:
        return True
    arr = np.frombuffer(sample, np.uint8)
    control = (arr < 32) & (arr != 9) & (arr != 10) & (arr != 13)
    return bool(control.mean() > 0.01) if len(arr) else False


def _is_number(cell: str) -> bool:
    return bool(_NUMBER.match(cell))


def _cell_str(value: Any) -> str:
    """Render a spreadsheet cell as text the way a person reads it (27.0 -> "27", None -> "")."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _latin1_fallback(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: a byte that is not UTF-8 is read as Latin-1 (and counted), the rest stays UTF-8."""
    assert isinstance(exc, UnicodeDecodeError)
    _NOT_UTF8.count += exc.end - exc.start
    if _NOT_UTF8.first is None:
        _NOT_UTF8.first = _NOT_UTF8.offset + exc.start
    return exc.object[exc.start:exc.end].decode("latin-1"), exc.end


class _NotUtf8(threading.local):
    """What `_latin1_fallback` saw in the current decode: how many bytes, and the first one's offset."""

    count: int = 0
    first: int | None = None
    offset: int = 0  # where the block being decoded starts in the input


_NOT_UTF8 = _NotUtf8()
codecs.register_error("cf-latin1", _latin1_fallback)


# More bytes that are not UTF-8 than this, and the text is Latin-1 throughout (read with the plain codec, which is
# fast); fewer, and they are stray bytes in UTF-8 text (each read as Latin-1 by `_latin1_fallback`).
_MANY_BAD = 1000


@dataclass
class _Encoding:
    """How a text input decodes: "utf-8", "mixed" (a few bytes read as Latin-1) or "latin-1"; for the warning, how
    many bytes were not UTF-8, the line of the first and that line's bytes."""

    mode: str = "utf-8"
    n_bad: int = 0
    line_no: int = 0
    line: bytes = b""

    def decode(self, data: bytes) -> bytes:
        """`data` (whole lines) as UTF-8 bytes."""
        if self.mode == "latin-1":
            return data.decode("latin-1").encode("utf-8")
        return data.decode("utf-8", errors="cf-latin1").encode("utf-8") if self.mode == "mixed" else data

    def warning(self, display: str) -> str | None:
        if self.mode == "latin-1":
            return f"{display} is not valid UTF-8; read it as Latin-1."
        if self.mode == "utf-8":
            return None
        shown = self.line.decode("utf-8", errors="cf-latin1").strip()
        shown = shown if len(shown) <= 100 else shown[:97] + "..."
        return (f"{display} is not all UTF-8: {self.n_bad:,} {'bytes that are' if self.n_bad > 1 else 'byte that is'} "
                f"not UTF-8 (the first on line {self.line_no}: {shown!r}) were read as Latin-1, the rest as UTF-8. "
                "If names look wrong, save the file as UTF-8.")


def _where(data: bytes, first: int, line_no: int = 1, base: int = 0) -> tuple[int, int]:
    """The line number of byte `first` of `data`, and where that line starts (counting from `line_no`, `base`)."""
    return line_no + data.count(b"\n", 0, first), base + data.rfind(b"\n", 0, first) + 1


def _decode_text(buf: Any, display: str, warnings: list[str]) -> bytes:
    """Strip a BOM and return UTF-8 bytes; bytes that are not UTF-8 are read as Latin-1 (with a warning): the same
    scan and decoding as a ratings file's (`_utf8_scan`), for text read whole (an items file)."""
    data = bytes(buf[3:] if bytes(buf[:3]) == _BOM else buf)
    enc = _utf8_scan(lambda: pa.BufferReader(data), 0)
    if enc.mode != "utf-8":
        warnings.append(enc.warning(display))
    return enc.decode(data)


def _head(buf: Any, skip: int, display: str) -> bytes:
    """The first bytes of the text (after `skip`) for sniffing: the sample, or more when line 1 is longer."""
    head = bytes(buf[skip:skip + _SAMPLE_BYTES])
    if b"\n" in head or len(buf) - skip <= _SAMPLE_BYTES:
        return head
    # A wide matrix's header names every item: 12,000 items make a line of about 100 kB.
    start = bytes(buf[skip:skip + _MAX_LINE_BYTES + 1])
    end = start.find(b"\n")
    if end < 0 and len(start) > _MAX_LINE_BYTES:
        raise DataError(f"line 1 is over {_MAX_LINE_BYTES >> 20} MB long; a ratings table has one rating (or, as a "
                        "matrix, one user) per line", source=display, row=1)
    return start if end < 0 else bytes(buf[skip:skip + end + 1 + _SAMPLE_BYTES])


def _sample_lines(head: bytes, more: bool) -> list[str]:
    """The sample's non-blank lines; the last is dropped when the text goes on past `head` (it may be cut)."""
    text = head.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if more and len(lines) > 1:
        lines = lines[:-1]
    return [line for line in lines if line.strip()][:_SAMPLE_LINES]


def _split(lines: list[str], sep: str) -> list[list[str]]:
    quoting = csv.QUOTE_MINIMAL if sep in ",;" else csv.QUOTE_NONE
    return [row for row in csv.reader(lines, delimiter=sep, quoting=quoting)]


def _sniff_sep(lines: list[str], display: str) -> str:
    """Pick the separator that splits the sample into the same number (>= 2) of fields most consistently."""
    best, best_score = None, 0.0
    candidates = ("::",) + _SEPARATORS
    for sep in candidates:
        if sep == "::":
            counts = [line.count("::") + 1 for line in lines]
        else:
            counts = [len(row) for row in _split(lines, sep)]
        mode, freq = Counter(counts).most_common(1)[0]
        score = freq / len(counts)
        if mode >= 2 and score > best_score:
            best, best_score = sep, score
    if best is None or best_score < 0.5:
        raise DataError("does not look like a ratings table (found no separator that splits every line "
                        "into columns)", source=display)
    return best


def _role_of_name(name: str) -> str | None:
    n = _norm(name)
    for role in _ROLES:
        if n in _KNOWN_NORM[role]:
            return role
    return None


def _detect_header(rows: list[list[str]]) -> bool:
    """A header row has known column names, or text cells where the rows below are numeric."""
    first, rest = rows[0], rows[1:]
    if len({_role_of_name(c) for c in first} - {None}) >= 2:
        return True
    if not rest:
        return any(_role_of_name(c) for c in first) or not any(_is_number(c) for c in first)
    for j, cell in enumerate(first):
        below = [r[j] for r in rest if j < len(r) and r[j].strip()]
        if cell.strip() and below and not _is_number(cell) and sum(map(_is_number, below)) >= 0.8 * len(below):
            return True
    # A wide matrix often leaves its top-left cell blank above the user ids, its other cells are item ids.
    others = [c.strip() for c in first[1:]]
    return not first[0].strip() and len(others) >= 3 and all(others) and len(set(others)) == len(others)


def _unique_names(raw: list[str]) -> list[str]:
    names: list[str] = []
    for j, name in enumerate(raw):
        name = name.strip() or f"column {j + 1}"
        base, k = name, 1
        while name in names:
            name, k = f"{base}.{k}", k + 1
        names.append(name)
    return names


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


def _utf8_scan(opener: Callable[[], pa.NativeFile], skip: int) -> _Encoding:
    """How the input (after its first `skip` bytes) decodes, a block at a time; it stops early once the text is
    plainly Latin-1."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="cf-latin1")
    enc, first, offset, lines, line_start = _Encoding(), None, 0, 1, 0
    with opener() as f:
        f.seek(skip)
        while (block := f.read_buffer(_BLOCK_BYTES)).size:
            # Plain ASCII needs no decoding, unless the previous block ended inside a multi-byte character.
            if np.frombuffer(block, np.uint8).max() >= 128 or decoder.getstate()[0]:
                pending = len(decoder.getstate()[0])
                _NOT_UTF8.count, _NOT_UTF8.first, _NOT_UTF8.offset = 0, None, offset - pending
                decoder.decode(block)
                enc.n_bad += _NOT_UTF8.count
                first = _NOT_UTF8.first if first is None else first
            if first is None:  # count lines up to the first bad byte only: no copy of the text before it
                data = bytes(block)
                lines, line_start = _where(data, len(data), lines, offset) if b"\n" in data else (lines, line_start)
            elif enc.n_bad > _MANY_BAD:
                break
            offset += block.size
        pending = len(decoder.getstate()[0])
        if pending and enc.n_bad <= _MANY_BAD:  # the input ends inside a multi-byte character
            enc.n_bad += pending
            first = offset - pending if first is None else first
        if first is None:
            return enc
        enc.mode = "latin-1" if enc.n_bad > _MANY_BAD else "mixed"
        f.seek(skip + line_start)
        head = bytes(f.read(first - line_start + 300))
    enc.line_no, start = _where(head, first - line_start, lines, 0)
    enc.line = head[start:].split(b"\n")[0]
    return enc


class _Rewritten(io.RawIOBase):
    """A binary stream of the input as the parser needs it: bytes that are not UTF-8 read as Latin-1 and
    re-encoded, "::" as one byte."""

    def __init__(self, raw: pa.NativeFile, encoding: str, multi: bool) -> None:
        super().__init__()
        self._raw, self._encoding, self._multi = raw, encoding, multi
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="cf-latin1")
        self._out = b""
        self._carry = b""  # a trailing ":" that may pair with the first byte of the next block
        self._eof = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._out) < size):
            block = bytes(self._raw.read(_BLOCK_BYTES))
            self._eof = not block
            if self._encoding == "latin-1":
                block = block.decode("latin-1").encode("utf-8")
            elif self._encoding == "mixed":
                block = self._decoder.decode(block, final=self._eof).encode("utf-8")
            data = self._carry + block
            self._carry = b""
            if self._multi:
                data = data.replace(b"::", _MULTI_SEP.encode())
                if data.endswith(b":") and not self._eof:
                    data, self._carry = data[:-1], b":"
            self._out += data
        size = len(self._out) if size < 0 else size
        out, self._out = self._out[:size], self._out[size:]
        return out


def _text_table(buf: Any, opener: Callable[[], pa.NativeFile], display: str, sep: str | None,
                header: bool | None, wide: bool | None, warnings: list[str]) -> _Table:
    """A delimited text table; `opener` gives a fresh stream of the same bytes as `buf` (a file is not read whole)."""
    if _looks_binary(bytes(buf[:_SAMPLE_BYTES])):
        raise DataError("does not look like a ratings table (it is a binary file)", source=display)
    skip = len(_BOM) if bytes(buf[:3]) == _BOM else 0
    enc = _utf8_scan(opener, skip)
    latin1 = enc.mode != "utf-8"
    if latin1:
        warnings.append(enc.warning(display))
    head = _head(buf, skip, display)
    lines = _sample_lines(enc.decode(head), len(buf) > skip + len(head))
    if not lines:
        raise DataError("the file is empty", source=display)
    sep = sep or _sniff_sep(lines, display)
    multi = sep == "::"
    if multi:
        lines = [line.replace("::", _MULTI_SEP) for line in lines]
        sep = _MULTI_SEP
    if len(sep) != 1:
        raise DataError(f"separator {sep!r} must be one character or '::'", source=display)
    rows = _split(lines, sep)
    widest = max(len(r) for r in rows)
    if widest > _MAX_COLUMNS:
        raise DataError(f"a line has {widest:,} columns; at most {_MAX_COLUMNS:,} can be read (a table of "
                        "ratings has 3 or 4, a user x item matrix one per item)", source=display)
    if header is None:
        header = True if wide else _detect_header(rows)
    n_cols = len(rows[0]) if header else Counter(len(r) for r in rows).most_common(1)[0][0]
    raw = [c.strip() for c in rows[0]] if header else [f"column {j + 1}" for j in range(n_cols)]
    names = _unique_names(raw)
    sample = rows[1:] if header else rows
    quote = '"' if sep in ",;" else False
    read_options = pacsv.ReadOptions(column_names=names, skip_rows=1 if header else 0)

    def convert_options(cols: list[str]) -> pacsv.ConvertOptions:
        # Everything as text: ids keep leading zeros, and bad cells are reported by us, not by pyarrow.
        return pacsv.ConvertOptions(column_types={c: pa.string() for c in cols}, include_columns=cols,
                                    null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True)

    @cache
    def text() -> Any:
        """The whole text as the parser sees it, in memory (the all-text read and the error paths only)."""
        data = buf[skip:]
        if latin1:
            data = enc.decode(bytes(data))
        return bytes(data).replace(b"::", _MULTI_SEP.encode()) if multi else data

    def stream(cols: list[str]) -> Iterator[pa.RecordBatch]:
        f = opener()
        f.seek(skip)
        options = pacsv.ReadOptions(column_names=names, skip_rows=1 if header else 0, block_size=_BLOCK_BYTES)
        # A ragged row or unparsable text raises pa.ArrowInvalid; the caller then falls back to `read`.
        return pacsv.open_csv(_Rewritten(f, enc.mode, multi) if latin1 or multi else f, read_options=options,
                              parse_options=pacsv.ParseOptions(delimiter=sep, quote_char=quote),
                              convert_options=convert_options(cols))

    def read(cols: list[str]) -> dict[str, pa.ChunkedArray]:
        ragged: list[Any] = []

        def on_invalid(row: Any) -> str:
            ragged.append(row)
            return "skip" if len(ragged) < 100 else "error"  # enough to report; stop a hopeless parse

        def parse(options: pacsv.ReadOptions) -> pa.Table:
            return pacsv.read_csv(
                pa.BufferReader(text()), read_options=options,
                parse_options=pacsv.ParseOptions(delimiter=sep, quote_char=quote, invalid_row_handler=on_invalid),
                convert_options=convert_options(cols),
            )

        try:
            try:
                table = parse(read_options)
            except pa.ArrowInvalid as exc:
                if "straddl" not in str(exc):
                    raise
                # A line longer than the parser's block: say which, or parse again with blocks that hold it.
                data, starts, _ = _lines(text())
                lengths = np.diff(np.r_[starts, len(data) + 1]) - 1
                longest = int(np.argmax(lengths))
                if lengths[longest] > _MAX_LINE_BYTES:
                    raise DataError(f"line {longest + 1} is {lengths[longest] / 2**20:,.0f} MB long; a ratings "
                                    "table has one rating per line", source=display, row=longest + 1) from None
                options = pacsv.ReadOptions(column_names=names, skip_rows=1 if header else 0,
                                            block_size=max(1 << 20, 2 * int(lengths[longest]) + 1024))
                ragged.clear()  # the first parse's findings would be counted twice
                table = parse(options)
        except pa.ArrowInvalid as exc:
            if not ragged:
                raise DataError(f"could not be read as a table: {exc}", source=display) from exc
        if ragged:
            first = ragged[0]
            line = _line_of_text(text(), first.text)
            raise DataError(
                f"expected {first.expected_columns} fields, found {first.actual_columns}: {first.text[:80]!r}"
                + (f" ({len(ragged)}{'+' if len(ragged) >= 100 else ''} rows have the wrong number of fields)"
                   if len(ragged) > 1 else ""), source=display, row=line)
        return {c: table.column(c) for c in cols}

    line_bytes = sum(len(line.encode("utf-8")) + 1 for line in lines) / len(lines)
    rows_hint = int(len(buf) / line_bytes * 1.1) + 1024  # a guess; the block reader grows past it if needed
    return _Table(names, raw, header, sample, read, lambda i: _data_line(text(), i, header), stream, rows_hint)


def _lines(buf: Any) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The text with "\\n" line endings, and each line's start offset and whether it is blank (error path only)."""
    data = bytes(buf).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    breaks = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    starts = np.r_[0, breaks + 1]
    ends = np.r_[breaks, len(data)]
    return data, starts, ends == starts


def _data_line(buf: Any, i: int, header: bool) -> int:
    """The editor line number of data row i; the parser skips blank lines, so count only the others."""
    _, _, blank = _lines(buf)
    nonblank = np.flatnonzero(~blank)
    k = i + int(header)
    return int(nonblank[k]) + 1 if k < len(nonblank) else k + 1


def _line_of_text(buf: Any, text: str) -> int | None:
    """The editor line number of the line that reads exactly `text`."""
    data, starts, _ = _lines(buf)
    m = re.search(rb"(?m)^" + re.escape(text.encode("utf-8")) + rb"$", data)
    return int(np.searchsorted(starts, m.start(), side="right")) if m else None


def _frame_table(frame: pd.DataFrame, header: bool, row_numbers: np.ndarray) -> _Table:
    raw = [_cell_str(c) for c in frame.columns]
    names = _unique_names(raw)
    frame = frame.set_axis(names, axis=1)
    sample = [[_cell_str(v) for v in row] for row in frame.head(_SAMPLE_LINES).itertuples(index=False)]

    def read(cols: list[str]) -> dict[str, pa.ChunkedArray]:
        return {c: _to_arrow(frame[c]) for c in cols}

    return _Table(names, raw, header, sample, read, lambda i: int(row_numbers[i]))


def _to_arrow(s: pd.Series) -> pa.ChunkedArray:
    try:
        arr = pa.array(s, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Mixed cells (numbers and text in one spreadsheet column) are read as text.
        arr = pa.array(s.map(_cell_str).where(s.notna()), type=pa.string(), from_pandas=True)
    if pa.types.is_null(arr.type):
        arr = arr.cast(pa.string())
    return pa.chunked_array([arr])


def _check_workbook(data: bytes, display: str) -> None:
    """Refuse a workbook that unpacks to more than a sheet of ratings could (a zip bomb reads for minutes)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            unpacked = sum(info.file_size for info in z.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise DataError(f"does not look like a ratings table (unreadable Excel file: {exc})", source=display) from exc
    if unpacked > _MAX_UNPACKED:
        raise DataError(f"the workbook unpacks to {unpacked / 2**20:,.0f} MB (from {len(data) / 2**20:,.1f} MB); "
                        f"a workbook over {_MAX_UNPACKED >> 20} MB unpacked is refused. Save the sheet as CSV and "
                        "upload that.", source=display)


def _excel_table(data: bytes, display: str, header: bool | None, wide: bool | None) -> _Table:
    _check_workbook(data, display)
    try:
        sheet = pd.read_excel(io.BytesIO(data), header=None, dtype=object, sheet_name=0)
    except Exception as exc:  # openpyxl raises many types for a corrupt workbook
        raise DataError(f"does not look like a ratings table (unreadable Excel file: {exc})",
                        source=display) from exc
    sheet = sheet.dropna(how="all").dropna(axis=1, how="all")
    if sheet.empty:
        raise DataError("the file is empty", source=display)
    rows = [[_cell_str(v) for v in row] for row in sheet.head(_SAMPLE_LINES).itertuples(index=False)]
    if header is None:
        header = True if wide else _detect_header(rows)
    numbers = sheet.index.to_numpy() + 1  # Excel numbers rows from 1
    if header:
        body = sheet.iloc[1:]
        body.columns = [_cell_str(v) for v in sheet.iloc[0]]
        return _frame_table(body.reset_index(drop=True), True, numbers[1:])
    sheet.columns = [f"column {j + 1}" for j in range(sheet.shape[1])]
    return _frame_table(sheet.reset_index(drop=True), False, numbers)


def _parquet_table(buf: Any, display: str) -> _Table:
    try:
        pfile = pq.ParquetFile(pa.BufferReader(buf))
    except Exception as exc:
        raise DataError(f"does not look like a ratings table (unreadable Parquet file: {exc})",
                        source=display) from exc
    names = [str(n) for n in pfile.schema_arrow.names]
    head = pfile.read_row_group(0).slice(0, _SAMPLE_LINES) if pfile.num_row_groups else None
    sample = ([[_cell_str(v) for v in row] for row in zip(*(head.column(j).to_pylist() for j in range(len(names))))]
              if head is not None else [])

    def read(cols: list[str]) -> dict[str, pa.ChunkedArray]:
        table = pfile.read(columns=cols)
        return {c: table.column(c) for c in cols}

    return _Table(names, names, True, sample, read, lambda i: i + 1)


# ------------------------------------------------------------------------------------------------ inference


def _find_column(names: list[str], wanted: str, display: str, role: str) -> str:
    if wanted in names:
        return wanted
    matches = [n for n in names if _norm(n) == _norm(wanted)]
    if matches:
        return matches[0]
    raise DataError(f"there is no column {wanted!r} for the {role}; the columns are: {_listed(names)}",
                    source=display)


def _listed(names: list[str], at_most: int = 12) -> str:
    """Column names for a message: all of a few, or the first ones and how many there are."""
    shown = ", ".join(repr(n) for n in names[:at_most])
    return shown if len(names) <= at_most else f"{shown}, ... ({len(names):,} in all)"


def _infer_roles(table: _Table, explicit: dict[str, str | None], display: str) -> dict[str, str]:
    """Map each role to a column: explicit arguments first, then names, or positions without a header."""
    roles = {r: _find_column(table.names, c, display, r) for r, c in explicit.items() if c}
    used = set(roles.values())
    free = [n for n in table.names if n not in used]
    if not table.header:
        for role in _ROLES:
            if role not in roles and free:
                roles[role] = free.pop(0)
        return roles
    for role in _ROLES:  # exact names first, so "rating" is never taken by a fuzzy "rating_date"
        if role not in roles:
            hit = next((n for n in free if _norm(n) in _KNOWN_NORM[role]), None)
            if hit:
                roles[role] = hit
                free.remove(hit)
    for role in _ROLES:
        if role not in roles:
            hit = next((n for n in free if any(k in _norm(n) for k in _FUZZY[role])), None)
            if hit:
                roles[role] = hit
                free.remove(hit)
    return roles


def _sample_cells(table: _Table, j: int) -> list[str]:
    """Column j's non-blank cells in the sample rows, stripped."""
    return [row[j].strip() for row in table.sample if j < len(row) and row[j].strip()]


def _seconds_like(numbers: list[float]) -> bool:
    """Whole numbers from 1e8 on (seconds since 1973): a timestamp column, or ids that big, never ratings."""
    return bool(numbers) and all(x >= 1e8 and x == int(x) for x in numbers)


def _by_content(table: _Table, roles: dict[str, str]) -> dict[str, str]:
    """Roles the names did not give, from the sample's values (a header in words the reader does not know: "a,b,c",
    "usuario,pelicula,puntuacion"): a column of whole seconds since 1973 or of dates is the timestamp; the rating is
    the one numeric column with fractions, else the numeric column with clearly the fewest distinct values, else the
    rightmost numeric column if two columns come before it (user, item, rating is the usual order); the first two
    columns left are the user and the item, in that order. Returns only what it inferred; nothing when the three required roles cannot all be had."""
    if not table.header or all(r in roles for r in ("user", "item", "rating")):
        return {}
    free = [j for j, n in enumerate(table.names) if n not in roles.values()]
    cells = {j: _sample_cells(table, j) for j in free}
    numbers = {j: [float(c) for c in v] for j, v in cells.items() if v and all(map(_is_number, v))}
    found: dict[str, str] = {}

    def take(role: str, j: int) -> None:
        found[role] = table.names[j]
        free.remove(j)

    missing = sum(r not in roles for r in ("user", "item", "rating"))
    if "timestamp" not in roles and len(free) > missing:  # a timestamp only beside the columns still needed
        stamp = next((j for j in reversed(free) if j in numbers and _seconds_like(numbers[j])),
                     None)  # the rightmost: ids may be big numbers too
        if stamp is None:
            stamp = next((j for j in reversed(free) if cells[j] and j not in numbers
                          and all(map(_DATE.match, cells[j]))), None)
        if stamp is not None:
            take("timestamp", stamp)
    if "rating" not in roles:
        candidates = [j for j in free if j in numbers]
        if not candidates:
            return {}
        fractions = [j for j in candidates if any(x != int(x) for x in numbers[j])]  # ids are whole numbers
        levels = sorted(candidates, key=lambda j: len(set(numbers[j])))
        if len(fractions) == 1:
            take("rating", fractions[0])
        elif len(levels) > 1 and 2 * len(set(numbers[levels[0]])) <= len(set(numbers[levels[1]])):
            take("rating", levels[0])  # a few levels of stars among many ids
        elif candidates[-1] >= 2:  # the usual order: two id columns (named or not), then the rating
            take("rating", candidates[-1])
        else:
            return {}
    for role in ("user", "item"):
        if role not in roles:
            if not free:
                return {}
            take(role, free[0])
    return found


def _require(roles: dict[str, str], table: _Table, display: str) -> None:
    for role in ("rating", "user", "item"):
        if role not in roles:
            found = _listed(table.names)
            if table.header:
                looks = ", ".join(KNOWN_NAMES[role][:8])
                raise DataError(f"no {role} column found; the columns are {found}; looked for names like "
                                f"{looks} (name the {role} column explicitly to choose one)", source=display)
            raise DataError(f"no {role} column found: the file has {len(table.names)} columns and no header, "
                            "so they are read as user, item, rating[, timestamp]", source=display)


def _looks_wide(table: _Table, roles: dict[str, str], explicit: dict[str, str | None]) -> bool:
    """A header of item ids over a grid of numbers, with no rating-like column."""
    if not table.header or "rating" in roles or any(explicit.values()) or len(table.names) < 3:
        return False
    others = table.raw_names[1:]
    if sum(_is_number(n) for n in others) >= 0.5 * len(others):
        return True
    # Column names that each name an item ("item0", "item1", ... or "movie 1", "movie 2", ...).
    if sum(any(k in _norm(n) for k in _FUZZY["item"]) for n in others) >= max(3, 0.5 * len(others)):
        return True
    cells = [c for row in table.sample for c in row[1:] if c.strip()]
    for j in range(1, len(table.names)):  # a column of seconds (or of ids that big) is not ratings: a long table
        column = _sample_cells(table, j)
        if column and all(map(_is_number, column)) and _seconds_like([float(c) for c in column]):
            return False
    return ("item" not in roles and len(others) >= 3 and bool(cells)
            and sum(map(_is_number, cells)) >= 0.9 * len(cells))


# ----------------------------------------------------------------------------------------------- validation


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


def _finish(cols: dict[str, Any], columns: dict[str, str], display: str,
            warnings: list[str], missing: float | None, n_rows_read: int, *, owned: bool = False) -> Ratings:
    """Drop sentinel ratings and duplicates, check there is enough data, and build the Ratings.

    `owned` says the arrays in `cols` belong to this read, so the frame may wrap them instead of copying them.
    """
    df = pd.DataFrame({r: cols[r] for r in _ROLES if r in cols}, copy=not owned)
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
    df = df.reset_index(drop=True)
    df["rating"] = df["rating"].astype(np.float32)
    if len(df) < 2:
        raise DataError(f"needs at least 2 ratings, found {len(df)}", source=display)
    for role in ("user", "item"):
        n = df[role].nunique()
        if n < 2:
            raise DataError(f"needs at least 2 different {role}s, found {n}", source=display,
                            column=columns.get(role))
    r = df["rating"].to_numpy()
    if r.min() == r.max():
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
                   warnings=warnings)


# ---------------------------------------------------------------------------------------- block-wise reading


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


def _keeps_text(text: pa.Array | pa.ChunkedArray) -> bool:
    """Whether ids must stay text: "007" stays "007" (ISBNs), and so does a sign."""
    return bool(pc.any(pc.or_(pc.and_(pc.starts_with(text, "0"), pc.greater(pc.utf8_length(text), 1)),
                              pc.starts_with(text, "+"))).as_py())


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


# --------------------------------------------------------------------------------------------------- reading


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
    present = ~np.isnan(values)
    if missing is not None:
        present &= values != missing
    _reject_huge(np.where(present, values, 0.0),
                 lambda k: (table.row_of(k // values.shape[1]), item_cols[k % values.shape[1]]), display)
    has_any = present.any(axis=1)
    user_text = cols[user_col]
    if pa.types.is_string(user_text.type):
        user_text = pc.utf8_trim_whitespace(user_text)
    no_user = _null_mask(user_text) & has_any
    if no_user.any():
        i, n = _first_bad(no_user)
        raise DataError(f"missing user id (blank) in a row with ratings{_how_many(n, 'have none')}",
                        source=display, row=table.row_of(i), column=user_col)
    rows = np.flatnonzero(has_any)
    users = _to_ids(cols[user_col].take(pa.array(rows)), "user", user_col, lambda i: table.row_of(int(rows[i])),
                    display)
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


def _open_table(source: Any, name: str | None, sep: str | None, header: bool | None, wide: bool | None,
                warnings: list[str]) -> tuple[str, _Table]:
    """Parse any supported input into a `_Table` (display name first), dispatching on its magic bytes."""
    if isinstance(source, pd.DataFrame):
        return name or "<dataframe>", _frame_table(source.reset_index(drop=True), True, np.arange(len(source)) + 1)
    display, buf = _open(source, name)
    if len(buf) == 0:
        raise DataError("the file is empty (0 bytes)", source=display)
    magic = bytes(buf[:4])
    if magic == b"PAR1":
        return display, _parquet_table(buf, display)
    if magic == b"PK\x03\x04":
        return display, _excel_table(bytes(buf), display, header, wide)
    if magic[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16, as Excel saves "Unicode text"
        try:
            buf = bytes(buf).decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"starts as UTF-16 text but is not ({exc.reason} at byte {exc.start:,})",
                            source=display) from None
        source = buf
    start = bytes(buf[:_SAMPLE_BYTES]).removeprefix(_BOM).lstrip()[:1]
    if start == b"<":
        raise DataError("looks like a web page or XML (it starts with '<'), not a table of ratings: save the table "
                        "as CSV", source=display)
    if start in (b"[", b"{"):
        return display, _json_table(buf, display)
    return display, _text_table(buf, _opener(source, buf), display, sep, header, wide, warnings)


def _json_table(buf: Any, display: str) -> _Table:
    """JSON records: an array of objects, or one object per line (as review dumps are)."""
    data = bytes(buf).removeprefix(_BOM)
    try:
        if data.lstrip()[:1] == b"[":
            frame = pd.DataFrame.from_records(json.loads(data))
        else:
            frame = pajson.read_json(pa.BufferReader(data)).to_pandas()
    except (ValueError, TypeError, pa.ArrowException) as exc:
        raise DataError(f"looks like JSON but could not be read as records ({str(exc).splitlines()[0][:120]}): "
                        "give one object per rating, such as {\"user\": 1, \"item\": 2, \"rating\": 4}",
                        source=display) from None
    if frame.empty or not len(frame.columns):
        raise DataError("the JSON holds no records", source=display)
    frame.columns = [str(c) for c in frame.columns]
    return _frame_table(frame, True, np.arange(len(frame)) + 1)


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
    guessed = _by_content(table, roles)
    if guessed:
        roles.update(guessed)
        said = ", ".join(f"{col!r} as the {role}" for role, col in guessed.items())
        unnamed = [r for r in ("user", "item", "rating") if r in guessed]
        warnings.append(f"No column is named like {' or '.join(('an ' if r == 'item' else 'a ') + r for r in unnamed)}"
                        f": read {said}, from their values. If that is wrong, choose the columns (on the Data page, "
                        f"or --user-col, --item-col, --rating-col, --time-col in the CLI)")
    _require(roles, table, display)
    if table.stream is not None:
        # Delimited text is converted a block at a time, so the file is never in memory as text. Any problem
        # falls through to the all-text read below, which finds and reports it exactly as before.
        try:
            cols, n_read, n_missing = _read_long(table, roles, missing)
        except _FullRead:
            pass
        else:
            if n_missing:
                warnings.append(_dropped_missing(n_missing, missing))
            return _finish(cols, dict(roles), display, warnings, None, n_read, owned=True)
    arrays = table.read([roles[r] for r in _ROLES if r in roles])
    n_read = len(arrays[roles["rating"]])
    if n_read == 0:
        raise DataError("the file has a header but no data rows", source=display)
    cols: dict[str, Any] = {
        "user": _to_ids(arrays[roles["user"]], "user", roles["user"], table.row_of, display),
        "item": _to_ids(arrays[roles["item"]], "item", roles["item"], table.row_of, display),
        "rating": _to_ratings(arrays[roles["rating"]], roles["rating"], table.row_of, display, warnings),
    }
    if "timestamp" in roles:
        try:
            cols["timestamp"] = _to_timestamps(arrays[roles["timestamp"]], roles["timestamp"], table.row_of, display)
        except DataError as exc:
            if table.header or explicit["timestamp"]:
                raise
            # A fourth unnamed column may be anything (a review text...); it only costs the timestamp.
            warnings.append(f"Ignored {roles['timestamp']} as a timestamp: {exc.reason}")
            del roles["timestamp"]
    return _finish(cols, dict(roles), display, warnings, missing, n_read)


# --------------------------------------------------------------------------------------------------- items

# MovieLens 100k's u.item: id | title | release date | video release date | IMDb URL | 19 genre flags.
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                 "War", "Western")
_ITEM_NAMES = {
    "title": {_norm(n) for n in ("title", "movie_title", "name", "book_title", "Book-Title", "product_title")},
    "year": {_norm(n) for n in ("year", "release_year", "Year-Of-Publication", "year_of_publication")},
    "genres": {_norm(n) for n in ("genres", "genre", "class", "categories", "category", "tags")},
}


def _u_item_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """item, title, year, genres from MovieLens 100k's u.item columns (genres from its 19 flag columns)."""
    flags = frame.iloc[:, 5:5 + len(ML100K_GENRES)].to_numpy() == "1"
    genres = pd.Series("", index=frame.index)
    for j, genre in enumerate(ML100K_GENRES):  # 19 columns, not rows
        genres = genres + np.where(flags[:, j], genre + "|", "")
    return pd.DataFrame({"item": frame.iloc[:, 0], "title": frame.iloc[:, 1],
                         "year": frame.iloc[:, 2].str.extract(r"(\d{4})\s*$")[0],
                         "genres": genres.str.rstrip("|")})


def read_items(source: Any, *, name: str | None = None) -> pd.DataFrame:
    """Read item metadata (items.csv, MovieLens movies.csv or u.item) as item, title, year, genres.

    `item` is int64 when every id is an integer, else str; `year` is nullable Int64 (taken from a
    "Title (1995)" suffix when there is no year column); `genres` is '|'-joined ("" when none). A missing title
    becomes str(item); repeated item ids keep their first row.
    """
    display, buf = _open(source, name)
    if len(buf) == 0:
        raise DataError("the file is empty (0 bytes)", source=display)
    data = bytes(buf)
    if data[:4] == b"PAR1":
        try:
            frame = pd.read_parquet(io.BytesIO(data)).astype("str").fillna("")
        except Exception as exc:  # pyarrow's errors have no common base: any of them means a damaged file
            raise DataError(f"could not be read as Parquet ({str(exc).splitlines()[0]})", source=display) from exc
        header = True
    elif data[:4] == b"PK\x03\x04":
        _check_workbook(data, display)
        try:
            frame = pd.read_excel(io.BytesIO(data), dtype=object).map(_cell_str)
        except Exception as exc:  # zipfile, openpyxl and XML errors alike
            raise DataError(f"could not be read as an Excel workbook ({str(exc).splitlines()[0]})",
                            source=display) from exc
        header = True
    else:
        if _looks_binary(data[:_SAMPLE_BYTES]):
            raise DataError("does not look like an items table (it is a binary file)", source=display)
        text = bytes(_decode_text(data, display, [])).decode("utf-8")
        encoded = text.encode("utf-8")
        lines = _sample_lines(encoded[:_SAMPLE_BYTES], len(encoded) > _SAMPLE_BYTES)
        if not lines:
            raise DataError("the file is empty", source=display)
        sep = _sniff_sep(lines, display)
        if sep == "::":  # MovieLens 1M's movies.dat: one byte for the parsers, as for ratings
            text, lines, sep = text.replace("::", _MULTI_SEP), [line.replace("::", _MULTI_SEP) for line in lines], _MULTI_SEP
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
        frame = frame.apply(lambda col: col.str.strip())
    row_base = 2 if header else 1
    names = list(frame.columns)
    if not header and frame.shape[1] >= 5 + len(ML100K_GENRES):
        out = _u_item_frame(frame)
        item_col = names[0]
    elif header:
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
        item_col = roles["item"]
    else:
        # Headerless and not u.item: positions as in movies.csv (id, title, genres) or items.csv (+ year).
        layout = {3: ("item", "title", "genres"), 4: ("item", "title", "year", "genres")}.get(
            frame.shape[1], ("item", "title")[:frame.shape[1]])
        out = pd.DataFrame({k: (frame.iloc[:, layout.index(k)] if k in layout else "")
                            for k in ("item", "title", "year", "genres")})
        item_col = names[0]
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


# ------------------------------------------------------------------------------------------------- describe


def ratings_per_user(ratings: Ratings) -> pd.Series:
    """Number of ratings per user, most active first (for long-tail plots)."""
    return ratings.df["user"].value_counts().rename("n_ratings").rename_axis("user")


def ratings_per_item(ratings: Ratings) -> pd.Series:
    """Number of ratings per item, most rated first (for long-tail plots)."""
    return ratings.df["item"].value_counts().rename("n_ratings").rename_axis("item")


def _count_stats(counts: pd.Series) -> dict[str, float]:
    q = counts.quantile([0.25, 0.5, 0.75, 0.9])
    return {"min": int(counts.min()), "p25": float(q[0.25]), "median": float(q[0.5]), "p75": float(q[0.75]),
            "p90": float(q[0.9]), "max": int(counts.max()), "mean": float(counts.mean())}


def summarize(ratings: Ratings) -> dict:
    """Headline numbers: sizes, sparsity, scale, mean, rating histogram and per-user/per-item count quantiles.

    The histogram maps each rating value to its count when there are at most 50 distinct values; continuous
    ratings are binned into 20 equal-width bins keyed by the bin's lower edge.
    """
    r = ratings.df["rating"].to_numpy()
    values, counts = np.unique(r, return_counts=True)
    if len(values) <= 50:
        hist = {float(v): int(c) for v, c in zip(values, counts)}
    else:
        c, edges = np.histogram(r, bins=20)
        hist = {float(e): int(n) for e, n in zip(edges[:-1], c)}
    return {
        "n_users": ratings.n_users,
        "n_items": ratings.n_items,
        "n_ratings": ratings.n_ratings,
        "sparsity": ratings.sparsity,
        "rating_scale": ratings.rating_scale,
        "mean_rating": float(r.mean(dtype=np.float64)),
        "rating_histogram": hist,
        "ratings_per_user": _count_stats(ratings_per_user(ratings)),
        "ratings_per_item": _count_stats(ratings_per_item(ratings)),
    }


def crosstab(ratings: Ratings, n_users: int = 15, n_items: int = 15) -> pd.DataFrame:
    """The most active users x the most rated items, NaN where unrated (the fast.ai lesson's cross-tab).

    Rows and columns are ordered by activity/popularity, ties by id.
    """
    def top(counts: pd.Series, n: int) -> list:
        frame = counts.rename("n").reset_index()
        key = frame.columns[0]
        return frame.sort_values(["n", key], ascending=[False, True])[key].head(n).tolist()

    users = top(ratings_per_user(ratings), n_users)
    items = top(ratings_per_item(ratings), n_items)
    df = ratings.df
    sub = df[df["user"].isin(users) & df["item"].isin(items)]
    table = sub.pivot(index="user", columns="item", values="rating")
    return table.reindex(index=users, columns=items)
