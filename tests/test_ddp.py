"""Training under torchrun with DistributedDataParallel: 2 CPU ranks (gloo), each a shard of every batch of the same
permutation, train the dot product with biases to the RMSE of one process on the same data and seed."""
import json
import os
import subprocess
import sys
from pathlib import Path

from cf_core.access import LOCAL
from cf_core.datasets import synthetic
from cf_core.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["train", "--optimizer", "adam", "--epochs", "8", "--seed", "3", "--quiet"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--module", "cf_core"]


def _train(prefix: list[str], ratings: Path, out: Path, *extra: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*prefix, *ARGS, "--ratings", str(ratings), "--out", str(out), *extra], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_gloo_ranks_train_like_one_process(tmp_path):
    ratings = tmp_path / "ratings.csv"
    synthetic(n_users=300, n_items=200, n_ratings=20000, n_factors=4, noise=0.3,
              seed=3).ratings.to_csv(ratings, index=False)
    ddp = _train(TORCHRUN, ratings, tmp_path / "ddp")
    one = _train([sys.executable, "-m", "cf_core"], ratings, tmp_path / "one", "--no-fused")
    fused = _train([sys.executable, "-m", "cf_core"], ratings, tmp_path / "fused")
    assert ddp["world_size"] == 2 and one["world_size"] == 1
    assert abs(ddp["valid_rmse"] - one["valid_rmse"]) < 0.005      # the same gradients, averaged across ranks
    assert abs(ddp["valid_rmse"] - fused["valid_rmse"]) < 0.005    # and the single process's default (fused) step
    assert ddp["valid_rmse"] < 0.8 * ddp["valid_baseline_rmse"]    # it learned: well under the mean's RMSE
    assert len(RunStore(tmp_path / "ddp").list_all(LOCAL)) == 1    # rank 0 alone saves the run
    # 16,000 training ratings in batches of 5,333 leave a last batch of 1: too few for 2 ranks (an empty share's MSE
    # is NaN, and the all-reduce spread it to every epoch's training error), so under DDP it waits for the next epoch.
    _train(TORCHRUN, ratings, tmp_path / "odd", "--batch-size", "5333")
    (run,) = RunStore(tmp_path / "odd").list_all(LOCAL)
    epochs = RunStore(tmp_path / "odd").history(run.id, LOCAL)["epochs"]
    assert len(epochs) == 8 and all(0 < e["train_rmse"] < 2 for e in epochs)


def test_torchrun_refuses_gibbs_sampling_in_words(tmp_path):
    ratings = tmp_path / "ratings.csv"
    synthetic(n_users=30, n_items=20, n_ratings=400, n_factors=2, seed=1).ratings.to_csv(ratings, index=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WORLD_SIZE": "2"}
    done = subprocess.run([sys.executable, "-m", "cf_core", "train", "--ratings", str(ratings), "--out", str(tmp_path)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "torchrun trains with a gradient optimizer" in done.stderr
