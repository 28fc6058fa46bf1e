"""Uploaded files, kept per owner: a person's ratings file (and items and validation files), as they uploaded them,
to pick again later; an items or validation file can be added to a kept upload afterwards.

Each upload is a folder under `<runs root>/uploads/` (a local folder or an fsspec URL, as the runs) holding the bytes
as they came, indexed with its owner in the runs store's database. Only the owner (or an admin) may list, read or
delete an upload; nothing serves one to anyone else (a shared run carries the ratings it was trained on, not the
upload).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .access import PermissionDenied, Principal, require_owner
from .store import RUN_ID, RunStore, new_id


@dataclass
class Upload:
    """One upload: a ratings file, maybe an items file and a validation file, and the column roles its owner chose."""

    id: str
    owner: str
    name: str
    items_name: str | None
    created: float
    size: int
    roles: dict
    valid_name: str | None = None

    @property
    def created_text(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created))


_COLUMNS = "id, owner, name, items_name, created, size, roles, valid_name"


def _upload(row) -> Upload:
    return Upload(*row[:6], json.loads(row[6]), row[7])


class UploadNotFound(KeyError):
    def __str__(self) -> str:
        return self.args[0]


class UploadStore:
    """Save, list, read and delete uploads under `root/uploads` (the runs folder by default)."""

    def __init__(self, root: str | Path | None = None, store: RunStore | None = None):
        self.store = store or RunStore(root)
        self.fs, self.dir = self.store.fs, self.store._path("uploads")
        self.fs.makedirs(self.dir, exist_ok=True)
        with self._connect() as con:
            con.execute("""CREATE TABLE IF NOT EXISTS uploads (id TEXT PRIMARY KEY, owner TEXT NOT NULL,
                name TEXT NOT NULL, items_name TEXT, created DOUBLE PRECISION NOT NULL, size INTEGER NOT NULL,
                roles TEXT NOT NULL, valid_name TEXT)""")
        if "valid_name" not in self.store.db.columns("uploads"):  # an index from before validation files
            with self._connect() as con:
                con.execute("ALTER TABLE uploads ADD COLUMN valid_name TEXT")

    def _connect(self):
        return self.store.db.connect()

    def save(self, who: Principal, ratings: bytes, name: str, items: bytes | None = None, items_name: str | None = None,
             roles: dict | None = None, valid: bytes | None = None, valid_name: str | None = None) -> Upload:
        """Keep an upload for `who` (the folder appears whole or not at all); returns it."""
        if not who.signed_in:
            raise PermissionDenied("Sign in to upload files.")
        upload = Upload(new_id(16), who.name, name, items_name if items is not None else None,
                        time.time(), len(ratings) + len(items or b"") + len(valid or b""), dict(roles or {}),
                        valid_name if valid is not None else None)
        folder = f"{self.dir}/{upload.id}"
        tmp = f"{self.dir}/.tmp-{upload.id}" if self.store.local else folder
        try:
            self.fs.makedirs(tmp, exist_ok=True)
            for kind, data in (("ratings", ratings), ("items", items), ("valid", valid)):
                if data is not None:
                    self.store.write_bytes(f"{tmp}/{kind}", data)
            if self.store.local:
                os.replace(tmp, folder)
        except BaseException:
            self.store.remove(tmp)
            raise
        with self._connect() as con:
            con.execute(f"INSERT INTO uploads ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                        (upload.id, upload.owner, upload.name, upload.items_name, upload.created, upload.size,
                         json.dumps(upload.roles), upload.valid_name))
        return upload

    def attach(self, upload_id: str, kind: str, data: bytes, name: str, who: Principal) -> Upload:
        """Add (or replace) the items or validation file of one of `who`'s uploads, without its ratings again."""
        if kind not in ("items", "valid"):
            raise ValueError(f"an upload holds an items or a validation file, not {kind!r}")
        kept = self.get(upload_id, who)
        path = f"{self.dir}/{upload_id}/{kind}"
        replaced = self.fs.size(path) if self.fs.exists(path) else 0
        if self.store.local:  # written aside and renamed: a reader sees the old file or the new one, whole
            self.store.write_bytes(f"{path}.tmp", data)
            os.replace(f"{path}.tmp", path)
        else:
            self.store.write_bytes(path, data)
        with self._connect() as con:
            con.execute(f"UPDATE uploads SET {kind}_name=?, size=? WHERE id=?",
                        (name, kept.size - replaced + len(data), upload_id))
        return self.get(upload_id, who)

    def list(self, who: Principal) -> list[Upload]:
        """`who`'s uploads, newest first."""
        with self._connect() as con:
            rows = con.execute(f"SELECT {_COLUMNS} FROM uploads WHERE owner=? ORDER BY created DESC",
                               (who.name,)).fetchall()
        return [_upload(r) for r in rows] if who.signed_in else []

    def get(self, upload_id: str, who: Principal) -> Upload:
        """One upload of `who`'s. Raises UploadNotFound, or PermissionDenied for someone else's."""
        if not RUN_ID.match(upload_id or ""):
            raise UploadNotFound(f"no upload with id {upload_id!r}")
        with self._connect() as con:
            r = con.execute(f"SELECT {_COLUMNS} FROM uploads WHERE id=?", (upload_id,)).fetchone()
        if r is None:
            raise UploadNotFound(f"no upload with id {upload_id!r}")
        require_owner(who, r[1], "open this upload")
        return _upload(r)

    def read(self, upload_id: str, who: Principal) -> tuple[bytes, bytes | None, bytes | None]:
        """The ratings, items and validation bytes (None for a file it lacks) of one of `who`'s uploads."""
        self.get(upload_id, who)
        folder = f"{self.dir}/{upload_id}"
        ratings = self.store.read_bytes(f"{folder}/ratings")
        others = [self.store.read_bytes(path) if self.fs.exists(path) else None
                  for path in (f"{folder}/items", f"{folder}/valid")]
        return ratings, others[0], others[1]

    def set_roles(self, upload_id: str, roles: dict, who: Principal) -> None:
        """Remember the columns its owner chose for an upload."""
        self.get(upload_id, who)
        with self._connect() as con:
            con.execute("UPDATE uploads SET roles=? WHERE id=?", (json.dumps(dict(roles)), upload_id))

    def delete(self, upload_id: str, who: Principal) -> None:
        """Remove an upload (owner or admin only)."""
        self.get(upload_id, who)
        with self._connect() as con:
            con.execute("DELETE FROM uploads WHERE id=?", (upload_id,))
        self.store.remove(f"{self.dir}/{upload_id}")
