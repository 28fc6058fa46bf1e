"""Seconds per training epoch, ours beside the reference ways, on MovieLens 100k or an ML-25M-shaped set.

    .venv/bin/python bench/bench_epoch.py --data ml100k [--model dotbias|nn] [--device auto]
    .venv/bin/python bench/bench_epoch.py --data ml25m  [--model dotbias|nn] [--device auto] [--n-ratings 25000000]

Each way runs --epochs epochs (the median is reported) in the same process, so the ratio holds on a noisy
machine. The ways:
- ours: the Recommender's training loop with its defaults (the fused row-wise step where it applies);
- on-device dense: all data as tensors, randperm slices, batch 65,536, a dense torch Adam step (the "simple
  on-device way" of the issue);
- fastai-style: a torch DataLoader over the tensors, batch 64, Adam; timed on --dl-batches batches and
  extrapolated to the epoch (running it whole would take hours).
ml25m is synthetic with MovieLens 25M's shape: 162,541 users, 59,047 items, 25M ratings, 80% for training.
Prints JSON lines and writes them to bench/results/epoch-<data>[-nn]-{cpu,gpu}.jsonl (whole).
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch
from common import Timer, device_kind, emit, machine, ml100k, peak_rss_mb, save_results

from cf_core.config import TrainConfig
from cf_core.datasets import synthetic
from cf_core.recommender import Recommender
from cf_core.splits import random_split
from cf_core.train import Callback, pick_device


class EpochTimes(Callback):
    """Wall time of each epoch, synchronised on the GPU."""

    def __init__(self, device):
        self.device, self.times, self.t0 = device, [], None

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def on_fit_start(self, trainer):
        self._sync()
        self.t0 = time.perf_counter()

    def on_epoch_end(self, trainer, info):
        self._sync()
        now = time.perf_counter()
        self.times.append(now - self.t0)
        self.t0 = now


def load(name: str, n_ratings: int):
    if name == "ml100k":
        ratings, _ = ml100k()
        return random_split(ratings[["user", "item", "rating"]], 0.2, 42)
    data = synthetic(n_users=162_541, n_items=59_047, n_ratings=n_ratings, n_factors=16, noise=0.5, seed=0)
    df = data.ratings[["user", "item", "rating"]]
    del data
    return random_split(df, 0.2, 42)


def ours(train, device, epochs, model):
    # Time the loop alone: validation runs once at the end (the callback sees no eval cost).
    # The optimizer loop, not the Bayesian fit.
    cfg = TrainConfig(model=model, optimizer="adam", epochs=epochs, device=str(device))
    timer = EpochTimes(device)
    rec = Recommender(cfg).fit(train, None, [timer])
    return rec, timer.times


def dense_reference(train, valid, rec, device, epochs, batch_size=65_536):
    """The simple on-device way: same model and data, a dense Adam step over the whole tables each batch."""
    from cf_core.models import DotProductBias

    cfg = rec.config
    u = torch.from_numpy(rec.user_map.encode(train["user"].to_numpy())).to(device)
    i = torch.from_numpy(rec.item_map.encode(train["item"].to_numpy())).to(device)
    r = torch.tensor(train["rating"].to_numpy(np.float32), device=device)
    torch.manual_seed(0)
    m = DotProductBias(rec.n_users, rec.n_items, cfg.n_factors, cfg.y_range, cfg.init_std, rec.global_mean).to(device)
    opt = torch.optim.AdamW(m.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=0.0,
                            fused=device.type == "cuda" or None)
    n, times = len(r), []
    total = epochs * math.ceil(n / batch_size)
    step = 0
    for _ in range(epochs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=device)
        for b in range(0, n, batch_size):
            idx = perm[b:b + batch_size]
            uu, ii = u[idx], i[idx]
            for g in opt.param_groups:  # the same one-cycle-like cosine decay, for a fair quality comparison
                g["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = (m(uu, ii) - r[idx]).pow(2).mean() + cfg.wd * m.penalty(uu, ii)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    vu = rec.user_map.encode(valid["user"].to_numpy(), "ignore")
    vi = rec.item_map.encode(valid["item"].to_numpy(), "ignore")
    warm = (vu >= 0) & (vi >= 0)
    vu, vi, chunk = torch.from_numpy(vu[warm]), torch.from_numpy(vi[warm]), 1 << 18
    with torch.no_grad():
        m.eval()
        pred = torch.cat([m(vu[s:s + chunk].to(device), vi[s:s + chunk].to(device))
                          for s in range(0, len(vu), chunk)]).clamp(*rec.rating_scale).cpu().numpy()
    rmse = float(np.sqrt(((pred - valid["rating"].to_numpy()[warm]) ** 2).mean()))
    return times, rmse


def fastai_style(train, rec, device, n_batches):
    """A DataLoader over the tensors with batch 64 and Adam: the per-batch cost, extrapolated to an epoch."""
    from torch.utils.data import DataLoader, TensorDataset

    from cf_core.models import DotProductBias

    cfg = rec.config
    ds = TensorDataset(torch.from_numpy(rec.user_map.encode(train["user"].to_numpy())),
                       torch.from_numpy(rec.item_map.encode(train["item"].to_numpy())),
                       torch.tensor(train["rating"].to_numpy(np.float32)))
    dl = DataLoader(ds, batch_size=64, shuffle=True)
    m = DotProductBias(rec.n_users, rec.n_items, cfg.n_factors, cfg.y_range, cfg.init_std, rec.global_mean).to(device)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    it = iter(dl)
    n_batches = min(n_batches, len(dl))  # at most one pass
    t0 = time.perf_counter()
    for _ in range(n_batches):
        u, i, r = (x.to(device) for x in next(it))
        loss = (m(u, i) - r).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n_batches * math.ceil(len(ds) / 64), n_batches


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", choices=("ml100k", "ml25m"), default="ml100k")
    ap.add_argument("--n-ratings", type=int, default=25_000_000)
    ap.add_argument("--model", choices=("dotbias", "nn"), default="dotbias")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--dl-batches", type=int, default=2000)
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args()
    device = pick_device(args.device)
    with Timer() as t_load:
        train, valid = load(args.data, args.n_ratings)
    where = {"data": args.data, "n_train": len(train), "device": str(device), "machine": machine()}
    rows = [emit(what="load data", seconds=round(t_load.seconds, 2), **where)]
    rec, times = ours(train, device, args.epochs, args.model)
    valid_rmse = rec.evaluate(valid)["rmse"]
    from cf_core.fused import use_fused
    rows.append(emit(what=f"ours {args.model}", sec_per_epoch=round(statistics.median(times), 4), epochs=len(times),
                     valid_rmse=round(valid_rmse, 4), batch_size=rec.config.batch_size,
                     n_factors=rec.config.n_factors, fused=use_fused(rec.model, rec.config),
                     peak_rss_mb=round(peak_rss_mb()),
                     peak_gpu_mb=round(torch.cuda.max_memory_allocated() / 2**20) if device.type == "cuda" else None,
                     **where))
    if not args.skip_reference and args.model == "dotbias":
        times_ref, rmse_ref = dense_reference(train, valid, rec, device, args.epochs)
        rows.append(emit(what="reference: on-device dense Adam, batch 65536",
                         sec_per_epoch=round(statistics.median(times_ref), 4), epochs=len(times_ref),
                         valid_rmse=round(rmse_ref, 4), **where))
        seconds, timed = fastai_style(train, rec, device, args.dl_batches)
        rows.append(emit(what="reference: fastai-style DataLoader, batch 64 (extrapolated)",
                         sec_per_epoch=round(seconds, 2), timed_batches=timed, **where))
    model = "" if args.model == "dotbias" else f"-{args.model}"
    save_results(f"epoch-{args.data}{model}-{device_kind(device)}", rows)


if __name__ == "__main__":
    main()
