"""Uploaded files, kept per owner: a person's ratings (and items) files, as they uploaded them, to pick again later.

Each upload is a folder under `<runs root>/uploads/` (a local folder or an fsspec URL, as the runs) holding the bytes
as they came, indexed with its owner in the runs store's database. Only the owner (or an admin) may list, read or delete an upload; nothing serves one to
anyone else (a shared run carries the ratings it was trained on, not the upload).
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
    """One upload: a ratings file, maybe an items file, and the column roles its owner chose."""

    id: str
    owner: str
    name: str
    items_name: str | None
    created: float
    size: int
    roles: dict

    @property
    def created_text(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created))


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
                roles TEXT NOT NULL)""")

    def _connect(self):
        return self.store.db.connect()

    def save(self, who: Principal, ratings: bytes, name: str, items: bytes | None = None, items_name: str | None = None,
             roles: dict | None = None) -> Upload:
        """Keep an upload for `who` (the folder appears whole or not at all); returns it."""
        if not who.signed_in:
            raise PermissionDenied("Sign in to upload files.")
        upload = Upload(new_id(16), who.name, name, items_name if items is not None else None,
                        time.time(), len(ratings) + len(items or b""), dict(roles or {}))
        folder = f"{self.dir}/{upload.id}"
        tmp = f"{self.dir}/.tmp-{upload.id}" if self.store.local else folder
        try:
            self.fs.makedirs(tmp, exist_ok=True)
            self.store.write_bytes(f"{tmp}/ratings", ratings)
            if items is not None:
                self.store.write_bytes(f"{tmp}/items", items)
            if self.store.local:
                os.replace(tmp, folder)
        except BaseException:
            self.store.remove(tmp)
            raise
        with self._connect() as con:
            con.execute("INSERT INTO uploads VALUES (?,?,?,?,?,?,?)",
                        (upload.id, upload.owner, upload.name, upload.items_name, upload.created, upload.size,
                         json.dumps(upload.roles)))
        return upload

    def list(self, who: Principal) -> list[Upload]:
        """`who`'s uploads, newest first."""
        with self._connect() as con:
            rows = con.execute("SELECT id, owner, name, items_name, created, size, roles FROM uploads WHERE owner=? "
                               "ORDER BY created DESC", (who.name,)).fetchall()
        return [Upload(*r[:6], json.loads(r[6])) for r in rows] if who.signed_in else []

    def get(self, upload_id: str, who: Principal) -> Upload:
        """One upload of `who`'s. Raises UploadNotFound, or PermissionDenied for someone else's."""
        if not RUN_ID.match(upload_id or ""):
            raise UploadNotFound(f"no upload with id {upload_id!r}")
        with self._connect() as con:
            r = con.execute("SELECT id, owner, name, items_name, created, size, roles FROM uploads WHERE id=?",
                            (upload_id,)).fetchone()
        if r is None:
            raise UploadNotFound(f"no upload with id {upload_id!r}")
        require_owner(who, r[1], "open this upload")
        return Upload(*r[:6], json.loads(r[6]))

    def read(self, upload_id: str, who: Principal) -> tuple[bytes, bytes | None]:
        """The ratings bytes and the items bytes (None without an items file) of one of `who`'s uploads."""
        self.get(upload_id, who)
        folder = f"{self.dir}/{upload_id}"
        items = f"{folder}/items"
        return self.store.read_bytes(f"{folder}/ratings"), self.store.read_bytes(items) if self.fs.exists(items) else None

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
