"""Roles of columns: which column holds the user, item, rating and timestamp, by name or position or, where the
names say nothing, by the values; and whether the table is a user x item matrix instead."""

from __future__ import annotations

import re

from .sniff import _is_number
from .types import _COUNT_NORM, _FUZZY, _KNOWN_NORM, _ROLES, KNOWN_NAMES, DataError, _norm, _Table

_DATE = re.compile(r"^(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})([ T]\d{1,2}:\d{2}(:\d{2})?.*)?$")

def _find_column(names: list[str], wanted: str, display: str, role: str) -> str:
    if wanted in names:
        return wanted
    matches = [n for n in names if _norm(n) == _norm(wanted)]
    if matches:
        return matches[0]
    raise DataError(f"there is no column {wanted!r} for the {role}; the columns are: {_listed(names)}",
                    source=display)


def _listed(names: list[str], at_most: int = 12) -> str:
    """Column names for a message: all of a few, or the first ones and how many there are."""
    shown = ", ".join(repr(n) for n in names[:at_most])
    return shown if len(names) <= at_most else f"{shown}, ... ({len(names):,} in all)"


def _infer_roles(table: _Table, explicit: dict[str, str | None], display: str) -> dict[str, str]:
    """Map each role to a column: explicit arguments first, then names, or positions without a header."""
    roles = {r: _find_column(table.names, c, display, r) for r, c in explicit.items() if c}
    used = set(roles.values())
    free = [n for n in table.names if n not in used]
    if not table.header:
        for role in _ROLES:
            if role not in roles and free:
                roles[role] = free.pop(0)
        return roles
    for role in _ROLES:  # exact names first, so "rating" is never taken by a fuzzy "rating_date"
        if role not in roles:
            hit = next((n for n in free if _norm(n) in _KNOWN_NORM[role]), None)
            if hit:
                roles[role] = hit
                free.remove(hit)
    for role in _ROLES:
        if role not in roles:
            hit = next((n for n in free if any(k in _norm(n) for k in _FUZZY[role])), None)
            if hit:
                roles[role] = hit
                free.remove(hit)
    return roles


def _sample_cells(table: _Table, j: int) -> list[str]:
    """Column j's non-blank cells in the sample rows, stripped."""
    return [row[j].strip() for row in table.sample if j < len(row) and row[j].strip()]


def _seconds_like(numbers: list[float]) -> bool:
    """Whole numbers from 1e8 on (seconds since 1973): a timestamp column, or ids that big, never ratings."""
    return bool(numbers) and all(x >= 1e8 and x == int(x) for x in numbers)


def _by_content(table: _Table, roles: dict[str, str]) -> dict[str, str]:
    """Roles the names did not give, from the sample's values (a header in words the reader does not know: "a,b,c",
    "usuario,pelicula,puntuacion"): a column of whole seconds since 1973 or of dates is the timestamp; the rating is
    the one numeric column with fractions, else the numeric column with clearly the fewest distinct values, else the
    rightmost numeric column if two columns come before it (user, item, rating is the usual order); the first two
    columns left are the user and the item, in that order. Returns only what it inferred; nothing when the three
    required roles cannot all be had."""
    if not table.header or all(r in roles for r in ("user", "item", "rating")):
        return {}
    free = [j for j, n in enumerate(table.names) if n not in roles.values()]
    cells = {j: _sample_cells(table, j) for j in free}
    numbers = {j: [float(c) for c in v] for j, v in cells.items() if v and all(map(_is_number, v))}
    found: dict[str, str] = {}

    def take(role: str, j: int) -> None:
        found[role] = table.names[j]
        free.remove(j)

    missing = sum(r not in roles for r in ("user", "item", "rating"))
    if "timestamp" not in roles and len(free) > missing:  # a timestamp only beside the columns still needed
        stamp = next((j for j in reversed(free) if j in numbers and _seconds_like(numbers[j])),
                     None)  # the rightmost: ids may be big numbers too
        if stamp is None:
            stamp = next((j for j in reversed(free) if cells[j] and j not in numbers
                          and all(map(_DATE.match, cells[j]))), None)
        if stamp is not None:
            take("timestamp", stamp)
    if "rating" not in roles:
        candidates = [j for j in free if j in numbers]
        if not candidates:
            return {}
        fractions = [j for j in candidates if any(x != int(x) for x in numbers[j])]  # ids are whole numbers
        levels = sorted(candidates, key=lambda j: len(set(numbers[j])))
        if len(fractions) == 1:
            take("rating", fractions[0])
        elif len(levels) > 1 and 2 * len(set(numbers[levels[0]])) <= len(set(numbers[levels[1]])):
            take("rating", levels[0])  # a few levels of stars among many ids
        elif candidates[-1] >= 2:  # the usual order: two id columns (named or not), then the rating
            take("rating", candidates[-1])
        else:
            return {}
    for role in ("user", "item"):
        if role not in roles:
            if not free:
                return {}
            take(role, free[0])
    return found


def _count_column(table: _Table, roles: dict[str, str]) -> str | None:
    """With no rating column, a column named as counts of interactions (plays, clicks, quantity...), or None."""
    if "rating" in roles or not table.header:
        return None
    return next((n for n in table.names if n not in roles.values() and _norm(n) in _COUNT_NORM), None)


def _require(roles: dict[str, str], table: _Table, display: str) -> None:
    for role in ("rating", "user", "item"):
        if role not in roles:
            found = _listed(table.names)
            if table.header:
                looks = ", ".join(KNOWN_NAMES[role][:8])
                raise DataError(f"no {role} column found; the columns are {found}; looked for names like "
                                f"{looks} (name the {role} column explicitly to choose one)", source=display)
            raise DataError(f"no {role} column found: the file has {len(table.names)} columns and no header, "
                            "so they are read as user, item, rating[, timestamp]", source=display)


def _looks_wide(table: _Table, roles: dict[str, str], explicit: dict[str, str | None]) -> bool:
    """A header of item ids over a grid of numbers, with no rating-like column."""
    if not table.header or "rating" in roles or any(explicit.values()) or len(table.names) < 3:
        return False
    others = table.raw_names[1:]
    if sum(_is_number(n) for n in others) >= 0.5 * len(others):
        return True
    # Column names that each name an item ("item0", "item1", ... or "movie 1", "movie 2", ...).
    if sum(any(k in _norm(n) for k in _FUZZY["item"]) for n in others) >= max(3, 0.5 * len(others)):
        return True
    cells = [c for row in table.sample for c in row[1:] if c.strip()]
    for j in range(1, len(table.names)):  # a column of seconds (or of ids that big) is not ratings: a long table
        column = _sample_cells(table, j)
        if column and all(map(_is_number, column)) and _seconds_like([float(c) for c in column]):
            return False
    return ("item" not in roles and len(others) >= 3 and bool(cells)
            and sum(map(_is_number, cells)) >= 0.9 * len(cells))

