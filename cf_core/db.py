"""The database behind the runs index, the job queue, the uploads and the user list: one interface, two engines.

- SQLite (the default): one file, embedded, nothing to install. It is opened in WAL mode, so readers (every open
  page) never wait for the writer (a worker recording progress), and a busy timeout instead of "database is locked".
- PostgreSQL, when `COLLAB_STUDIO_DB` is a ``postgresql://`` URL: several web replicas and workers on several
  machines then share one index and one queue.

SQL is written once, with ``?`` placeholders and the subset both engines speak (``ON CONFLICT``, ``RETURNING``).
A damaged SQLite file raises `StoreDamaged`, whose message says in plain words what is wrong and how to repair it.
"""
from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# SQLite's messages for a file that is not (or no longer) a database; "locked" or "busy" are not damage.
_DAMAGE = re.compile(r"not a database|malformed|corrupt|disk image|file is encrypted", re.I)


class StoreDamaged(RuntimeError):
    """The index file cannot be read; the message is for a person, with the repair command."""


def default_url(root: str | Path | None = None) -> str:
    """$COLLAB_STUDIO_DB, else the SQLite file runs.sqlite in the (local) runs folder."""
    url = os.environ.get("COLLAB_STUDIO_DB")
    if url:
        return url
    if root is None:
        from .store import default_root
        root = default_root()
    root = str(root)
    if "://" in root and not root.startswith("file://"):
        raise ValueError(f"The runs folder {root} is not on this machine, so the index cannot live beside it: set "
                         "COLLAB_STUDIO_DB to a PostgreSQL URL (or to a SQLite file path).")
    return str(Path(root.removeprefix("file://")) / "runs.sqlite")


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


class _PgConnection:
    """psycopg with SQLite's `execute(sql, params)` and `?` placeholders."""

    def __init__(self, con):
        self.con = con

    def execute(self, sql: str, params: tuple | list = ()):
        return self.con.execute(sql.replace("?", "%s"), tuple(params))


class Database:
    """Connections to one SQLite file or one PostgreSQL database.

    `with db.connect() as con: con.execute(sql, params)` commits when the block ends (rolls back on an exception).
    """

    POOL = 8  # idle PostgreSQL connections kept for reuse

    def __init__(self, url: str | Path):
        self.url = str(url)
        self.postgres = is_postgres(self.url)
        self._idle: list = []  # PostgreSQL connections not in use (Streamlit runs each rerun in a new thread)
        self._lock = threading.Lock()
        self._wal_done = False
        if not self.postgres:
            Path(self.url).parent.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"Database({self.describe()})"

    def describe(self) -> str:
        """Where it is, without a password."""
        return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", self.url)

    def damaged(self, exc: Exception) -> StoreDamaged:
        return StoreDamaged(
            f"The runs index {self.describe()} cannot be read ({exc}). The runs' own folders are untouched. "
            "Whoever runs the server can rebuild the index from them with: python -m cf_core store check --repair")

    @contextmanager
    def connect(self) -> Iterator[Any]:
        if self.postgres:
            yield from self._pg()
            return
        try:
            con = sqlite3.connect(self.url, timeout=30)
        except sqlite3.DatabaseError as exc:
            raise self.damaged(exc) from exc
        try:
            if not self._wal_done:
                # WAL is a property of the file: set once, every later connection (of any process) uses it.
                con.execute("PRAGMA journal_mode=WAL")
                self._wal_done = True
            with con:
                yield con
        except sqlite3.DatabaseError as exc:
            if _DAMAGE.search(str(exc)):
                raise self.damaged(exc) from exc
            raise
        finally:
            con.close()

    def _pg(self):
        import psycopg

        # A small pool: connecting costs round trips and an authentication, and pages ask many short questions.
        with self._lock:
            con = self._idle.pop() if self._idle else None
        if con is None or con.closed or con.broken:
            con = psycopg.connect(self.url, connect_timeout=10, autocommit=True)
        try:
            with con.transaction():
                yield _PgConnection(con)
        except BaseException:
            if con.broken or con.closed:
                con.close()
                con = None
            raise
        finally:
            if con is not None:
                with self._lock:
                    if len(self._idle) < self.POOL:
                        self._idle.append(con)
                        con = None
                if con is not None:
                    con.close()

    def integrity_problem(self) -> str | None:
        """None when the database reads well, else what is wrong (SQLite's integrity check)."""
        if self.postgres:
            try:
                with self.connect() as con:
                    con.execute("SELECT 1")
                return None
            except Exception as exc:  # unreachable server, bad credentials
                return f"{type(exc).__name__}: {exc}"
        if not Path(self.url).exists():
            return None
        try:
            con = sqlite3.connect(self.url, timeout=30)
            try:
                rows = con.execute("PRAGMA integrity_check").fetchall()
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            return str(exc)
        return None if rows == [("ok",)] else "; ".join(r[0] for r in rows[:5])

    def columns(self, table: str) -> set[str]:
        """The column names of a table (to add a column that an older index lacks)."""
        with self.connect() as con:
            if self.postgres:
                rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name=?", (table,))
                return {r[0] for r in rows.fetchall()}
            return {r[1] for r in con.execute(f"PRAGMA table_info({table})").fetchall()}
