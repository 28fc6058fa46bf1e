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
"""
from __future__ import annotations

import io
import json
import os
import re
import secrets
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import fsspec
import pandas as pd
from fsspec.implementations.local import LocalFileSystem
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from .access import PermissionDenied, Principal, require_owner
from .db import Database, StoreDamaged, default_url
from .recommender import Recommender

__all__ = ["RunStore", "RunInfo", "Run", "RunNotFound", "RunDamaged", "Share", "ShareError", "StoreDamaged", "new_id",
           "default_root"]
RUN_FILES = ("meta.json", "ids.json", "weights.safetensors")
LEFTOVER_SECONDS = 6 * 3600  # a temporary folder this old is a dead save's, whatever its process id says

RUN_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def new_id(n_bytes: int = 16) -> str:
    """A random URL-safe id (n_bytes of randomness) that starts with a letter or digit, so that no id is ever read
    as an option by a shell or as a formula by a spreadsheet ('-' and '=' start those)."""
    while True:
        token = secrets.token_urlsafe(n_bytes)
        if token[0].isalnum():
            return token


def default_root() -> str:
    """$COLLAB_STUDIO_RUNS (a folder or an fsspec URL), else ./runs beside the working directory."""
    return os.environ.get("COLLAB_STUDIO_RUNS", "runs")


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


class RunDamaged(RunNotFound):
    """A run whose files are missing or unreadable: it can be deleted, not opened."""


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
                token TEXT NOT NULL, viewer TEXT NOT NULL, seen DOUBLE PRECISION NOT NULL, PRIMARY KEY (token, viewer))""")
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
             items: pd.DataFrame | None = None, valid: pd.DataFrame | None = None, train: pd.DataFrame | None = None) -> str:
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
            rows = con.execute(f"SELECT {COLUMNS} FROM runs WHERE owner=? ORDER BY created DESC", (who.name,)).fetchall()
        return [_info(r) for r in rows] if who.signed_in else []

    def list_all(self, who: Principal) -> list[RunInfo]:
        """Every run of every owner, newest first: for admins only."""
        if not who.admin:
            raise PermissionDenied("Only an admin may list everyone's runs.")
        with self._connect() as con:
            rows = con.execute(f"SELECT {COLUMNS} FROM runs ORDER BY created DESC").fetchall()
        return [_info(r) for r in rows]

    def shared_with(self, who: Principal) -> list[RunInfo]:
        """Runs of others that `who` opened through a share link that still works, newest first."""
        if not who.signed_in:
            return []
        with self._connect() as con:
            rows = con.execute(f"""SELECT DISTINCT {', '.join('r.' + c.strip() for c in COLUMNS.split(','))}
                FROM share_visits v JOIN shares s ON s.token = v.token JOIN runs r ON r.id = s.run_id
                WHERE v.viewer=? AND s.revoked IS NULL AND r.owner != ? ORDER BY r.created DESC""",
                               (who.name, who.name)).fetchall()
        return [_info(r) for r in rows]

    def _row(self, run_id: str) -> RunInfo:
        self._dir(run_id)
        with self._connect() as con:
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
        try:
            meta = json.loads(self.read_bytes(f"{path}/meta.json"))
            ids = json.loads(self.read_bytes(f"{path}/ids.json"))
            rec = Recommender.from_state(meta, load_tensors(self.read_bytes(f"{path}/weights.safetensors")), ids, device)
            frames = {name: self.read_frame(f"{path}/{name}.parquet") if self.fs.exists(f"{path}/{name}.parquet") else None
                      for name in ("items", "valid", "train")}
        except Exception as exc:
            raise RunDamaged(self._damage_text(run_id, exc)) from exc
        return Run(info, rec, frames["items"], frames["valid"], frames["train"])

    def _damage_text(self, run_id: str, exc: Exception | None = None) -> str:
        problem = self.problem(run_id) or (f"{type(exc).__name__}: {exc}" if exc else "unreadable")
        return f"This run's files are damaged ({problem}), so it cannot be opened. Its owner can delete it on the Runs page."

    def problem(self, run_id: str) -> str | None:
        """What is wrong with a run's files, in words, or None when they look whole (cheap: headers and sizes only)."""
        path = self._dir(run_id)
        try:
            for fname in RUN_FILES:
                if not self.fs.exists(f"{path}/{fname}"):
                    return f"{fname} is missing"
            json.loads(self.read_bytes(f"{path}/meta.json"))
            with self.fs.open(f"{path}/ids.json", "rb") as f:  # big (every id): its end shows a truncation
                f.seek(max(0, self.fs.size(f"{path}/ids.json") - 1))
                if f.read(1) != b"}":
                    return "ids.json is truncated"
            return _safetensors_problem(self.fs, f"{path}/weights.safetensors")
        except (ValueError, UnicodeDecodeError) as exc:
            return f"a file does not parse ({type(exc).__name__})"
        except OSError as exc:
            return f"a file cannot be read ({exc})"

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
                con.execute("INSERT INTO prefs VALUES (?,?,?) ON CONFLICT (owner, key) DO UPDATE SET value=excluded.value",
                            (who.name, key, value))

    def recall(self, who: Principal, key: str) -> str | None:
        """What `remember` kept for `who` (only theirs: the owner is the principal asking)."""
        if not who.signed_in:
            return None
        with self._connect() as con:
            row = con.execute("SELECT value FROM prefs WHERE owner=? AND key=?", (who.name, key)).fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------ upkeep: leftovers, checks, repair
    def clean_leftovers(self) -> list[str]:
        """Remove the temporary folders of saves that died (their process is gone, or they are hours old); returns
        what was removed. A save still being written by a live process of this machine is left alone."""
        if not self.local:
            return []
        removed, host, now = [], socket.gethostname(), time.time()
        for path in Path(self.base).glob(".tmp-*"):
            parts = path.name[len(".tmp-"):].split("~")  # run id ~ pid ~ host (none of them holds a "~")
            if len(parts) == 3 and parts[1].isdigit():
                # Another machine's save (a shared folder) may be alive: only its age says it is dead.
                alive = _pid_alive(int(parts[1])) if parts[2] == host else True
            else:
                alive = False  # a name from before the process was recorded: its save is long over
            if alive and now - path.stat().st_mtime < LEFTOVER_SECONDS:
                continue
            self.remove(str(path))
            removed.append(path.name)
        return removed

    def _folders(self) -> list[str]:
        """Names of the run folders (ids), whole or not."""
        out = []
        for entry in self.fs.ls(self.base, detail=True):
            name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if entry["type"] == "directory" and RUN_ID.match(name):
                out.append(name)
        return out

    def check(self, repair: bool = False) -> list[str]:
        """What is wrong with the index and the run folders, one line each (empty: all is well).

        With `repair`: a damaged index file is moved aside and rebuilt from the runs' meta.json files (their share
        links are lost: they were only in the index), whole folders missing from the index are indexed again,
        index rows without a folder are removed, leftovers of dead saves are removed. Damaged runs are reported
        (their owners see them as damaged on the Runs page and can delete them), never deleted here.
        """
        report = []
        problem = self.db.integrity_problem()
        if problem:
            report.append(f"the index {self.db.describe()} is damaged: {problem}")
            if repair and not self.db.postgres:
                aside = f"{self.db.url}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(self.db.url + suffix):
                        os.replace(self.db.url + suffix, aside + suffix)
                report.append(f"  moved it to {aside} and started a new index (the job queue and the list of "
                              "uploads start empty; the uploaded files stay in uploads/)")
                self.db = Database(self.db.url)
                self._create_tables()
                from .jobs import JobQueue
                from .uploads import UploadStore

                JobQueue(self), UploadStore(store=self)  # their tables, which running servers and workers expect
            elif not repair:
                return report + ["run with --repair to rebuild it from the run folders"]
            else:
                return report + ["a PostgreSQL index is repaired by PostgreSQL's own tools, not here"]
        else:
            self._create_tables()
        with self._connect() as con:
            indexed = {r[0] for r in con.execute("SELECT id FROM runs").fetchall()}
        folders = set(self._folders())
        for run_id in sorted(indexed - folders):
            report.append(f"run {run_id}: in the index but its folder is gone")
            if repair:
                with self._connect() as con:
                    con.execute("DELETE FROM shares WHERE run_id=?", (run_id,))
                    con.execute("DELETE FROM runs WHERE id=?", (run_id,))
                report.append("  removed it from the index")
        for run_id in sorted(folders - indexed):
            problem = self.problem(run_id)
            report.append(f"run {run_id}: a folder with no index row" + (f" ({problem})" if problem else ""))
            if repair and not problem:
                self._reindex(run_id)
                report.append("  indexed it again")
            elif repair:
                report.append("  left as it is: it is damaged; delete the folder by hand if nobody needs it")
        for run_id in sorted(indexed & folders):
            problem = self.problem(run_id)
            if problem:
                report.append(f"run {run_id}: damaged ({problem}); its owner can delete it on the Runs page")
        leftovers = [p for p in self.fs.ls(self.base, detail=False) if p.rstrip("/").rsplit("/", 1)[-1].startswith(".tmp-")]
        if leftovers:
            report.append(f"{len(leftovers)} temporary folder(s) of saves that were cut short")
            if repair:
                removed = self.clean_leftovers()
                report.append(f"  removed {len(removed)}")
        return report

    def _reindex(self, run_id: str) -> None:
        meta = json.loads(self.read_bytes(f"{self._dir(run_id)}/meta.json"))
        created = meta.get("created") or self.fs.modified(f"{self._dir(run_id)}/meta.json").timestamp()
        with self._connect() as con:
            con.execute(f"INSERT INTO runs ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                        (run_id, meta.get("name", ""), created, meta["config"].get("model", ""), meta.get("dataset", ""),
                         json.dumps(meta.get("metrics", {})), json.dumps(meta["config"]), meta.get("owner", "")))

    # ------------------------------------------------------------ share links
    def share(self, run_id: str, who: Principal, public: bool = False) -> Share:
        """A new read-only link to a run (owner or admin only); `public`: no sign-in needed to open it."""
        info = self._row(run_id)
        require_owner(who, info.owner, "share this run")
        link = Share(new_id(32), run_id, info.owner, time.time(), bool(public))
        with self._connect() as con:
            con.execute("INSERT INTO shares VALUES (?,?,?,?,?,NULL)",
                        (link.token, run_id, info.owner, link.created, int(link.public)))
        return link

    def shares(self, run_id: str, who: Principal) -> list[Share]:
        """The links of a run that still work, newest first (owner or admin only)."""
        require_owner(who, self._row(run_id).owner, "see this run's share links")
        with self._connect() as con:
            rows = con.execute("SELECT token, run_id, owner, created, public, revoked FROM shares "
                               "WHERE run_id=? AND revoked IS NULL ORDER BY created DESC", (run_id,)).fetchall()
        return [Share(t, r, o, c, bool(p), v) for t, r, o, c, p, v in rows]

    def revoke(self, token: str, who: Principal) -> None:
        """End a share link: whoever opens it next is refused, and it leaves their "shared with you"."""
        link = self._share(token)
        if link is None:
            raise ShareError("There is no such share link.")
        require_owner(who, link.owner, "revoke this link")
        with self._connect() as con:
            con.execute("UPDATE shares SET revoked=? WHERE token=?", (time.time(), token))

    def open_share(self, token: str, who: Principal) -> Share:
        """`check_share`, and a signed-in visitor finds the run under "shared with you" from now on (call it once,
        when a visitor opens the link; every later check is `check_share`, which writes nothing)."""
        link = self.check_share(token, who)
        if who.signed_in and who.name != link.owner:
            with self._connect() as con:
                con.execute("INSERT INTO share_visits VALUES (?,?,?) ON CONFLICT (token, viewer) DO UPDATE SET seen=excluded.seen",
                            (token, who.name, time.time()))
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
        with self._connect() as con:
            r = con.execute("SELECT token, run_id, owner, created, public, revoked FROM shares WHERE token=?",
                            (token,)).fetchone()
        return Share(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) if r else None

    def _visited(self, run_id: str, who: Principal) -> bool:
        with self._connect() as con:
            return con.execute("SELECT 1 FROM share_visits v JOIN shares s ON s.token = v.token "
                               "WHERE s.run_id=? AND v.viewer=? AND s.revoked IS NULL", (run_id, who.name)).fetchone() is not None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _safetensors_problem(fs, path: str) -> str | None:
    """A safetensors file is an 8-byte header length, a JSON header, then the data: its size must match the header's
    last offset (a truncated copy, a save cut short)."""
    size = fs.size(path)
    with fs.open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return "weights.safetensors is empty or truncated"
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            return "weights.safetensors is truncated"
        header = json.loads(f.read(n))
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if size != 8 + n + end:
        return f"weights.safetensors is truncated ({size:,} of {8 + n + end:,} bytes)"
    return None


def _to_parquet(frame: pd.DataFrame, path) -> None:
    """Parquet needs one type per column: mixed-type id columns are saved as text."""
    frame = frame.copy()
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    frame.to_parquet(path, index=False)
