"""Peak memory for 25M ratings, each in a fresh process: reading the CSV (read_ratings, validated); and the whole
path as the app runs it: read the CSV, split 80/20, train one epoch with validation.

    .venv/bin/python bench/bench_memory.py [--n-ratings 25000000]

The reference beside each is the memory pandas needs to hold the ratings themselves. Prints JSON lines and writes
them to bench/results/memory-cpu.jsonl (whole).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench_read_csv import make_file
from common import Timer, child_rows, emit, machine, peak_rss_mb, rss_mb, save_results

from cf_core.config import TrainConfig
from cf_core.data import read_ratings
from cf_core.recommender import Recommender
from cf_core.splits import split_for_training


def stage_read(csv: Path) -> None:
    base = rss_mb()
    with Timer() as t:
        ratings = read_ratings(csv)
    emit(what="read_ratings 25M csv", peak_rss_mb=round(peak_rss_mb()), process_start_mb=round(base),
         seconds=round(t.seconds, 1), reference_frame_mb=round(ratings.df.memory_usage(deep=True).sum() / 2**20),
         rows=ratings.n_ratings, machine=machine())


def stage_train(csv: Path) -> None:
    base = rss_mb()
    ratings = read_ratings(csv)
    frame_mb = ratings.df.memory_usage(deep=True).sum() / 2**20
    train, valid = split_for_training(ratings, "random", 0.2, 42)  # as the Train page and the CLI split
    del ratings
    with Timer() as t:
        rec = Recommender(TrainConfig(epochs=1, device="cpu")).fit(train, valid)
    emit(what="read + split + train 1 epoch (with validation) on 25M", peak_rss_mb=round(peak_rss_mb()),
         process_start_mb=round(base), seconds=round(t.seconds, 1), reference_frame_mb=round(frame_mb),
         valid_rmse=round(rec.history.epochs[-1]["valid_rmse"], 4), rows=len(train) + len(valid), machine=machine())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-ratings", type=int, default=25_000_000)
    ap.add_argument("--stage", choices=("read", "train"))
    args = ap.parse_args()
    folder = Path(tempfile.gettempdir()) / "cf-bench"
    csv = folder / f"ratings-{args.n_ratings}-dup0.csv"  # bench_read_csv's file without repeated pairs
    if args.stage == "read":
        return stage_read(csv)
    if args.stage == "train":
        return stage_train(csv)
    folder.mkdir(exist_ok=True)
    if not csv.exists():
        make_file(csv, args.n_ratings, 0)
    rows = []
    for stage in ("read", "train"):  # fresh processes: peak memory is per process
        rows += child_rows([sys.executable, __file__, "--stage", stage, "--n-ratings", str(args.n_ratings)])
    save_results("memory-cpu", rows)


if __name__ == "__main__":
    main()
