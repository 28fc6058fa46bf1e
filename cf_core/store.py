"""The runs store: each trained run is a folder (config, metrics history, id mappings, weights) indexed in a database.

The folders live in a local directory or at any fsspec URL (s3://, gs://, ...) named by $COLLAB_STUDIO_RUNS; the
index is SQLite in WAL mode beside them, or the PostgreSQL database that $COLLAB_STUDIO_DB names (cf_core.db). A run
is written whole before its index row appears, and only indexed runs are listed, so a save cut short (a kill, a full
disk) never shows a half-written run; what such a save leaves behind is cleaned up. Every run's meta.json holds
what its index row holds, so `check(repair=True)` can rebuild a damaged index from the folders. A run whose files
are damaged is listed with what is wrong (`problem`) and can be deleted; loading it raises `RunDamaged`.

Weights and arrays are saved with safetensors (no pickle, so loading a shared run cannot run code). Every run has
an owner, and every call that reads or changes a run takes the `Principal` asking: only the owner (or an admin)
may list, rename, delete or share it. Others see a run only through a share link: a read-only capability (a random
256-bit token, separate from the run id) that its owner makes and can revoke, open to anyone who holds it or only
to signed-in people. A signed-in person who opened a link finds the run among "shared with you" while it lives.

`RunStore` is this module's runs, files and remembered settings, with the share links from cf_core.shares and the
checks and repairs from cf_core.integrity mixed in; what a run is (its id, `RunInfo`, `Run`, the errors) is
cf_core.runs. Every name is importable from here.
"""
from __future__ import annotations

import io
import json
import os
import socket
import time
from pathlib import Path

import fsspec
import pandas as pd
from fsspec.implementations.local import LocalFileSystem
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from .access import PermissionDenied, Principal, require_owner
from .db import Database, StoreDamaged, default_url
from .integrity import Integrity
from .recommender import Recommender
from .runs import COLUMNS, RUN_ID, Run, RunDamaged, RunInfo, RunNotFound, info_from_row, new_id
from .shares import Share, ShareError, ShareLinks

__all__ = ["RunStore", "RunInfo", "Run", "RunNotFound", "RunDamaged", "Share", "ShareError", "StoreDamaged", "new_id",
           "default_root"]


def default_root() -> str:
    """$COLLAB_STUDIO_RUNS (a folder or an fsspec URL), else ./runs beside the working directory."""
    return os.environ.get("COLLAB_STUDIO_RUNS", "runs")


class RunStore(ShareLinks, Integrity):
    """Save, list, load and delete runs under `root` (a folder or an fsspec URL, created on demand), indexed in `db`
    (a SQLite path or a PostgreSQL URL; default: $COLLAB_STUDIO_DB, else runs.sqlite in a local root)."""

    def __init__(self, root: str | Path | None = None, db: str | Path | Database | None = None,
                 create_tables: bool = True):
        """`create_tables=False`: touch nothing in the index (to check a damaged one, which refuses writes)."""
        self.root = str(root) if root is not None else default_root()
        self.fs, self.base = fsspec.core.url_to_fs(self.root)
        self.local = isinstance(self.fs, LocalFileSystem)
        if self.local:
            self.root = Path(self.base)
        self.fs.makedirs(self.base, exist_ok=True)
        self.db = db if isinstance(db, Database) else Database(db or default_url(self.root))
        if create_tables:
            self._create_tables()

    def _create_tables(self) -> None:
        with self.db.connect() as con:
            con.execute("""CREATE TABLE IF NOT EXISTS runs (
                id TEXT PRIMARY KEY, name TEXT, created DOUBLE PRECISION, model TEXT, dataset TEXT, metrics TEXT,
                config TEXT, owner TEXT NOT NULL DEFAULT '')""")
            con.execute("""CREATE TABLE IF NOT EXISTS shares (
                token TEXT PRIMARY KEY, run_id TEXT NOT NULL, owner TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
                public INTEGER NOT NULL, revoked DOUBLE PRECISION)""")
            con.execute("""CREATE TABLE IF NOT EXISTS share_visits (
                token TEXT NOT NULL, viewer TEXT NOT NULL, seen DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (token, viewer))""")
            con.execute("""CREATE TABLE IF NOT EXISTS prefs (
                owner TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (owner, key))""")
        if "owner" not in self.db.columns("runs"):  # an index from before owners
            with self.db.connect() as con:
                con.execute("ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT ''")

    def _connect(self):
        return self.db.connect()

    def _path(self, *parts: str) -> str:
        return "/".join([self.base.rstrip("/"), *parts])

    def _dir(self, run_id: str) -> str:
        if not RUN_ID.match(run_id or ""):
            raise RunNotFound(f"no run with id {run_id!r}")
        return self._path(run_id)

    # ------------------------------------------------------------ files
    def write_bytes(self, path: str, data: bytes) -> None:
        with self.fs.open(path, "wb") as f:
            f.write(data)

    def read_bytes(self, path: str) -> bytes:
        with self.fs.open(path, "rb") as f:
            return f.read()

    def write_frame(self, frame: pd.DataFrame, path: str) -> None:
        buf = io.BytesIO()
        _to_parquet(frame, buf)
        self.write_bytes(path, buf.getvalue())

    def read_frame(self, path: str) -> pd.DataFrame:
        with self.fs.open(path, "rb") as f:
            return pd.read_parquet(f)

    def remove(self, path: str) -> None:
        """Remove a file or folder; nothing there is not an error."""
        try:
            self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass

    def save(self, rec: Recommender, *, owner: str, name: str = "", dataset: str = "", metrics: dict | None = None,
             items: pd.DataFrame | None = None, valid: pd.DataFrame | None = None,
             train: pd.DataFrame | None = None) -> str:
        """Write the run's folder, then index it under its owner's name; returns its new id.

        A save that fails (a full disk, a lost connection) removes whatever it wrote and raises: no folder without an
        index row, no index row without a folder. A save killed mid-way leaves a temporary folder that
        `clean_leftovers` removes."""
        run_id, created = new_id(16), time.time()
        meta, tensors, ids = rec.to_state()
        meta.update(name=name, dataset=dataset, metrics=metrics or {}, owner=owner, created=created)
        final = self._dir(run_id)
        # A local folder is written aside and renamed (it appears whole or not at all); an object store has no
        # rename, so its files are written in place, and the index row that follows is what makes the run exist.
        target = self._path(f".tmp-{run_id}~{os.getpid()}~{socket.gethostname()}") if self.local else final
        try:
            self.fs.makedirs(target, exist_ok=True)
            self.write_bytes(f"{target}/ids.json", json.dumps(ids).encode())
            self.write_bytes(f"{target}/weights.safetensors", save_tensors(tensors))
            for frame, fname in ((items, "items.parquet"), (valid, "valid.parquet"), (train, "train.parquet")):
                if frame is not None:
                    self.write_frame(frame, f"{target}/{fname}")
            self.write_bytes(f"{target}/meta.json", json.dumps(meta).encode())  # last: a folder with it is whole
            if self.local:
                os.replace(target, final)
        except BaseException:
            self.remove(target)
            raise
        try:
            with self._connect() as con:
                con.execute(f"INSERT INTO runs ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                            (run_id, name, created, rec.config.model, dataset, json.dumps(metrics or {}),
                             json.dumps(meta["config"]), owner))
        except BaseException:
            self.remove(final)
            raise
        return run_id

    # ------------------------------------------------------------ reading, with the principal asking
    def list(self, who: Principal) -> list[RunInfo]:
        """The runs `who` owns, newest first (an admin too: see `list_all` for everyone's)."""
        with self._connect() as con:
            rows = con.execute(f"SELECT {COLUMNS} FROM runs WHERE owner=? ORDER BY created DESC",
                               (who.name,)).fetchall()
        return [info_from_row(r) for r in rows] if who.signed_in else []

    def list_all(self, who: Principal) -> list[RunInfo]:
        """Every run of every owner, newest first: for admins only."""
        if not who.admin:
            raise PermissionDenied("Only an admin may list everyone's runs.")
        with self._connect() as con:
            rows = con.execute(f"SELECT {COLUMNS} FROM runs ORDER BY created DESC").fetchall()
        return [info_from_row(r) for r in rows]

    def _row(self, run_id: str) -> RunInfo:
        self._dir(run_id)
        with self._connect() as con:
            r = con.execute(f"SELECT {COLUMNS} FROM runs WHERE id=?", (run_id,)).fetchone()
        if r is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        return info_from_row(r)

    def info(self, run_id: str, who: Principal, share: str | None = None) -> RunInfo:
        """The index row of a run `who` may see (its owner, an admin, or through a share link).

        Raises RunNotFound for an unknown id, PermissionDenied (ShareError for a link) when `who` may not see it.
        """
        info = self._row(run_id)
        if who.owns(info.owner) or (who.signed_in and self._visited(run_id, who)):
            return info
        if share is not None and self.check_share(share, who).run_id == run_id:
            return info
        raise PermissionDenied("This run is not yours and was not shared with you.")

    def exists(self, run_id: str) -> bool:
        try:
            self._row(run_id)
            return True
        except RunNotFound:
            return False

    def load(self, run_id: str, who: Principal, share: str | None = None, device: str = "auto") -> Run:
        """Load a run `who` may see onto `device` (auto: a GPU when there is one)."""
        info, path = self.info(run_id, who, share), self._dir(run_id)
        try:
            meta = json.loads(self.read_bytes(f"{path}/meta.json"))
            ids = json.loads(self.read_bytes(f"{path}/ids.json"))
            tensors = load_tensors(self.read_bytes(f"{path}/weights.safetensors"))
            rec = Recommender.from_state(meta, tensors, ids, device)
            frames = {name: self.read_frame(f"{path}/{name}.parquet") if self.fs.exists(f"{path}/{name}.parquet")
                      else None for name in ("items", "valid", "train")}
        except Exception as exc:
            raise RunDamaged(self._damage_text(run_id, exc)) from exc
        return Run(info, rec, frames["items"], frames["valid"], frames["train"])

    def _damage_text(self, run_id: str, exc: Exception | None = None) -> str:
        problem = self.problem(run_id) or (f"{type(exc).__name__}: {exc}" if exc else "unreadable")
        return (f"This run's files are damaged ({problem}), so it cannot be opened. Its owner can delete it on the "
                "Runs page.")

    def history(self, run_id: str, who: Principal, share: str | None = None) -> dict:
        """The run's training history (losses and per-epoch metrics) without loading its weights."""
        self.info(run_id, who, share)
        try:
            return json.loads(self.read_bytes(f"{self._dir(run_id)}/meta.json"))["history"]
        except Exception as exc:
            raise RunDamaged(self._damage_text(run_id, exc)) from exc

    # ------------------------------------------------------------ changing: owners and admins only
    def rename(self, run_id: str, name: str, who: Principal) -> None:
        """Give a run a new name."""
        require_owner(who, self._row(run_id).owner, "rename this run")
        with self._connect() as con:
            con.execute("UPDATE runs SET name=? WHERE id=?", (name.strip(), run_id))

    def delete(self, run_id: str, who: Principal) -> None:
        """Remove a run, its share links, from the index and the disk."""
        require_owner(who, self._row(run_id).owner, "delete this run")
        path = self._dir(run_id)
        with self._connect() as con:
            con.execute("DELETE FROM share_visits WHERE token IN (SELECT token FROM shares WHERE run_id=?)", (run_id,))
            con.execute("DELETE FROM shares WHERE run_id=?", (run_id,))
            con.execute("DELETE FROM runs WHERE id=?", (run_id,))
        self.remove(path)

    # ------------------------------------------------------------ what a person had open
    def remember(self, who: Principal, key: str, value: str | None) -> None:
        """Keep one of `who`'s choices (their dataset, their current run) for their next visit; None forgets it."""
        if not who.signed_in:
            return
        with self._connect() as con:
            if value is None:
                con.execute("DELETE FROM prefs WHERE owner=? AND key=?", (who.name, key))
            else:
                con.execute("INSERT INTO prefs VALUES (?,?,?) "
                            "ON CONFLICT (owner, key) DO UPDATE SET value=excluded.value", (who.name, key, value))

    def recall(self, who: Principal, key: str) -> str | None:
        """What `remember` kept for `who` (only theirs: the owner is the principal asking)."""
        if not who.signed_in:
            return None
        with self._connect() as con:
            row = con.execute("SELECT value FROM prefs WHERE owner=? AND key=?", (who.name, key)).fetchone()
        return row[0] if row else None


def _to_parquet(frame: pd.DataFrame, path) -> None:
    """Parquet needs one type per column: mixed-type id columns are saved as text."""
    frame = frame.copy()
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    frame.to_parquet(path, index=False)
