"""The runs store: each trained run is a folder (config, metrics history, id mappings, weights) indexed in SQLite.

Weights and arrays are saved with safetensors (no pickle, so loading a shared run cannot run code). Ids are
random and unguessable, so a share link (`?run=ID`) does not let anyone enumerate other runs.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from safetensors.torch import load_file, save_file

from .recommender import Recommender

RUN_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def default_root() -> Path:
    """$COLLAB_STUDIO_RUNS, else ./runs beside the working directory."""
    return Path(os.environ.get("COLLAB_STUDIO_RUNS", "runs"))


@dataclass
class RunInfo:
    """One row of the index."""

    id: str
    name: str
    created: float
    model: str
    dataset: str
    metrics: dict
    config: dict

    @property
    def created_text(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created))


@dataclass
class Run:
    """A loaded run: the model and what was saved beside it."""

    info: RunInfo
    recommender: Recommender
    items: pd.DataFrame | None      # item metadata (item, title, year, genres) if the run had it
    valid: pd.DataFrame | None      # the validation ratings, for predictions vs actuals
    train: pd.DataFrame | None      # the training ratings (user, item, rating), for context tables


class RunNotFound(KeyError):
    """No run with that id (or a malformed id)."""

    def __str__(self) -> str:
        return self.args[0]


class RunStore:
    """Save, list, load and delete runs under `root` (created on demand)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = self.root / "runs.sqlite"
        with closing(self._connect()) as con, con:
            con.execute("""CREATE TABLE IF NOT EXISTS runs (
                id TEXT PRIMARY KEY, name TEXT, created REAL, model TEXT, dataset TEXT, metrics TEXT, config TEXT)""")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db, timeout=30)

    def _dir(self, run_id: str) -> Path:
        if not RUN_ID.match(run_id or ""):
            raise RunNotFound(f"no run with id {run_id!r}")
        return self.root / run_id

    def save(self, rec: Recommender, *, name: str = "", dataset: str = "", metrics: dict | None = None,
             items: pd.DataFrame | None = None, valid: pd.DataFrame | None = None, train: pd.DataFrame | None = None) -> str:
        """Write the run's folder, then index it; returns its new id."""
        run_id = secrets.token_urlsafe(16)
        meta, tensors, ids = rec.to_state()
        meta.update(name=name, dataset=dataset, metrics=metrics or {})
        tmp = self.root / f".tmp-{run_id}"
        tmp.mkdir()
        (tmp / "meta.json").write_text(json.dumps(meta))
        (tmp / "ids.json").write_text(json.dumps(ids))
        save_file(tensors, str(tmp / "weights.safetensors"))
        for frame, fname in ((items, "items.parquet"), (valid, "valid.parquet"), (train, "train.parquet")):
            if frame is not None:
                _to_parquet(frame, tmp / fname)
        os.replace(tmp, self.root / run_id)  # the folder appears whole or not at all
        with closing(self._connect()) as con, con:
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?)",
                        (run_id, name, time.time(), rec.config.model, dataset, json.dumps(metrics or {}), json.dumps(meta["config"])))
        return run_id

    def list(self) -> list[RunInfo]:
        """All runs, newest first."""
        with closing(self._connect()) as con:
            rows = con.execute("SELECT id, name, created, model, dataset, metrics, config FROM runs ORDER BY created DESC").fetchall()
        return [RunInfo(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), json.loads(r[6])) for r in rows]

    def info(self, run_id: str) -> RunInfo:
        """The index row of one run."""
        self._dir(run_id)
        with closing(self._connect()) as con:
            r = con.execute("SELECT id, name, created, model, dataset, metrics, config FROM runs WHERE id=?", (run_id,)).fetchone()
        if r is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        return RunInfo(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), json.loads(r[6]))

    def exists(self, run_id: str) -> bool:
        try:
            self.info(run_id)
            return True
        except RunNotFound:
            return False

    def load(self, run_id: str, device: str = "auto") -> Run:
        """Load a run onto `device` (auto: a GPU when there is one)."""
        info, path = self.info(run_id), self._dir(run_id)
        meta = json.loads((path / "meta.json").read_text())
        ids = json.loads((path / "ids.json").read_text())
        rec = Recommender.from_state(meta, load_file(str(path / "weights.safetensors")), ids, device)
        frames = {name: pd.read_parquet(path / f"{name}.parquet") if (path / f"{name}.parquet").exists() else None
                  for name in ("items", "valid", "train")}
        return Run(info, rec, frames["items"], frames["valid"], frames["train"])

    def history(self, run_id: str) -> dict:
        """The run's training history (losses and per-epoch metrics) without loading its weights."""
        return json.loads((self._dir(run_id) / "meta.json").read_text())["history"]

    def delete(self, run_id: str) -> None:
        """Remove a run from the index and the disk."""
        path = self._dir(run_id)
        with closing(self._connect()) as con, con:
            con.execute("DELETE FROM runs WHERE id=?", (run_id,))
        shutil.rmtree(path, ignore_errors=True)


def _to_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Parquet needs one type per column: mixed-type id columns are saved as text."""
    frame = frame.copy()
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    frame.to_parquet(path, index=False)
