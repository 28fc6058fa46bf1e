import pytest
import time

from cf_core.access import LOCAL, Principal
from cf_core.config import TrainConfig
from cf_core.jobs import JobManager, Progress
from cf_core.store import RunStore


def _wait(job, timeout=60):
    t0 = time.time()
    while job.active and time.time() - t0 < timeout:
        time.sleep(0.05)
    return job.progress.snapshot()


def test_job_runs_in_background_reports_progress_and_saves(tmp_path, split_planted):
    train, valid = split_planted
    mgr = JobManager(RunStore(tmp_path))
    job = mgr.submit(train, valid, TrainConfig(epochs=3), owner=Principal("alice"), name="j1", dataset="planted")
    snap = _wait(job)
    assert snap["status"] == "done", snap["error"]
    assert len(snap["epochs"]) == 3 and snap["batches"] and snap["fraction"] == 1.0
    assert snap["metrics"]["valid_rmse"] > 0
    assert RunStore(tmp_path).info(snap["run_id"], Principal("alice")).name == "j1"
    assert mgr.jobs(Principal("alice")) == [job] and mgr.jobs(Principal("bob")) == []


def test_stop_keeps_best_so_far_and_queue_runs_one_at_a_time(tmp_path, split_planted):
    train, valid = split_planted
    mgr = JobManager(RunStore(tmp_path))
    first = mgr.submit(train, valid, TrainConfig(epochs=400, batch_size=64, optimizer="adam"), owner=Principal("a"))
    second = mgr.submit(train, valid, TrainConfig(epochs=1), owner=Principal("b"))
    t0 = time.time()
    while not first.progress.snapshot()["epochs"] and time.time() - t0 < 60:
        time.sleep(0.02)
    assert second.progress.snapshot()["status"] == "queued"  # waits for the device
    first.stop()
    s1, s2 = _wait(first), _wait(second)
    assert s1["status"] == "stopped" and s1["run_id"] and len(s1["epochs"]) < 400
    assert s2["status"] == "done"


def test_failed_job_reports_error(tmp_path):
    import pandas as pd

    mgr = JobManager(RunStore(tmp_path))
    job = mgr.submit(pd.DataFrame({"user": [1], "item": [1]}), None, TrainConfig(epochs=1), owner=LOCAL)
    snap = _wait(job)
    assert snap["status"] == "failed" and "rating" in snap["error"]


def test_progress_thins_batch_points():
    from cf_core.train import BatchInfo

    p = Progress()
    for step in range(1, 10_001):
        p.add_batch(BatchInfo(step, 10_000, step / 100, 1.0, 1.0, 0.1))
    snap = p.snapshot()
    assert len(snap["batches"]) <= 2000 and snap["step"] == 10_000


def test_a_diverged_fit_fails_in_words_and_saves_nothing(tmp_path, split_planted):
    """SGD at a huge rate: the weights become NaN or inf. It used to be saved as a run (RMSE inf or NaN)."""
    train, valid = split_planted
    store = RunStore(tmp_path)
    mgr = JobManager(store)
    job = mgr.submit(train, valid, TrainConfig(epochs=3, optimizer="sgd", lr=1e12, use_y_range=False), owner=LOCAL)
    snap = _wait(job)
    assert snap["status"] == "failed" and snap["error"].startswith("Training diverged") and "smaller learning rate" in snap["error"]
    assert snap["run_id"] is None and store.list_all(LOCAL) == []


def test_the_eta_counts_from_the_work_of_the_phase_not_the_jobs_wall_time(monkeypatch):
    """The net's first ETA said 1,450 s for a job that ended 55 s later: 20 s of preparing and pretraining were
    counted as the first 1% of training."""
    from cf_core import jobs
    from cf_core.train import BatchInfo

    now = [1000.0]
    monkeypatch.setattr(jobs.time, "time", lambda: now[0])
    p = Progress()
    p.update(status="running", started=now[0])
    now[0] += 10  # preparing the data
    p.start_phase(pretrain=(1, 100))
    now[0] += 2
    p.update(pretrain=(50, 100))
    assert p.snapshot()["eta"] == pytest.approx(2.0)  # half the sweeps in 2 s: 2 s to go
    now[0] += 8
    p.start_phase(n_epochs=10, pretrain=None)
    now[0] += 1
    p.add_batch(BatchInfo(10, 1000, 0.1, 1.0, 1.0, 0.1))
    assert p.snapshot()["eta"] == pytest.approx(99.0)  # 1% in 1 s (not 21 s since the start: 2,079 s)
