"""Checking and repairing the runs store: what is wrong with a run's files (`problem`), leftovers of saves that died
(`clean_leftovers`), and the index against the run folders (`check`, which with `repair` rebuilds a damaged index
from the runs' meta.json files).

`Integrity` is part of `RunStore` (cf_core.store), which provides the folders, the index and the file helpers.
"""
from __future__ import annotations

import json
import os
import socket
import struct
import time
from pathlib import Path

from .db import Database
from .runs import COLUMNS, RUN_FILES, RUN_ID

LEFTOVER_SECONDS = 6 * 3600  # a temporary folder this old is a dead save's, whatever its process id says


class Integrity:
    """The upkeep methods of RunStore (which provides `fs`, `base`, `local`, `db`, `_dir`, `_connect`,
    `_create_tables`, `read_bytes` and `remove`)."""

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
        report, go_on = self._check_index(repair)
        if not go_on:
            return report
        return report + self._check_folders(repair) + self._check_leftovers(repair)

    def _check_index(self, repair: bool) -> tuple[list[str], bool]:
        """The index itself: its report, and whether the folders can be checked against it (it is whole, or was
        rebuilt)."""
        problem = self.db.integrity_problem()
        if not problem:
            self._create_tables()
            return [], True
        report = [f"the index {self.db.describe()} is damaged: {problem}"]
        if not repair:
            return report + ["run with --repair to rebuild it from the run folders"], False
        if self.db.postgres:
            return report + ["a PostgreSQL index is repaired by PostgreSQL's own tools, not here"], False
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
        return report, True

    def _check_folders(self, repair: bool) -> list[str]:
        """Index rows without a folder, folders without an index row, and damaged runs."""
        report = []
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
        return report

    def _check_leftovers(self, repair: bool) -> list[str]:
        """Temporary folders of saves that were cut short."""
        leftovers = [p for p in self.fs.ls(self.base, detail=False)
                     if p.rstrip("/").rsplit("/", 1)[-1].startswith(".tmp-")]
        if not leftovers:
            return []
        report = [f"{len(leftovers)} temporary folder(s) of saves that were cut short"]
        if repair:
            removed = self.clean_leftovers()
            report.append(f"  removed {len(removed)}")
        return report

    def _reindex(self, run_id: str) -> None:
        """Index a whole run folder again from its meta.json."""
        meta = json.loads(self.read_bytes(f"{self._dir(run_id)}/meta.json"))
        created = meta.get("created") or self.fs.modified(f"{self._dir(run_id)}/meta.json").timestamp()
        with self._connect() as con:
            con.execute(f"INSERT INTO runs ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                        (run_id, meta.get("name", ""), created, meta["config"].get("model", ""),
                         meta.get("dataset", ""), json.dumps(meta.get("metrics", {})), json.dumps(meta["config"]),
                         meta.get("owner", "")))


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
