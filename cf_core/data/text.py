"""The delimited-text source: CSV, TSV, "::", "|", ";" or " " separated, with or without a header.

A clean file is streamed to the block-wise reader (`_Table.stream`) and never held as text; the all-text read
(`_Table.read`) and the row numbers of messages hold the whole text, and run only for input with a problem.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from . import encoding
from .encoding import _Encoding, _Rewritten, _scan_text
from .sniff import _detect_header, _head, _looks_binary, _sample_lines, _sniff_sep, _split, _unique_names
from .types import _MAX_LINE_BYTES, _MULTI_SEP, _SAMPLE_BYTES, DataError, _Table

_MAX_COLUMNS = 100_000


def _convert_options(cols: list[str]) -> pacsv.ConvertOptions:
    # Everything as text: ids keep leading zeros, and bad cells are reported by us, not by pyarrow.
    return pacsv.ConvertOptions(column_types={c: pa.string() for c in cols}, include_columns=cols,
                                null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True)


class TextSource:
    """A delimited text table; `opener` gives a fresh stream of the same bytes as `buf` (a file is not read whole).

    `sep` and `header` are the caller's (None: sniffed); `table()` settles them, and reading warnings (an encoding
    that is not UTF-8) go to `warnings`.
    """

    def __init__(self, buf: Any, opener: Callable[[], pa.NativeFile], display: str, sep: str | None,
                 header: bool | None, wide: bool | None, warnings: list[str]) -> None:
        self.buf, self.opener, self.display = buf, opener, display
        self.sep, self.header, self.wide, self.warnings = sep, header, wide, warnings
        # What `table()` settles: the BOM's length, the encoding, "::" (read with _MULTI_SEP in its place), the
        # column names and the quote character.
        self.skip, self.enc, self.multi = 0, _Encoding(), False
        self.names: list[str] = []
        self.quote: str | bool = False

    def table(self) -> _Table:
        """The parsed table: names, header, sample rows, and ways to read columns whole or a block at a time."""
        if _looks_binary(bytes(self.buf[:_SAMPLE_BYTES])):
            raise DataError("does not look like a ratings table (it is a binary file)", source=self.display)
        self.skip, self.enc = _scan_text(self.buf, self.opener, self.display, self.warnings)
        lines = self._sample()
        rows = _split(lines, self.sep)
        widest = max(len(r) for r in rows)
        if widest > _MAX_COLUMNS:
            raise DataError(f"a line has {widest:,} columns; at most {_MAX_COLUMNS:,} can be read (a table of "
                            "ratings has 3 or 4, a user x item matrix one per item)", source=self.display)
        if self.header is None:
            self.header = True if self.wide else _detect_header(rows)
        n_cols = len(rows[0]) if self.header else Counter(len(r) for r in rows).most_common(1)[0][0]
        raw = [c.strip() for c in rows[0]] if self.header else [f"column {j + 1}" for j in range(n_cols)]
        self.names = _unique_names(raw)
        self.quote = '"' if self.sep in ",;" else False
        line_bytes = sum(len(line.encode("utf-8")) + 1 for line in lines) / len(lines)
        rows_hint = int(len(self.buf) / line_bytes * 1.1) + 1024  # a guess; the block reader grows past it if needed
        return _Table(self.names, raw, self.header, rows[1:] if self.header else rows, self._read, self._row_of,
                      self._stream, rows_hint)

    def _sample(self) -> list[str]:
        """The first lines as UTF-8 text, with the separator settled ("::" rewritten to one byte in both)."""
        head = _head(self.buf, self.skip, self.display)
        lines = _sample_lines(self.enc.decode(head), len(self.buf) > self.skip + len(head))
        if not lines:
            raise DataError("the file is empty", source=self.display)
        sep = self.sep or _sniff_sep(lines, self.display)
        self.multi = sep == "::"
        if self.multi:
            lines = [line.replace("::", _MULTI_SEP) for line in lines]
            sep = _MULTI_SEP
        if len(sep) != 1:
            raise DataError(f"separator {sep!r} must be one character or '::'", source=self.display)
        self.sep = sep
        return lines

    @cached_property
    def _text(self) -> Any:
        """The whole text as the parser sees it, in memory (the all-text read and the error paths only)."""
        data = self.buf[self.skip:]
        if self.enc.mode != "utf-8":
            data = self.enc.decode(bytes(data))
        return bytes(data).replace(b"::", _MULTI_SEP.encode()) if self.multi else data

    def _row_of(self, i: int) -> int:
        return _data_line(self._text, i, self.header)

    def _options(self, **block: int) -> pacsv.ReadOptions:
        return pacsv.ReadOptions(column_names=self.names, skip_rows=1 if self.header else 0, **block)

    def _stream(self, cols: list[str]) -> Iterator[pa.RecordBatch]:
        f = self.opener()
        f.seek(self.skip)
        rewrite = self.enc.mode != "utf-8" or self.multi
        # A ragged row or unparsable text raises pa.ArrowInvalid; the caller then falls back to `read`.
        return pacsv.open_csv(_Rewritten(f, self.enc, self.multi) if rewrite else f,
                              read_options=self._options(block_size=encoding._BLOCK_BYTES),
                              parse_options=pacsv.ParseOptions(delimiter=self.sep, quote_char=self.quote),
                              convert_options=_convert_options(cols))

    def _read(self, cols: list[str]) -> dict[str, pa.ChunkedArray]:
        ragged: list[Any] = []

        def on_invalid(row: Any) -> str:
            ragged.append(row)
            return "skip" if len(ragged) < 100 else "error"  # enough to report; stop a hopeless parse

        try:
            table = self._parse_whole(cols, on_invalid, ragged)
        except pa.ArrowInvalid as exc:
            if not ragged:
                raise DataError(f"could not be read as a table: {exc}", source=self.display) from exc
        if ragged:
            first = ragged[0]
            line = _line_of_text(self._text, first.text)
            raise DataError(
                f"expected {first.expected_columns} fields, found {first.actual_columns}: {first.text[:80]!r}"
                + (f" ({len(ragged)}{'+' if len(ragged) >= 100 else ''} rows have the wrong number of fields)"
                   if len(ragged) > 1 else ""), source=self.display, row=line)
        return {c: table.column(c) for c in cols}

    def _parse_whole(self, cols: list[str], on_invalid: Callable[[Any], str], ragged: list[Any]) -> pa.Table:
        try:
            return self._parse(self._options(), cols, on_invalid)
        except pa.ArrowInvalid as exc:
            if "straddl" not in str(exc):
                raise
        # A line longer than the parser's block: say which, or parse again with blocks that hold it.
        data, starts, _ = _lines(self._text)
        lengths = np.diff(np.r_[starts, len(data) + 1]) - 1
        longest = int(np.argmax(lengths))
        if lengths[longest] > _MAX_LINE_BYTES:
            raise DataError(f"line {longest + 1} is {lengths[longest] / 2**20:,.0f} MB long; a ratings "
                            "table has one rating per line", source=self.display, row=longest + 1) from None
        ragged.clear()  # the first parse's findings would be counted twice
        return self._parse(self._options(block_size=max(1 << 20, 2 * int(lengths[longest]) + 1024)), cols, on_invalid)

    def _parse(self, options: pacsv.ReadOptions, cols: list[str], on_invalid: Callable[[Any], str]) -> pa.Table:
        return pacsv.read_csv(
            pa.BufferReader(self._text), read_options=options,
            parse_options=pacsv.ParseOptions(delimiter=self.sep, quote_char=self.quote, invalid_row_handler=on_invalid),
            convert_options=_convert_options(cols),
        )


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
