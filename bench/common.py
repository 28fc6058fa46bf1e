"""Helpers shared by the benchmark scripts: where the data is, timing, and JSON-line output.

Every script prints its figures as JSON lines stamped with the commit (`emit`) and writes them to its own
bench/results/<name>.jsonl whole at the end (`save_results`), so each file is its script's latest run. A trial run
that should leave the committed figures alone sets $BENCH_RESULTS to a scratch folder.
"""
from __future__ import annotations

import functools
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


def ml100k() -> tuple[pd.DataFrame, pd.DataFrame]:
    """MovieLens 100k ratings (user, item, rating, timestamp) and items, from ../shared/data or the product's cache."""
    folder = SHARED / "ml-100k"
    if not (folder / "ratings.csv").exists():
        from cf_core.datasets import fetch_movielens_100k
        folder = fetch_movielens_100k()
    ratings = pd.read_csv(folder / "ratings.csv").rename(columns={"user_id": "user", "item_id": "item"})
    items = pd.read_csv(folder / "items.csv").rename(columns={"item_id": "item"})
    return ratings, items


def machine() -> str:
    """A short description of where a number was measured."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    threads = torch.get_num_threads()
    return f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__} ({threads} threads), {gpu}"


def peak_rss_mb() -> float:
    """Peak resident memory of this process (since the last `reset_peak`), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Resident memory of this process now, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Start measuring the peak from now (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


@functools.cache
def commit() -> str:
    """The checked-out commit a figure was measured at (with "+changes" when the tree differs from it)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        # --no-optional-locks: only look, never refresh the index (someone may be committing meanwhile)
        dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":!bench/results"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def emit(**record) -> dict:
    """Print one JSON line, stamped with the commit it was measured at; returns the stamped record (for
    `save_results`)."""
    stamped = {**record, "commit": record.get("commit", commit())}
    print(json.dumps(stamped), flush=True)
    return stamped


def results_dir() -> Path:
    """bench/results, or $BENCH_RESULTS when set (a scratch folder for a trial run)."""
    return Path(os.environ.get("BENCH_RESULTS") or ROOT / "bench" / "results")


def save_results(name: str, rows: list[dict]) -> None:
    """Write <results_dir>/<name>.jsonl whole (never appended to), each row stamped with the commit."""
    stamp, folder = commit(), results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.jsonl", "w") as f:
        f.writelines(json.dumps({**row, "commit": row.get("commit", stamp)}) + "\n" for row in rows)


def device_kind(device=None) -> str:
    """"gpu" or "cpu", the last part of a results file's name: `device` (a torch.device or its name), else the
    device a default fit picks (a GPU when there is one)."""
    import torch

    if device is None:
        return "gpu" if torch.cuda.is_available() else "cpu"
    return "gpu" if torch.device(device).type == "cuda" else "cpu"


def child_rows(cmd: list[str], **kwargs) -> list[dict]:
    """Run a benchmark's child process (a fresh process for a memory peak, torchrun's ranks), passing its output
    through as it comes; returns the JSON lines it printed. Raises CalledProcessError when it fails."""
    rows = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, **kwargs) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return rows


class Timer:
    """with Timer() as t: ...; t.seconds"""

    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
