"""Map raw user and item ids (ints or strings) to contiguous indices and back.

The mapping travels with a trained model, so an unknown id gets a clear error (or a documented fallback)
instead of a KeyError from deep inside an embedding lookup.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd


class UnknownIdError(KeyError):
    """A raw id that the model never saw in training."""

    def __init__(self, kind: str, ids: list[Any]):
        self.kind, self.ids = kind, ids
        shown = (", ".join(repr(i.item() if hasattr(i, "item") else i) for i in ids[:5])
                 + (" ..." if len(ids) > 5 else ""))
        super().__init__(f"unknown {kind} id{'s' if len(ids) > 1 else ''}: {shown} (not in the training data)")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class IdMap:
    """A sorted set of raw ids; `encode` gives each its index, `decode` gives the id back."""

    def __init__(self, ids: Iterable[Any], kind: str = "id"):
        values = pd.Index(pd.unique(np.asarray(list(ids) if not hasattr(ids, "__len__") else ids)))
        self.index = values.sort_values()
        self.kind = kind

    @classmethod
    def from_values(cls, values: Any, kind: str = "id") -> IdMap:
        """Build from a column that may repeat ids."""
        return cls(pd.unique(np.asarray(values)), kind)

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, raw: Any) -> bool:
        return self._coerce_scalar(raw) in self.index

    @property
    def ids(self) -> np.ndarray:
        """The raw ids in index order."""
        return self.index.to_numpy()

    def _coerce(self, raw: Any) -> np.ndarray:
        arr = np.asarray(raw)
        if self.index.dtype.kind in "iu" and arr.dtype.kind in "OUS":
            # Ids typed in a text box arrive as strings; match them to integer ids where they parse.
            num = pd.to_numeric(pd.Series(arr.ravel()), errors="coerce")
            if num.notna().all() and (num == num.round()).all():
                return num.astype("int64").to_numpy().reshape(arr.shape)
        if self.index.dtype == object and arr.dtype.kind in "iuf":
            return arr.astype(str)
        return arr

    def _coerce_scalar(self, raw: Any) -> Any:
        return self._coerce(np.asarray([raw]))[0]

    def encode(self, raw: Any, unknown: str = "error") -> np.ndarray:
        """Indices of raw ids. unknown='error' raises UnknownIdError, unknown='ignore' gives -1."""
        arr = self._coerce(raw)
        idx = self.index.get_indexer(arr.ravel()).reshape(arr.shape)
        if unknown == "error" and (idx < 0).any():
            bad = arr.ravel()[(idx < 0).ravel()]
            raise UnknownIdError(self.kind, list(pd.unique(bad)))
        return idx.astype(np.int64)

    def decode(self, idx: Any) -> np.ndarray:
        """Raw ids of indices."""
        return self.index.to_numpy()[np.asarray(idx, dtype=np.int64)]

    def to_list(self) -> list:
        """JSON-safe list of raw ids (numpy ints become Python ints)."""
        return self.index.tolist()

    @classmethod
    def from_list(cls, ids: list, kind: str = "id") -> IdMap:
        """Inverse of `to_list`."""
        return cls(np.asarray(ids, dtype=object if any(isinstance(i, str) for i in ids) else np.int64), kind)
