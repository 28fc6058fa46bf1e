"""DistributedDataParallel on CPU ranks (gloo) against one process: seconds per epoch on the ML-25M-shaped synthetic
set (20M training ratings), the dot product with biases and Adam.

    .venv/bin/python bench/bench_ddp.py [--epochs 2] [--n-ratings 25000000]

Runs the single process twice (our default fused step, and the autograd step DDP uses), then itself under
`torchrun --nproc-per-node 2`. Every way trains the same data with the same seed and reports the median seconds
per epoch and the validation RMSE. On a machine of 2 cores, 2 ranks share the cores that one process had: DDP is for
a job too big or too slow for one GPU, on several GPUs, not for a small CPU box (see README). Prints JSON lines
and writes them to bench/results/ddp-cpu.jsonl (whole).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

import torch
from common import ROOT, child_rows, emit, machine, save_results

from cf_core.config import TrainConfig
from cf_core.recommender import Recommender
from cf_core.train import Callback, distributed


class EpochTimes(Callback):
    def __init__(self):
        self.seconds, self.last = [], 0.0

    def on_epoch_end(self, trainer, info):
        self.seconds.append(info.seconds - self.last)
        self.last = info.seconds


def run(args, fused: bool | None) -> dict | None:
    """Train once (this process, or this rank under torchrun); returns the figures on rank 0."""
    from bench_epoch import load

    train, valid = load("ml25m", args.n_ratings)
    times = EpochTimes()
    cfg = TrainConfig(model="dotbias", optimizer="adam", epochs=args.epochs, seed=1, device="cpu", fused=fused)
    rec = Recommender(cfg).fit(train, valid, [times])
    rank, world = distributed()
    if rank != 0:
        return None
    return emit(bench="ddp", ranks=world, step="fused" if rec.config.fused is not False and world == 1 else "autograd",
                sec_per_epoch=round(statistics.median(times.seconds), 2), epochs=args.epochs,
                valid_rmse=round(rec.history.epochs[-1]["valid_rmse"], 4), n_train=len(train),
                threads_per_rank=torch.get_num_threads(), machine=machine())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--n-ratings", type=int, default=25_000_000)
    ap.add_argument("--rank", action="store_true", help=argparse.SUPPRESS)  # set when torchrun runs this file
    args = ap.parse_args()
    if args.rank:
        torch.distributed.init_process_group("gloo")
        run(args, False)
        torch.distributed.destroy_process_group()
        return
    rows = [run(args, None), run(args, False)]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"}
    rows += child_rows([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", __file__, "--rank",
                        "--epochs", str(args.epochs), "--n-ratings", str(args.n_ratings)], env=env)
    save_results("ddp-cpu", rows)


if __name__ == "__main__":
    main()
