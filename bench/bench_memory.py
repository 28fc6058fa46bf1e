"""Peak memory for 25M ratings, each stage in a fresh process: reading the CSV (read_ratings, validated), and
training one epoch on the 80/20 split (data already in memory as a DataFrame loaded from Parquet).

    .venv/bin/python bench/bench_memory.py [--n-ratings 25000000]

The reference beside each is the memory pandas needs to hold the ratings themselves.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_read_csv import make_file
from common import Timer, emit, machine, peak_rss_mb, reset_peak, rss_mb

import pandas as pd

from cf_core.config import TrainConfig
from cf_core.data import read_ratings
from cf_core.recommender import Recommender
from cf_core.splits import random_split


def stage_read(csv: Path, parquet: Path) -> None:
    base = rss_mb()
    with Timer() as t:
        ratings = read_ratings(csv)
    emit(what="read_ratings 25M csv", peak_rss_mb=round(peak_rss_mb()), process_start_mb=round(base),
         seconds=round(t.seconds, 1), reference_frame_mb=round(ratings.df.memory_usage(deep=True).sum() / 2**20),
         rows=ratings.n_ratings, machine=machine())
    ratings.df.to_parquet(parquet, index=False)


def stage_train(parquet: Path) -> None:
    df = pd.read_parquet(parquet)
    frame_mb = df.memory_usage(deep=True).sum() / 2**20
    base = rss_mb()
    reset_peak()  # measure from here: the ratings in memory, as the app holds them after reading
    train, valid = random_split(df, 0.2, 42)
    del df
    with Timer() as t:
        rec = Recommender(TrainConfig(epochs=1, device="cpu")).fit(train, valid)
    emit(what="split + train 1 epoch (with validation) on 25M", peak_rss_mb=round(peak_rss_mb()),
         process_start_mb=round(base), seconds=round(t.seconds, 1), reference_frame_mb=round(frame_mb),
         valid_rmse=round(rec.history.epochs[-1]["valid_rmse"], 4), rows=len(train) + len(valid), machine=machine())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-ratings", type=int, default=25_000_000)
    ap.add_argument("--stage", choices=("read", "train"))
    args = ap.parse_args()
    folder = Path(tempfile.gettempdir()) / "cf-bench"
    csv, parquet = folder / f"ratings-{args.n_ratings}.csv", folder / f"ratings-{args.n_ratings}.parquet"
    if args.stage == "read":
        return stage_read(csv, parquet)
    if args.stage == "train":
        return stage_train(parquet)
    folder.mkdir(exist_ok=True)
    if not csv.exists():
        make_file(csv, args.n_ratings)
    for stage in ("read", "train"):  # fresh processes: peak memory is per process
        subprocess.run([sys.executable, __file__, "--stage", stage, "--n-ratings", str(args.n_ratings)], check=True)


if __name__ == "__main__":
    main()
