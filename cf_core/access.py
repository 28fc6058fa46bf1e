"""Who is asking: the principal every store and job call is made for, and the one rule about who may change what.

A `Principal` is a signed-in person (from the embedded user list or a company identity provider), the single person
of local mode (`LOCAL`, who owns everything), or an anonymous visitor who holds only a share link (`ANONYMOUS`).
The rules live here and in the store and job manager, never only in the pages: a page that forgot to hide a button
still cannot delete a stranger's run.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

LOCAL_NAME = "local"


@dataclass(frozen=True)
class Principal:
    """A person (by name) and whether they are an admin; the empty name is an anonymous visitor."""

    name: str
    admin: bool = False

    @property
    def signed_in(self) -> bool:
        return bool(self.name)

    def owns(self, owner: str) -> bool:
        """Whether this principal may manage something owned by `owner` (its owner, or an admin)."""
        return self.admin or (self.signed_in and self.name == owner)


LOCAL = Principal(LOCAL_NAME, admin=True)   # local mode: the one person on their own machine
ANONYMOUS = Principal("")                   # someone with a share link and nothing else
SYSTEM = Principal("(system)", admin=True)  # the server itself (loading a run another check has already allowed)


class PermissionDenied(PermissionError):
    """The principal may not do this; the message says what was refused, in plain words."""

    def __str__(self) -> str:
        return self.args[0] if self.args else "not allowed"


def admin_names() -> set[str]:
    """Admins named in the configuration: $COLLAB_STUDIO_ADMINS, comma separated (user names or e-mail addresses)."""
    return {n.strip().lower() for n in os.environ.get("COLLAB_STUDIO_ADMINS", "").split(",") if n.strip()}


def principal(name: str, admin: bool = False) -> Principal:
    """The principal for a signed-in name, an admin when flagged so or named in $COLLAB_STUDIO_ADMINS."""
    return Principal(name, admin or name.lower() in admin_names())


def require_owner(who: Principal, owner: str, action: str) -> None:
    """Raise PermissionDenied unless `who` owns (or administers) what `owner` owns; `action` says what was refused."""
    if not who.owns(owner):
        who_text = who.name if who.signed_in else "an anonymous visitor"
        raise PermissionDenied(f"Only its owner or an admin may {action}; you are {who_text}.")
