"""The embedded user list for a team without an identity provider: names, Argon2 password hashes, sign-in sessions.

One SQLite file at $COLLAB_STUDIO_USERS, else the shared database $COLLAB_STUDIO_DB names (PostgreSQL, for several
web replicas), else `users.sqlite` in the runs folder; managed with
`python -m cf_core users add NAME | remove NAME | list`. Passwords are never stored: only Argon2id hashes
(argon2-cffi, its recommended parameters). A sign-in creates a session: a random 256-bit token that goes to the
browser in an HttpOnly cookie, while the file keeps only its SHA-256, so a copy of the file signs nobody in.
Sessions survive a server restart, end at sign-out or after `SESSION_DAYS`, and all end when the user is removed.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .access import Principal, principal
from .db import Database, is_postgres

# No '@' or ':': identities from an identity provider are e-mail addresses or 'oidc:<subject>', never a user-list name.
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_PASSWORD = 8
SESSION_DAYS = 30
_hasher = PasswordHasher()
# Verified against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def default_path() -> str:
    """$COLLAB_STUDIO_USERS, else a PostgreSQL $COLLAB_STUDIO_DB, else users.sqlite in the runs folder."""
    from .store import default_root

    if os.environ.get("COLLAB_STUDIO_USERS"):
        return os.environ["COLLAB_STUDIO_USERS"]
    if is_postgres(os.environ.get("COLLAB_STUDIO_DB", "")):
        return os.environ["COLLAB_STUDIO_DB"]
    return str(Path(default_root().removeprefix("file://")) / "users.sqlite")


@dataclass
class User:
    """One row of the user list (never the hash)."""

    name: str
    admin: bool
    created: float


class UserError(ValueError):
    """A user-list request that cannot be done (bad name, short password, unknown or existing user)."""


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserDirectory:
    """Users and their sign-in sessions in one SQLite file or PostgreSQL database (created on first use)."""

    def __init__(self, path: str | Path | None = None):
        self.db = Database(path if path is not None else default_path())
        self.path = self.db.describe()
        with self._connect() as con:
            con.execute("CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, hash TEXT NOT NULL, "
                        "admin INTEGER NOT NULL DEFAULT 0, created DOUBLE PRECISION NOT NULL)")
            con.execute("CREATE TABLE IF NOT EXISTS sessions (token_hash TEXT PRIMARY KEY, name TEXT NOT NULL, "
                        "created DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION NOT NULL)")
        try:
            if not self.db.postgres:
                os.chmod(self.db.url, 0o600)  # hashes are not passwords, but nobody else on the machine needs them
        except OSError:
            pass

    def _connect(self):
        return self.db.connect()

    # ------------------------------------------------------------ the list
    def add(self, name: str, password: str, admin: bool = False, replace: bool = False) -> User:
        """Add a user (or, with replace, set a new password and admin flag and end their sessions)."""
        if not USER_NAME.match(name or ""):
            raise UserError(f"{name!r} is not a valid user name: use 1 to 64 letters, digits, '.', '_' or '-', "
                            "starting with a letter or digit.")
        if len(password) < MIN_PASSWORD:
            raise UserError(f"The password must have at least {MIN_PASSWORD} characters.")
        with self._connect() as con:
            exists = con.execute("SELECT 1 FROM users WHERE name=?", (name,)).fetchone()
            if exists and not replace:
                raise UserError(f"There is already a user named {name!r} (use --reset to set a new password).")
            created = time.time()
            con.execute("INSERT INTO users VALUES (?,?,?,?) ON CONFLICT (name) DO UPDATE SET hash=excluded.hash, "
                        "admin=excluded.admin, created=excluded.created",
                        (name, _hasher.hash(password), int(admin), created))
            con.execute("DELETE FROM sessions WHERE name=?", (name,))
        return User(name, admin, created)

    def remove(self, name: str) -> None:
        """Remove a user and end every session they have."""
        with self._connect() as con:
            if con.execute("DELETE FROM users WHERE name=?", (name,)).rowcount == 0:
                raise UserError(f"There is no user named {name!r}.")
            con.execute("DELETE FROM sessions WHERE name=?", (name,))

    def list(self) -> list[User]:
        with self._connect() as con:
            rows = con.execute("SELECT name, admin, created FROM users ORDER BY name").fetchall()
        return [User(n, bool(a), c) for n, a, c in rows]

    def __len__(self) -> int:
        with self._connect() as con:
            return con.execute("SELECT COUNT(*) FROM users").fetchone()[0]

    # ------------------------------------------------------------ signing in
    def verify(self, name: str, password: str) -> Principal | None:
        """The principal when the name and password match, else None (in about the same time either way)."""
        with self._connect() as con:
            row = con.execute("SELECT hash, admin FROM users WHERE name=?", (name,)).fetchone()
        try:
            ok = _hasher.verify(row[0] if row else _DUMMY_HASH, password) and row is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok:
            return None
        if _hasher.check_needs_rehash(row[0]):
            with self._connect() as con:
                con.execute("UPDATE users SET hash=? WHERE name=?", (_hasher.hash(password), name))
        return principal(name, bool(row[1]))

    def start_session(self, name: str, days: float = SESSION_DAYS) -> str:
        """A new session token for a user (the caller checked the password); only its hash is kept."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self._connect() as con:
            con.execute("DELETE FROM sessions WHERE expires < ?", (now,))
            con.execute("INSERT INTO sessions VALUES (?,?,?,?)", (_token_hash(token), name, now, now + days * 86400))
        return token

    def session_principal(self, token: str | None) -> Principal | None:
        """Who a session token signs in, or None (unknown, expired, or the user was removed)."""
        if not isinstance(token, str) or not token or len(token) > 200:
            return None
        with self._connect() as con:
            row = con.execute("SELECT u.name, u.admin FROM sessions s JOIN users u ON u.name = s.name "
                              "WHERE s.token_hash=? AND s.expires > ?", (_token_hash(token), time.time())).fetchone()
        return principal(row[0], bool(row[1])) if row else None

    def end_session(self, token: str | None) -> None:
        """Sign a session out (nothing happens for an unknown token)."""
        if isinstance(token, str) and token:
            with self._connect() as con:
                con.execute("DELETE FROM sessions WHERE token_hash=?", (_token_hash(token),))
