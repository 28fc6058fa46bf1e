"""Share links to runs: a read-only capability (a random 256-bit token, separate from the run id) that a run's owner
(or an admin) makes and can revoke, open to anyone who holds it or only to signed-in people. A signed-in person who
opened a link finds the run among "shared with you" while the link works.

`ShareLinks` is part of `RunStore` (cf_core.store); the links live in the store's index, beside the runs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from .access import PermissionDenied, Principal, require_owner
from .runs import COLUMNS, RUN_ID, RunInfo, info_from_row, new_id


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


SHARE_COLUMNS = "token, run_id, owner, created, public, revoked"


def _share_from_row(row) -> Share:
    return Share(row[0], row[1], row[2], row[3], bool(row[4]), row[5])


class ShareLinks:
    """The share-link methods of RunStore (which provides `_row`, `_connect` and `exists`)."""

    def shared_with(self, who: Principal) -> list[RunInfo]:
        """Runs of others that `who` opened through a share link that still works, newest first."""
        if not who.signed_in:
            return []
        with self._connect() as con:
            rows = con.execute(f"""SELECT DISTINCT {', '.join('r.' + c.strip() for c in COLUMNS.split(','))}
                FROM share_visits v JOIN shares s ON s.token = v.token JOIN runs r ON r.id = s.run_id
                WHERE v.viewer=? AND s.revoked IS NULL AND r.owner != ? ORDER BY r.created DESC""",
                               (who.name, who.name)).fetchall()
        return [info_from_row(r) for r in rows]

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
            rows = con.execute(f"SELECT {SHARE_COLUMNS} FROM shares "
                               "WHERE run_id=? AND revoked IS NULL ORDER BY created DESC", (run_id,)).fetchall()
        return [_share_from_row(r) for r in rows]

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
                con.execute("INSERT INTO share_visits VALUES (?,?,?) "
                            "ON CONFLICT (token, viewer) DO UPDATE SET seen=excluded.seen",
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
            r = con.execute(f"SELECT {SHARE_COLUMNS} FROM shares WHERE token=?", (token,)).fetchone()
        return _share_from_row(r) if r else None

    def _visited(self, run_id: str, who: Principal) -> bool:
        """Whether `who` opened a link to the run that still works."""
        with self._connect() as con:
            return con.execute("SELECT 1 FROM share_visits v JOIN shares s ON s.token = v.token "
                               "WHERE s.run_id=? AND v.viewer=? AND s.revoked IS NULL",
                               (run_id, who.name)).fetchone() is not None
