"""The runs store: each trained run is a folder (config, metrics history, id mappings, weights) indexed in SQLite.

Weights and arrays are saved with safetensors (no pickle, so loading a shared run cannot run code). Every run has
an owner, and every call that reads or changes a run takes the `Principal` asking: only the owner (or an admin)
may list, rename, delete or share it. Others see a run only through a share link: a read-only capability (a random
256-bit token, separate from the run id) that its owner makes and can revoke, open to anyone who holds it or only
to signed-in people. A signed-in person who opened a link finds the run among "shared with you" while it lives.
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

from .access import PermissionDenied, Principal, require_owner
from .recommender import Recommender

RUN_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def new_id(n_bytes: int = 16) -> str:
    """A random URL-safe id (n_bytes of randomness) that starts with a letter or digit, so that no id is ever read
    as an option by a shell or as a formula by a spreadsheet ('-' and '=' start those)."""
    while True:
        token = secrets.token_urlsafe(n_bytes)
        if token[0].isalnum():
            return token


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
    owner: str = ""

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


class ShareError(PermissionDenied):
    """A share link that does not open (unknown, revoked, or it needs sign-in); the message is for the visitor."""


@dataclass
class Share:
    """A read-only link to one run."""

    token: str
    run_id: str
    owner: str
    created: float
    public: bool          # open to anyone with the link; else only to signed-in people
    revoked: float | None = None


COLUMNS = "id, name, created, model, dataset, metrics, config, owner"


def _info(row) -> RunInfo:
    return RunInfo(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), json.loads(row[6]), row[7] or "")


class RunStore:
    """Save, list, load and delete runs under `root` (created on demand)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = self.root / "runs.sqlite"
        with closing(self._connect()) as con, con:
            con.execute("""CREATE TABLE IF NOT EXISTS runs (
                id TEXT PRIMARY KEY, name TEXT, created REAL, model TEXT, dataset TEXT, metrics TEXT, config TEXT,
                owner TEXT NOT NULL DEFAULT '')""")
            if "owner" not in {r[1] for r in con.execute("PRAGMA table_info(runs)")}:  # an index from before owners
                con.execute("ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
            con.execute("""CREATE TABLE IF NOT EXISTS shares (
                token TEXT PRIMARY KEY, run_id TEXT NOT NULL, owner TEXT NOT NULL, created REAL NOT NULL,
                public INTEGER NOT NULL, revoked REAL)""")
            con.execute("""CREATE TABLE IF NOT EXISTS share_visits (
                token TEXT NOT NULL, viewer TEXT NOT NULL, seen REAL NOT NULL, PRIMARY KEY (token, viewer))""")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db, timeout=30)

    def _dir(self, run_id: str) -> Path:
        if not RUN_ID.match(run_id or ""):
            raise RunNotFound(f"no run with id {run_id!r}")
        return self.root / run_id

    def save(self, rec: Recommender, *, owner: str, name: str = "", dataset: str = "", metrics: dict | None = None,
             items: pd.DataFrame | None = None, valid: pd.DataFrame | None = None, train: pd.DataFrame | None = None) -> str:
        """Write the run's folder, then index it under its owner's name; returns its new id."""
        run_id = new_id(16)
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
            con.execute(f"INSERT INTO runs ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                        (run_id, name, time.time(), rec.config.model, dataset, json.dumps(metrics or {}),
                         json.dumps(meta["config"]), owner))
        return run_id

    # ------------------------------------------------------------ reading, with the principal asking
    def list(self, who: Principal) -> list[RunInfo]:
        """The runs `who` owns, newest first (an admin too: see `list_all` for everyone's)."""
        with closing(self._connect()) as con:
            rows = con.execute(f"SELECT {COLUMNS} FROM runs WHERE owner=? ORDER BY created DESC", (who.name,)).fetchall()
        return [_info(r) for r in rows] if who.signed_in else []

    def list_all(self, who: Principal) -> list[RunInfo]:
        """Every run of every owner, newest first: for admins only."""
        if not who.admin:
            raise PermissionDenied("Only an admin may list everyone's runs.")
        with closing(self._connect()) as con:
            rows = con.execute(f"SELECT {COLUMNS} FROM runs ORDER BY created DESC").fetchall()
        return [_info(r) for r in rows]

    def shared_with(self, who: Principal) -> list[RunInfo]:
        """Runs of others that `who` opened through a share link that still works, newest first."""
        if not who.signed_in:
            return []
        with closing(self._connect()) as con:
            rows = con.execute(f"""SELECT DISTINCT {', '.join('r.' + c.strip() for c in COLUMNS.split(','))}
                FROM share_visits v JOIN shares s ON s.token = v.token JOIN runs r ON r.id = s.run_id
                WHERE v.viewer=? AND s.revoked IS NULL AND r.owner != ? ORDER BY r.created DESC""",
                               (who.name, who.name)).fetchall()
        return [_info(r) for r in rows]

    def _row(self, run_id: str) -> RunInfo:
        self._dir(run_id)
        with closing(self._connect()) as con:
            r = con.execute(f"SELECT {COLUMNS} FROM runs WHERE id=?", (run_id,)).fetchone()
        if r is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        return _info(r)

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
        meta = json.loads((path / "meta.json").read_text())
        ids = json.loads((path / "ids.json").read_text())
        rec = Recommender.from_state(meta, load_file(str(path / "weights.safetensors")), ids, device)
        frames = {name: pd.read_parquet(path / f"{name}.parquet") if (path / f"{name}.parquet").exists() else None
                  for name in ("items", "valid", "train")}
        return Run(info, rec, frames["items"], frames["valid"], frames["train"])

    def history(self, run_id: str, who: Principal, share: str | None = None) -> dict:
        """The run's training history (losses and per-epoch metrics) without loading its weights."""
        self.info(run_id, who, share)
        return json.loads((self._dir(run_id) / "meta.json").read_text())["history"]

    # ------------------------------------------------------------ changing: owners and admins only
    def rename(self, run_id: str, name: str, who: Principal) -> None:
        """Give a run a new name."""
        require_owner(who, self._row(run_id).owner, "rename this run")
        with closing(self._connect()) as con, con:
            con.execute("UPDATE runs SET name=? WHERE id=?", (name.strip(), run_id))

    def delete(self, run_id: str, who: Principal) -> None:
        """Remove a run, its share links, from the index and the disk."""
        require_owner(who, self._row(run_id).owner, "delete this run")
        path = self._dir(run_id)
        with closing(self._connect()) as con, con:
            con.execute("DELETE FROM share_visits WHERE token IN (SELECT token FROM shares WHERE run_id=?)", (run_id,))
            con.execute("DELETE FROM shares WHERE run_id=?", (run_id,))
            con.execute("DELETE FROM runs WHERE id=?", (run_id,))
        shutil.rmtree(path, ignore_errors=True)

    # ------------------------------------------------------------ share links
    def share(self, run_id: str, who: Principal, public: bool = False) -> Share:
        """A new read-only link to a run (owner or admin only); `public`: no sign-in needed to open it."""
        info = self._row(run_id)
        require_owner(who, info.owner, "share this run")
        link = Share(new_id(32), run_id, info.owner, time.time(), bool(public))
        with closing(self._connect()) as con, con:
            con.execute("INSERT INTO shares VALUES (?,?,?,?,?,NULL)",
                        (link.token, run_id, info.owner, link.created, int(link.public)))
        return link

    def shares(self, run_id: str, who: Principal) -> list[Share]:
        """The links of a run that still work, newest first (owner or admin only)."""
        require_owner(who, self._row(run_id).owner, "see this run's share links")
        with closing(self._connect()) as con:
            rows = con.execute("SELECT token, run_id, owner, created, public, revoked FROM shares "
                               "WHERE run_id=? AND revoked IS NULL ORDER BY created DESC", (run_id,)).fetchall()
        return [Share(t, r, o, c, bool(p), v) for t, r, o, c, p, v in rows]

    def revoke(self, token: str, who: Principal) -> None:
        """End a share link: whoever opens it next is refused, and it leaves their "shared with you"."""
        link = self._share(token)
        if link is None:
            raise ShareError("There is no such share link.")
        require_owner(who, link.owner, "revoke this link")
        with closing(self._connect()) as con, con:
            con.execute("UPDATE shares SET revoked=? WHERE token=?", (time.time(), token))

    def open_share(self, token: str, who: Principal) -> Share:
        """`check_share`, and a signed-in visitor finds the run under "shared with you" from now on (call it once,
        when a visitor opens the link; every later check is `check_share`, which writes nothing)."""
        link = self.check_share(token, who)
        if who.signed_in and who.name != link.owner:
            with closing(self._connect()) as con, con:
                con.execute("INSERT OR REPLACE INTO share_visits VALUES (?,?,?)", (token, who.name, time.time()))
        return link

    def check_share(self, token: str, who: Principal) -> Share:
        """The link's share when `who` may open it.

        Raises ShareError with a message for the visitor: unknown, revoked, or sign-in needed.
        """
        link = self._share(token)
        if link is None or not self.exists(link.run_id):
            raise ShareError("This share link does not work: it is mistyped, or its run was deleted.")
        if link.revoked is not None:
            raise ShareError("This share link was revoked by the person who shared it. Ask them for a new one.")
        if not link.public and not who.signed_in:
            raise ShareError("This share link is for signed-in people: sign in to open it.")
        return link

    def _share(self, token: str) -> Share | None:
        if not isinstance(token, str) or not RUN_ID.match(token):
            return None
        with closing(self._connect()) as con:
            r = con.execute("SELECT token, run_id, owner, created, public, revoked FROM shares WHERE token=?",
                            (token,)).fetchone()
        return Share(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) if r else None

    def _visited(self, run_id: str, who: Principal) -> bool:
        with closing(self._connect()) as con:
            return con.execute("SELECT 1 FROM share_visits v JOIN shares s ON s.token = v.token "
                               "WHERE s.run_id=? AND v.viewer=? AND s.revoked IS NULL", (run_id, who.name)).fetchone() is not None


def _to_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Parquet needs one type per column: mixed-type id columns are saved as text."""
    frame = frame.copy()
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    frame.to_parquet(path, index=False)
