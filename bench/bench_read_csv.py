"""Seconds to read and validate a 25M-row ratings CSV, beside pandas.read_csv on the same file.

    .venv/bin/python bench/bench_read_csv.py [--n-ratings 25000000] [--keep]

Writes an ML-25M-shaped file (userId,movieId,rating,timestamp; ratings in half stars) to a temp folder once,
then times cf_core.data.read_ratings (pyarrow reader plus full validation and duplicate check) and the
reference way, pandas.read_csv with its C engine and no validation.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from common import Timer, emit, machine, peak_rss_mb

from cf_core.data import read_ratings


def make_file(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    # unique (user, item) pairs, like the real file
    keys = np.unique(rng.integers(0, 162_541 * 59_047, int(n * 1.02)))[:n]
    rng.shuffle(keys)
    df = pd.DataFrame({"userId": keys // 59_047 + 1, "movieId": keys % 59_047 + 1,
                       "rating": rng.integers(1, 11, len(keys)) / 2, "timestamp": rng.integers(789_652_009, 1_574_327_703, len(keys))})
    import pyarrow as pa
    import pyarrow.csv as pcsv
    pcsv.write_csv(pa.Table.from_pandas(df, preserve_index=False), path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-ratings", type=int, default=25_000_000)
    ap.add_argument("--keep", action="store_true", help="keep the generated file in $TMPDIR/cf-bench")
    args = ap.parse_args()
    folder = Path(tempfile.gettempdir()) / "cf-bench"
    folder.mkdir(exist_ok=True)
    path = folder / f"ratings-{args.n_ratings}.csv"
    if not path.exists():
        with Timer() as t:
            make_file(path, args.n_ratings)
        emit(what="generate csv", seconds=round(t.seconds, 1), mb=round(path.stat().st_size / 2**20))
    where = {"rows": args.n_ratings, "mb": round(path.stat().st_size / 2**20), "machine": machine()}
    with Timer() as t:
        r = read_ratings(path)
    emit(what="ours: read_ratings (validated)", seconds=round(t.seconds, 2), n_ratings=r.n_ratings,
         n_users=r.n_users, n_items=r.n_items, peak_rss_mb=round(peak_rss_mb()), **where)
    del r
    with Timer() as t:
        df = pd.read_csv(path)
    emit(what="reference: pandas.read_csv (C engine, no validation)", seconds=round(t.seconds, 2), rows_read=len(df), **where)
    if not args.keep:
        os.remove(path)


if __name__ == "__main__":
    main()
