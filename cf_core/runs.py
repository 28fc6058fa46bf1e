"""What a run is to the runs store: its id, its files, its index row (`RunInfo`), a loaded run (`Run`), and the errors
for a run that is not there (`RunNotFound`) or whose files are damaged (`RunDamaged`)."""
from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass

import pandas as pd

from .recommender import Recommender

RUN_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")  # run ids, share tokens, job and upload ids alike
RUN_FILES = ("meta.json", "ids.json", "weights.safetensors")  # every run has them; the frames are optional
COLUMNS = "id, name, created, model, dataset, metrics, config, owner"  # the runs table's, in RunInfo's order


def new_id(n_bytes: int = 16) -> str:
    """A random URL-safe id (n_bytes of randomness) that starts with a letter or digit, so that no id is ever read
    as an option by a shell or as a formula by a spreadsheet ('-' and '=' start those)."""
    while True:
        token = secrets.token_urlsafe(n_bytes)
        if token[0].isalnum():
            return token


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


def info_from_row(row) -> RunInfo:
    """A RunInfo from a row of `SELECT {COLUMNS} FROM runs`."""
    return RunInfo(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), json.loads(row[6]), row[7] or "")


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
