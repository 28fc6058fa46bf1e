"""Text that is not all UTF-8: one way to find out how an input decodes and to decode it, for ratings and items.

`_scan_text` strips a BOM, scans the input a block at a time and adds the one warning; `_Encoding.decoder` then
turns the input into UTF-8, whole (`_Encoding.decode`, an items file or a ratings file's error path) or block by
block as the parser reads it (`_Rewritten`). A few stray bytes are read as Latin-1 one by one ("mixed"), many mean
the whole text is Latin-1.
"""

from __future__ import annotations

import codecs
import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from .types import _BOM, _MULTI_SEP

_BLOCK_BYTES = 1 << 20  # delimited text is parsed and converted this many bytes at a time


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

    def decoder(self) -> Callable[[bytes, bool], bytes]:
        """A function from successive blocks of the input to UTF-8 bytes (`final` on the last block): the one
        decoding of this input, whether it is read whole or a block at a time."""
        if self.mode == "latin-1":
            return lambda block, final: block.decode("latin-1").encode("utf-8")
        if self.mode == "mixed":
            # Incremental, so a character split between two blocks decodes as it does in one piece.
            decoder = codecs.getincrementaldecoder("utf-8")(errors="cf-latin1")
            return lambda block, final: decoder.decode(block, final=final).encode("utf-8")
        return lambda block, final: block

    def decode(self, data: bytes) -> bytes:
        """`data` (whole lines) as UTF-8 bytes."""
        return self.decoder()(data, True)

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


def _scan_text(buf: Any, opener: Callable[[], pa.NativeFile], display: str,
               warnings: list[str]) -> tuple[int, _Encoding]:
    """How many bytes of BOM to skip, and how the rest decodes (with a warning in `warnings` when it is not all
    UTF-8): the one scan of a text input, ratings or items. `opener` gives fresh streams of the bytes of `buf`."""
    skip = len(_BOM) if bytes(buf[:3]) == _BOM else 0
    enc = _utf8_scan(opener, skip)
    if enc.mode != "utf-8":
        warnings.append(enc.warning(display))
    return skip, enc


def _decode_text(buf: Any, display: str, warnings: list[str]) -> str:
    """Text read whole (an items file): no BOM, bytes that are not UTF-8 read as Latin-1 (with a warning)."""
    data = bytes(buf)
    skip, enc = _scan_text(data, lambda: pa.BufferReader(data), display, warnings)
    return enc.decode(data[skip:]).decode("utf-8")


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

    def __init__(self, raw: pa.NativeFile, encoding: _Encoding, multi: bool) -> None:
        super().__init__()
        self._raw, self._decode, self._multi = raw, encoding.decoder(), multi
        self._out = b""
        self._carry = b""  # a trailing ":" that may pair with the first byte of the next block
        self._eof = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._out) < size):
            block = bytes(self._raw.read(_BLOCK_BYTES))
            self._eof = not block
            data = self._carry + self._decode(block, self._eof)
            self._carry = b""
            if self._multi:
                data = data.replace(b"::", _MULTI_SEP.encode())
                if data.endswith(b":") and not self._eof:
                    data, self._carry = data[:-1], b":"
            self._out += data
        size = len(self._out) if size < 0 else size
        out, self._out = self._out[:size], self._out[size:]
        return out
