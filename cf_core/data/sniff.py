"""Sniffing delimited text: whether it is text at all, its separator, whether line 1 is a header, column names."""

from __future__ import annotations

import csv
import re
from collections import Counter
from typing import Any

import numpy as np

from .types import _KNOWN_NORM, _MAX_LINE_BYTES, _ROLES, _SAMPLE_BYTES, _SAMPLE_LINES, DataError, _norm

csv.field_size_limit(max(csv.field_size_limit(), _MAX_LINE_BYTES))  # the sniffer splits whole long lines
_SEPARATORS = ("\t", ",", ";", "|", " ")  # tried in this order after "::"; the first most consistent wins
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


def _looks_binary(sample: bytes) -> bool:
    if b"\x00" in sample:
        return True
    arr = np.frombuffer(sample, np.uint8)
    control = (arr < 32) & (arr != 9) & (arr != 10) & (arr != 13)
    return bool(control.mean() > 0.01) if len(arr) else False


def _is_number(cell: str) -> bool:
    return bool(_NUMBER.match(cell))


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
