"""Where a table comes from: a path, bytes or upload opened once, and one `Source` per format that parses it.

Each source's `table()` returns a `_Table` (column names, sample rows, readers); `_open_table` picks the source by
the input's first bytes: Parquet, Excel, JSON records, a DataFrame, or delimited text (`text.TextSource`).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from .sniff import _detect_header, _unique_names
from .text import TextSource
from .types import _BOM, _SAMPLE_BYTES, _SAMPLE_LINES, DataError, _Table

_MAX_UNPACKED = 512 << 20  # Excel's own limit, 1,048,576 rows of a few columns, unpacks to a few hundred MB


class Source(Protocol):
    """One input format: `table()` parses it into a `_Table`, or raises DataError."""

    def table(self) -> _Table: ...


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


def _cell_str(value: Any) -> str:
    """Render a spreadsheet cell as text the way a person reads it (27.0 -> "27", None -> "")."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _to_arrow(s: pd.Series) -> pa.ChunkedArray:
    try:
        arr = pa.array(s, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Mixed cells (numbers and text in one spreadsheet column) are read as text.
        arr = pa.array(s.map(_cell_str).where(s.notna()), type=pa.string(), from_pandas=True)
    if pa.types.is_null(arr.type):
        arr = arr.cast(pa.string())
    return pa.chunked_array([arr])


class FrameSource:
    """A pandas DataFrame (given as such, or a sheet or JSON read into one); `row_numbers` are the rows people see."""

    def __init__(self, frame: pd.DataFrame, header: bool, row_numbers: np.ndarray) -> None:
        self.frame, self.header, self.row_numbers = frame, header, row_numbers

    def table(self) -> _Table:
        raw = [_cell_str(c) for c in self.frame.columns]
        names = _unique_names(raw)
        frame = self.frame.set_axis(names, axis=1)
        sample = [[_cell_str(v) for v in row] for row in frame.head(_SAMPLE_LINES).itertuples(index=False)]

        def read(cols: list[str]) -> dict[str, pa.ChunkedArray]:
            return {c: _to_arrow(frame[c]) for c in cols}

        return _Table(names, raw, self.header, sample, read, lambda i: int(self.row_numbers[i]))


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


class ExcelSource:
    """The first sheet of an Excel workbook, its blank rows and columns dropped."""

    def __init__(self, data: bytes, display: str, header: bool | None, wide: bool | None) -> None:
        self.data, self.display, self.header, self.wide = data, display, header, wide

    def table(self) -> _Table:
        _check_workbook(self.data, self.display)
        try:
            sheet = pd.read_excel(io.BytesIO(self.data), header=None, dtype=object, sheet_name=0)
        except Exception as exc:  # openpyxl raises many types for a corrupt workbook
            raise DataError(f"does not look like a ratings table (unreadable Excel file: {exc})",
                            source=self.display) from exc
        sheet = sheet.dropna(how="all").dropna(axis=1, how="all")
        if sheet.empty:
            raise DataError("the file is empty", source=self.display)
        rows = [[_cell_str(v) for v in row] for row in sheet.head(_SAMPLE_LINES).itertuples(index=False)]
        header = self.header
        if header is None:
            header = True if self.wide else _detect_header(rows)
        numbers = sheet.index.to_numpy() + 1  # Excel numbers rows from 1
        if header:
            body = sheet.iloc[1:]
            body.columns = [_cell_str(v) for v in sheet.iloc[0]]
            return FrameSource(body.reset_index(drop=True), True, numbers[1:]).table()
        sheet.columns = [f"column {j + 1}" for j in range(sheet.shape[1])]
        return FrameSource(sheet.reset_index(drop=True), False, numbers).table()


class ParquetSource:
    """A Parquet file; only the columns asked for are ever read."""

    def __init__(self, buf: Any, display: str) -> None:
        self.buf, self.display = buf, display

    def table(self) -> _Table:
        try:
            pfile = pq.ParquetFile(pa.BufferReader(self.buf))
        except Exception as exc:
            raise DataError(f"does not look like a ratings table (unreadable Parquet file: {exc})",
                            source=self.display) from exc
        names = [str(n) for n in pfile.schema_arrow.names]
        head = pfile.read_row_group(0).slice(0, _SAMPLE_LINES) if pfile.num_row_groups else None
        columns = [head.column(j).to_pylist() for j in range(len(names))] if head is not None else []
        sample = [[_cell_str(v) for v in row] for row in zip(*columns, strict=True)]

        def read(cols: list[str]) -> dict[str, pa.ChunkedArray]:
            table = pfile.read(columns=cols)
            return {c: table.column(c) for c in cols}

        return _Table(names, names, True, sample, read, lambda i: i + 1)


class JsonSource:
    """JSON records: an array of objects, or one object per line (as review dumps are)."""

    def __init__(self, buf: Any, display: str) -> None:
        self.buf, self.display = buf, display

    def table(self) -> _Table:
        data = bytes(self.buf).removeprefix(_BOM)
        try:
            if data.lstrip()[:1] == b"[":
                frame = pd.DataFrame.from_records(json.loads(data))
            else:
                frame = pajson.read_json(pa.BufferReader(data)).to_pandas()
        except (ValueError, TypeError, pa.ArrowException) as exc:
            raise DataError(f"looks like JSON but could not be read as records ({str(exc).splitlines()[0][:120]}): "
                            "give one object per rating, such as {\"user\": 1, \"item\": 2, \"rating\": 4}",
                            source=self.display) from None
        if frame.empty or not len(frame.columns):
            raise DataError("the JSON holds no records", source=self.display)
        frame.columns = [str(c) for c in frame.columns]
        return FrameSource(frame, True, np.arange(len(frame)) + 1).table()


def _open_table(source: Any, name: str | None, sep: str | None, header: bool | None, wide: bool | None,
                warnings: list[str]) -> tuple[str, _Table]:
    """Parse any supported input into a `_Table` (display name first), dispatching on its magic bytes."""
    if isinstance(source, pd.DataFrame):
        return name or "<dataframe>", FrameSource(source.reset_index(drop=True), True,
                                                  np.arange(len(source)) + 1).table()
    display, buf = _open(source, name)
    if len(buf) == 0:
        raise DataError("the file is empty (0 bytes)", source=display)
    return display, _source(source, buf, display, sep, header, wide, warnings).table()


def _source(source: Any, buf: Any, display: str, sep: str | None, header: bool | None, wide: bool | None,
            warnings: list[str]) -> Source:
    """The source for an opened input, by its first bytes."""
    magic = bytes(buf[:4])
    if magic == b"PAR1":
        return ParquetSource(buf, display)
    if magic == b"PK\x03\x04":
        return ExcelSource(bytes(buf), display, header, wide)
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
        return JsonSource(buf, display)
    return TextSource(buf, _opener(source, buf), display, sep, header, wide, warnings)
