"""The job queue and its workers, against SQLite and a real PostgreSQL server: first come first served, no job taken
twice, owners stop their jobs, a killed worker's job is interrupted and resumes from its checkpoint to the same
result, failures in words."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from cf_core.access import LOCAL, PermissionDenied, Principal
from cf_core.config import TrainConfig
from cf_core.jobs import JobQueue
from cf_core.progress import Progress, ProgressSnapshot
from cf_core.recommender import Recommender
from cf_core.store import RunStore
from cf_core.worker import Worker

ALICE, BOB, ADMIN = Principal("alice"), Principal("bob"), Principal("root", admin=True)
ROOT = Path(__file__).resolve().parents[1]


def _queue(tmp_path, db_url) -> JobQueue:
    return JobQueue(RunStore(tmp_path / "runs", db=db_url))


def _wait(queue, job_id, who=LOCAL, until=("done", "stopped", "failed", "interrupted"), timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        snap = queue.snapshot(job_id, who)
        if snap.status in until:
            return snap
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {snap.status} after {timeout} s")


@pytest.fixture
def worker_thread():
    """Start workers in threads; all are shut down after the test."""
    started = []

    def start(queue, device="cpu"):
        worker = Worker(queue, device, poll=0.05)
        started.append((worker, worker.start_thread()))
        return worker

    yield start
    for worker, thread in started:
        worker.shutdown()
        thread.join(30)


def test_jobs_run_first_come_first_served_report_progress_and_save(tmp_path, db_url, split_planted, worker_thread):
    """Five queued jobs used to start s0, s1, s3, s2, s4 (threads racing for a lock)."""
    train, valid = split_planted
    queue = _queue(tmp_path, db_url)
    ids = [queue.submit(train, valid, TrainConfig(epochs=2, optimizer="adam"), owner=ALICE, name=f"s{i}",
                        dataset="planted").id for i in range(5)]
    assert queue.snapshot(ids[3], ALICE).ahead == 3 and queue.snapshot(ids[0], ALICE).workers == 0
    worker_thread(queue)
    snaps = [_wait(queue, i, ALICE) for i in ids]
    assert [s.status for s in snaps] == ["done"] * 5, [s.error for s in snaps]
    jobs = sorted(queue.jobs(ALICE), key=lambda j: j.started)
    assert [j.name for j in jobs] == ["s0", "s1", "s2", "s3", "s4"]
    first = snaps[0]
    assert len(first.progress.epochs) == 2 and first.progress.batches and first.progress.fraction == 1.0
    assert first.metrics["valid_rmse"] > 0 and first.elapsed > 0
    assert queue.store.info(first.run_id, ALICE).name == "s0"
    assert queue.jobs(BOB) == [] and len(queue.jobs(ADMIN)) == 5
    # A done job's data is removed (its run holds what it needs); the row stays.
    assert not queue.store.fs.exists(queue._dir(ids[0]))


def test_two_workers_never_take_the_same_job(tmp_path, db_url, split_planted, worker_thread):
    train, valid = split_planted
    queue = _queue(tmp_path, db_url)
    ids = {queue.submit(train, valid, TrainConfig(epochs=1, optimizer="adam"), owner=ALICE).id for _ in range(12)}
    claimed: list[str] = []
    barrier = threading.Barrier(4)

    def grab(name):
        other = _queue(tmp_path, db_url)  # its own connections, as another process has
        barrier.wait()
        while (job := other.claim(name, "cpu")) is not None:
            claimed.append(job.id)

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)  # every job once, none twice
    # And two real workers on fresh jobs: one run per job.
    fresh = [queue.submit(train, valid, TrainConfig(epochs=1, optimizer="adam"), owner=ALICE).id for _ in range(6)]
    worker_thread(queue), worker_thread(_queue(tmp_path, db_url))
    runs = [_wait(queue, i, ALICE).run_id for i in fresh]
    assert len(set(runs)) == 6 and len(queue.store.list(ALICE)) == 6


def test_the_owner_stops_a_job_and_nobody_else_can(tmp_path, db_url, split_planted, worker_thread):
    train, valid = split_planted
    queue = _queue(tmp_path, db_url)
    long = queue.submit(train, valid, TrainConfig(epochs=400, batch_size=64, optimizer="adam"), owner=ALICE)
    waiting = queue.submit(train, valid, TrainConfig(epochs=1), owner=ALICE)
    worker_thread(queue)
    _wait(queue, long.id, ALICE, until=("running",))
    while not queue.snapshot(long.id, ALICE).progress.epochs:
        time.sleep(0.05)
    for act in (lambda: queue.stop(long.id, BOB), lambda: queue.snapshot(long.id, BOB),
                lambda: queue.resume(long.id, BOB)):
        with pytest.raises(PermissionDenied):
            act()
    assert queue.snapshot(long.id, ALICE).status == "running"
    queue.stop(waiting.id, ALICE)  # a queued job leaves the queue at once, never trained
    assert queue.snapshot(waiting.id, ALICE).status == "stopped"
    queue.stop(long.id, ALICE)
    snap = _wait(queue, long.id, ALICE)
    assert snap.status == "stopped" and snap.run_id and 1 <= len(snap.progress.epochs) < 400
    assert queue.store.info(snap.run_id, ALICE).owner == "alice"
    assert queue.snapshot(waiting.id, ALICE).run_id is None
    with pytest.raises(KeyError):
        queue.stop("no-such-job-at-all", ALICE)


def test_a_killed_workers_job_is_interrupted_and_resumes_to_the_same_rmse(tmp_path, db_url, split_planted,
                                                                          worker_thread, monkeypatch):
    """SIGKILL the worker process mid-training: the job is marked interrupted once its heartbeats stop, and resumed
    from its checkpoint it ends where an uninterrupted run of the same seed ends."""
    train, valid = split_planted
    monkeypatch.setenv("COLLAB_STUDIO_HEARTBEAT_TIMEOUT", "3")
    queue = _queue(tmp_path, db_url)
    config = TrainConfig(model="dotbias", optimizer="adam", epochs=40, batch_size=32, seed=5)
    job = queue.submit(train, valid, config, owner=ALICE, name="long")
    env = {**os.environ, "COLLAB_STUDIO_CHECKPOINT_EPOCHS": "3", "COLLAB_STUDIO_CHECKPOINT_SECONDS": "0",
           "COLLAB_STUDIO_DB": db_url, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "cf_core", "worker", "--device", "cpu", "--out", str(tmp_path / "runs")]
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while (queue.snapshot(job.id, ALICE).progress.checkpoint_epoch or 0) < 6:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.time() < deadline, "no checkpoint after epoch 6"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    at_kill = queue.snapshot(job.id, ALICE)
    assert at_kill.status == "running" and len(at_kill.progress.epochs) < 40
    snap = _wait(queue, job.id, ALICE, until=("interrupted",), timeout=30)
    assert snap.can_resume and "stopped answering" in snap.error
    queue.resume(job.id, ALICE, "resume")
    assert queue.snapshot(job.id, ALICE).status == "queued"
    worker_thread(queue)
    done = _wait(queue, job.id, ALICE)
    assert done.status == "done", done.error
    assert done.progress.resumed_from >= 6  # it went on from the checkpoint, not from the start
    assert [e["epoch"] for e in done.progress.epochs] == list(range(1, 41))  # each epoch once: the resume rewound
    reference = Recommender(config.replace(device="cpu")).fit(train, valid).evaluate(valid)["rmse"]
    assert abs(done.metrics["valid_rmse"] - reference) < 0.005
    assert done.metrics["valid_rmse"] < done.metrics["valid_baseline_rmse"]


def _shut_down_after_a_checkpoint(tmp_path, train, valid, worker_thread, monkeypatch):
    """A long job whose worker is shut down (what SIGTERM does) once it has a checkpoint: (queue, job, its snapshot,
    interrupted and resumable)."""
    monkeypatch.setenv("COLLAB_STUDIO_CHECKPOINT_EPOCHS", "2")
    monkeypatch.setenv("COLLAB_STUDIO_CHECKPOINT_SECONDS", "0")
    queue = _queue(tmp_path, str(tmp_path / "db.sqlite"))
    job = queue.submit(train, valid, TrainConfig(optimizer="adam", epochs=400, batch_size=64), owner=ALICE)
    worker = worker_thread(queue)
    while (queue.snapshot(job.id, ALICE).progress.checkpoint_epoch or 0) < 2:
        time.sleep(0.05)
    worker.shutdown()
    return queue, job, _wait(queue, job.id, ALICE, until=("interrupted",))


def test_an_interrupted_job_restarts_or_keeps_its_best_model(tmp_path, split_planted, worker_thread, monkeypatch):
    train, valid = split_planted
    queue, job, snap = _shut_down_after_a_checkpoint(tmp_path, train, valid, worker_thread, monkeypatch)
    assert "shut down" in snap.error and snap.can_resume
    with pytest.raises(ValueError, match="Only an interrupted or failed job"):
        queue.resume(_wait(queue, queue.submit(train, valid, TrainConfig(epochs=1), owner=ALICE).id, ALICE,
                           until=("queued",)).id, ALICE)
    queue.resume(job.id, ALICE, "keep")
    worker_thread(queue)
    kept = _wait(queue, job.id, ALICE, until=("stopped", "done", "failed"))
    assert kept.status == "stopped" and kept.run_id, kept.error
    # none trained after it
    assert kept.progress.resumed_from >= 2 and len(kept.progress.epochs) == kept.progress.resumed_from


def test_a_failed_job_says_why_and_a_diverged_one_saves_nothing(tmp_path, split_planted, worker_thread):
    train, valid = split_planted
    queue = _queue(tmp_path, str(tmp_path / "db.sqlite"))
    worker_thread(queue)
    bad = queue.submit(pd.DataFrame({"user": [1], "item": [1]}), None, TrainConfig(epochs=1), owner=LOCAL)
    snap = _wait(queue, bad.id)
    assert snap.status == "failed" and "rating" in snap.error
    huge_lr = TrainConfig(epochs=3, optimizer="sgd", lr=1e12, use_y_range=False)
    diverged = queue.submit(train, valid, huge_lr, owner=LOCAL)
    snap = _wait(queue, diverged.id)
    assert snap.status == "failed" and snap.error.startswith("Training diverged")
    assert "smaller learning rate" in snap.error
    assert snap.run_id is None and queue.store.list_all(LOCAL) == []
    with pytest.raises(PermissionDenied, match="Sign in"):
        queue.submit(train, valid, TrainConfig(epochs=1), owner=Principal(""))


def test_auto_jobs_go_to_a_gpu_worker_when_one_is_alive(tmp_path, split_planted):
    train, valid = split_planted
    queue = _queue(tmp_path, str(tmp_path / "db.sqlite"))
    auto = queue.submit(train, valid, TrainConfig(epochs=1), owner=ALICE)
    cpu = queue.submit(train, valid, TrainConfig(epochs=1, device="cpu"), owner=ALICE)
    queue.register_worker("gpu-box", "cuda:0")
    assert queue.claim("cpu-box", "cpu").id == cpu.id  # auto waits for the GPU worker
    assert queue.claim("cpu-box", "cpu") is None
    assert queue.claim("gpu-box", "cuda").id == auto.id


def test_progress_thins_batch_points():
    from cf_core.train import BatchInfo

    p = Progress()
    for step in range(1, 10_001):
        p.add_batch(BatchInfo(step, 10_000, step / 100, 1.0, 1.0, 0.1))
    snap = p.snapshot()
    assert 500 <= len(snap.batches) <= 2000 and snap.step == 10_000  # thinned, never emptied
    assert snap.batches[-1][0] > 90  # and still reaching the latest epochs


def test_a_progress_report_keeps_its_json_keys_and_a_row_written_before_newer_keys_still_reads(tmp_path):
    """The row's JSON has the keys it always had, and reads back to the same snapshot; a row written before
    optimizer, pretrain, resumed_from and stride existed reads with their defaults, not a KeyError on the page."""
    from cf_core.train import BatchInfo

    p = Progress()
    p.update(n_epochs=3, optimizer="adam", pretrain=(2, 5), device="cpu")
    p.add_batch(BatchInfo(6, 30, 0.6, 1.3, 1.2, 0.01))
    row = json.loads(json.dumps(p.snapshot().to_dict()))
    assert list(row) == ["step", "total_steps", "epoch", "n_epochs", "batches", "epochs", "eta", "device", "fraction",
                         "optimizer", "pretrain", "checkpoint_epoch", "resumed_from", "stride"]
    assert row["batches"] == [[0.6, 1.2, 0.01]] and row["pretrain"] == [2, 5] and row["fraction"] == 0.2
    assert ProgressSnapshot.from_dict(row) == p.snapshot()  # tuples again where the JSON has lists

    old = {"step": 4, "total_steps": 8, "epoch": 1.0, "n_epochs": 2, "batches": [[0.5, 1.3, 0.01]],
           "epochs": [{"epoch": 1, "train_rmse": 1.0}], "eta": 3.0, "device": "cpu", "fraction": 0.5,
           "checkpoint_epoch": None, "a_key_from_a_later_version": 1}
    queue = _queue(tmp_path, str(tmp_path / "db.sqlite"))
    job = queue.submit(pd.DataFrame({"user": [1], "item": [1], "rating": [3.0]}), None, TrainConfig(epochs=2),
                       owner=ALICE)
    with queue._connect() as con:
        con.execute("UPDATE jobs SET status='running', worker='w', heartbeat=?, started=?, progress=? WHERE id=?",
                    (time.time(), time.time() - 2, json.dumps(old), job.id))
    snap = queue.snapshot(job.id, ALICE)
    assert snap.status == "running" and snap.elapsed == pytest.approx(2, abs=0.5)
    assert snap.progress.batches == [(0.5, 1.3, 0.01)] and snap.progress.eta == 3.0 and snap.progress.fraction == 0.5
    assert snap.progress.epochs == [{"epoch": 1, "train_rmse": 1.0}]
    assert (snap.progress.optimizer, snap.progress.pretrain, snap.progress.resumed_from, snap.progress.stride) == (
        "", None, None, 1)


def test_the_eta_counts_from_the_work_of_the_phase_not_the_jobs_wall_time(monkeypatch):
    """The net's first ETA said 1,450 s for a job that ended 55 s later: 20 s of preparing and pretraining were
    counted as the first 1% of training."""
    from cf_core import progress
    from cf_core.train import BatchInfo

    now = [1000.0]
    monkeypatch.setattr(progress.time, "time", lambda: now[0])
    p = Progress()
    now[0] += 10  # preparing the data
    p.start_phase(pretrain=(1, 100))
    now[0] += 2
    p.update(pretrain=(50, 100))
    assert p.snapshot().eta == pytest.approx(2.0)  # half the sweeps in 2 s: 2 s to go
    now[0] += 8
    p.start_phase(n_epochs=10, pretrain=None)
    now[0] += 1
    p.add_batch(BatchInfo(10, 1000, 0.1, 1.0, 1.0, 0.1))
    assert p.snapshot().eta == pytest.approx(99.0)  # 1% in 1 s (not 21 s since the start: 2,079 s)


def test_a_slow_save_is_not_taken_for_a_dead_worker(tmp_path, split_planted, worker_thread, monkeypatch):
    """The heartbeats used to stop before the evaluation and the save: a save slower than the timeout (a big model
    to S3) got the job marked interrupted and its run deleted."""
    train, valid = split_planted
    monkeypatch.setenv("COLLAB_STUDIO_HEARTBEAT_TIMEOUT", "2")
    queue = _queue(tmp_path, str(tmp_path / "db.sqlite"))
    real = queue.store.save
    monkeypatch.setattr(queue.store, "save", lambda *a, **k: (time.sleep(4), real(*a, **k))[1])
    job = queue.submit(train, valid, TrainConfig(epochs=2, optimizer="adam"), owner=ALICE)
    worker_thread(queue)
    snap = _wait(queue, job.id, ALICE)
    assert snap.status == "done" and queue.store.info(snap.run_id, ALICE)


def test_a_damaged_checkpoint_fails_the_resume_in_words_and_the_worker_goes_on(tmp_path, split_planted, worker_thread,
                                                                                monkeypatch):
    train, valid = split_planted
    queue, job, _ = _shut_down_after_a_checkpoint(tmp_path, train, valid, worker_thread, monkeypatch)
    (weights,) = Path(queue._dir(job.id)).glob("checkpoint-*.safetensors")
    whole = weights.read_bytes()
    weights.write_bytes(whole[:100])  # truncated: safetensors' own error, not an OSError
    queue.resume(job.id, ALICE, "resume")
    after = queue.submit(train, valid, TrainConfig(epochs=1), owner=ALICE)
    worker_thread(queue)
    snap = _wait(queue, job.id, ALICE)
    assert snap.status == "failed" and "checkpoint cannot be read" in snap.error
    assert _wait(queue, after.id, ALICE).status == "done"  # the worker survived and took the next job
    # JSON of the wrong shape in the checkpoint's progress: unreadable too, not a TypeError out of the queue
    weights.write_bytes(whole)
    assert queue.load_checkpoint(job.id) is not None
    ckpt = Path(queue._dir(job.id)) / "checkpoint.json"
    saved = json.loads(ckpt.read_text())
    ckpt.write_text(json.dumps({**saved, "progress": {**saved["progress"], "pretrain": 5}}))
    assert queue.load_checkpoint(job.id) is None
