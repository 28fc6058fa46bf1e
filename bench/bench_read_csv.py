"""Seconds to read and validate a 25M-row ratings CSV, beside pandas.read_csv on the same file.

    .venv/bin/python bench/bench_read_csv.py [--n-ratings 25000000] [--duplicates 0.01] [--keep]

Writes an ML-25M-shaped file (userId,movieId,rating,timestamp; ratings in half stars) to a temp folder once,
then times cf_core.data.read_ratings (pyarrow reader plus full validation and duplicate check) and the
reference way, pandas.read_csv with its C engine and no validation, then the same plus what read_ratings does
about duplicates (keep the latest rating of each pair) in pandas.

A share of the rows (--duplicates, 1% by default) rate a (user, item) pair again, with another rating and time,
as real uploads do (a user who changed their mind, a log exported twice): read_ratings then regroups the
duplicated rows and keeps the latest of each pair, the costly path that a file of unique pairs never takes.
The file holds exactly that many duplicate rows, so the script checks read_ratings removed every one of them.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from common import Timer, emit, machine, peak_rss_mb, save_results

from cf_core.data import read_ratings

N_USERS, N_ITEMS = 162_541, 59_047  # ML-25M's id ranges
FIRST_TIME, LAST_TIME = 789_652_009, 1_574_327_703  # its first and last timestamps


def make_file(path: Path, n: int, n_dup: int) -> None:
    """`n` rows: `n - n_dup` distinct (user, item) pairs, and `n_dup` more rows that rate one of them again."""
    rng = np.random.default_rng(0)
    keys = np.unique(rng.integers(0, N_USERS * N_ITEMS, int((n - n_dup) * 1.02)))[:n - n_dup]
    # A pair rated again may be rated a third time too: each repeat is one row read_ratings removes.
    keys = np.concatenate([keys, rng.choice(keys, n_dup)])
    rng.shuffle(keys)
    df = pd.DataFrame({"userId": keys // N_ITEMS + 1, "movieId": keys % N_ITEMS + 1,
                       "rating": rng.integers(1, 11, len(keys)) / 2,
                       "timestamp": rng.integers(FIRST_TIME, LAST_TIME, len(keys))})
    import pyarrow as pa
    import pyarrow.csv as pcsv
    pcsv.write_csv(pa.Table.from_pandas(df, preserve_index=False), path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-ratings", type=int, default=25_000_000)
    ap.add_argument("--duplicates", type=float, default=0.01, help="share of rows that repeat a (user, item) pair")
    ap.add_argument("--keep", action="store_true", help="keep the generated file in $TMPDIR/cf-bench")
    args = ap.parse_args()
    n_dup = round(args.n_ratings * args.duplicates)
    folder = Path(tempfile.gettempdir()) / "cf-bench"
    folder.mkdir(exist_ok=True)
    path = folder / f"ratings-{args.n_ratings}-dup{n_dup}.csv"
    rows = []
    if not path.exists():
        with Timer() as t:
            make_file(path, args.n_ratings, n_dup)
        rows.append(emit(what="generate csv", seconds=round(t.seconds, 1), mb=round(path.stat().st_size / 2**20)))
    where = {"rows": args.n_ratings, "duplicate_rows": n_dup, "mb": round(path.stat().st_size / 2**20),
             "machine": machine()}
    with Timer() as t:
        r = read_ratings(path)
    if r.n_duplicates != n_dup or r.n_ratings != args.n_ratings - n_dup:
        raise SystemExit(f"read_ratings removed {r.n_duplicates:,} duplicates and kept {r.n_ratings:,} ratings; "
                         f"the file has {n_dup:,} duplicate rows")
    rows.append(emit(what="ours: read_ratings (validated, duplicates removed)", seconds=round(t.seconds, 2),
                     n_ratings=r.n_ratings, n_duplicates=r.n_duplicates, n_users=r.n_users, n_items=r.n_items,
                     peak_rss_mb=round(peak_rss_mb()), **where))
    del r
    with Timer() as t:
        df = pd.read_csv(path)
    rows.append(emit(what="reference: pandas.read_csv (C engine, no validation)", seconds=round(t.seconds, 2),
                     rows_read=len(df), **where))
    with Timer() as t:
        # DUPLICATE_RULE: the latest by timestamp, the later in the file among equal timestamps.
        kept = df.sort_values("timestamp", kind="stable").drop_duplicates(["userId", "movieId"], keep="last")
    rows.append(emit(what="reference: + drop_duplicates, latest by timestamp (pandas, after read_csv)",
                     seconds=round(t.seconds, 2), n_ratings=len(kept), **where))
    save_results("read-csv-cpu", rows)
    if not args.keep:
        os.remove(path)


if __name__ == "__main__":
    main()
