"""Background training jobs: a worker thread per job, a thread-safe progress object, cancel, and a queue.

The dashboard (or any caller) submits a job and polls its progress snapshot; workers never touch the UI.
Jobs on the same device run one at a time (a GPU is not shared between two trainings fighting for memory),
others wait with status "queued". A finished or stopped job saves its run to the store under the job's owner.
Every job has an owner: only the owner (or an admin) may see its progress or stop it; the manager enforces this,
whatever page asks.
"""
from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .access import PermissionDenied, Principal, require_owner
from .config import TrainConfig
from .recommender import Recommender, TrainingDiverged, check_finite
from .store import RunStore, new_id
from .train import BatchInfo, Callback, EpochInfo, Trainer, pick_device

# How many batch points the live loss curve keeps at most (older points are thinned, not dropped).
MAX_BATCH_POINTS = 2000


class Progress:
    """What a running job has done so far; every method takes the lock, so any thread may call it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.status = "queued"          # queued, running, done, stopped, failed
        self.error: str | None = None
        self.step = self.total_steps = 0
        self.epoch = 0.0
        self.n_epochs = 0
        self.batches: list[tuple[float, float, float]] = []   # (epoch, smoothed loss, lr)
        self.epochs: list[dict] = []
        self.started: float | None = None
        self.finished: float | None = None
        self.run_id: str | None = None
        self.metrics: dict = {}
        self.device = ""
        self.optimizer = ""             # the resolved optimizer ("gibbs": epochs are sweeps, the loss is each sample's)
        self.pretrain: tuple[int, int] | None = None  # (sweep, sweeps) of the net's pretraining fit, while it runs
        self._stride = 1
        self._phase_started: float | None = None  # when the current phase (pretraining, or training) began

    def update(self, **fields: Any) -> None:
        with self._lock:
            for k, v in fields.items():
                setattr(self, k, v)

    def add_batch(self, info: BatchInfo) -> None:
        with self._lock:
            self.step, self.total_steps, self.epoch = info.step, info.total_steps, info.epoch
            if info.step % self._stride == 0:
                self.batches.append((info.epoch, info.smooth_loss, info.lr))
                if len(self.batches) > MAX_BATCH_POINTS:  # keep every other point and record half as often
                    self.batches = self.batches[::2]
                    self._stride *= 2

    def start_phase(self, **fields: Any) -> None:
        """A new phase (the net's pretraining fit, then the training itself): ETAs count from now."""
        with self._lock:
            self._phase_started = time.time()
            for k, v in fields.items():
                setattr(self, k, v)

    def add_epoch(self, info: EpochInfo) -> None:
        with self._lock:
            self.epochs.append(vars(info).copy())

    def snapshot(self) -> dict:
        """A consistent copy of everything, with elapsed seconds and an ETA."""
        with self._lock:
            now = time.time()
            elapsed = (self.finished or now) - self.started if self.started else 0.0
            frac = self.step / self.total_steps if self.total_steps else 0.0
            # From the work done in this phase, not the job's wall time: preparing the data and the net's Bayesian
            # start would otherwise count as training (the net's first ETA said 1,450 s for a job that took 55).
            done = self.pretrain[0] / self.pretrain[1] if self.pretrain else (frac if self.total_steps else 0.0)
            spent = now - self._phase_started if self._phase_started else 0.0
            eta = spent * (1 - done) / done if self.status == "running" and done > 0 and spent > 0 else None
            return {"status": self.status, "error": self.error, "step": self.step, "total_steps": self.total_steps,
                    "epoch": self.epoch, "n_epochs": self.n_epochs, "batches": list(self.batches),
                    "epochs": [dict(e) for e in self.epochs], "elapsed": elapsed, "eta": eta, "run_id": self.run_id,
                    "metrics": dict(self.metrics), "device": self.device, "fraction": frac, "optimizer": self.optimizer,
                    "pretrain": self.pretrain}


class ProgressCallback(Callback):
    """Feeds a `Progress` from the training loop."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def on_pretrain(self, trainer: Trainer, sweep: int, sweeps: int) -> None:
        if sweep == 1:
            self.progress.start_phase(pretrain=(sweep, sweeps))
        else:
            self.progress.update(pretrain=(sweep, sweeps))

    def on_fit_start(self, trainer: Trainer) -> None:
        self.progress.start_phase(n_epochs=trainer.cfg.epochs, optimizer=trainer.cfg.optimizer, pretrain=None)

    def on_batch_end(self, trainer: Trainer, info: BatchInfo) -> None:
        self.progress.add_batch(info)

    def on_epoch_end(self, trainer: Trainer, info: EpochInfo) -> None:
        self.progress.add_epoch(info)


@dataclass
class Job:
    """One training job."""

    id: str
    owner: str
    name: str
    config: TrainConfig
    progress: Progress = field(default_factory=Progress)
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def stop(self) -> None:
        """Ask the loop to stop after the current batch; the best-so-far model is kept and saved."""
        self.cancel.set()

    @property
    def active(self) -> bool:
        return self.progress.status in ("queued", "running")


class JobManager:
    """Starts jobs in worker threads; one job at a time per device."""

    def __init__(self, store: RunStore):
        self.store = store
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._device_locks: dict[str, threading.Lock] = {}

    def _device_lock(self, device: str) -> threading.Lock:
        with self._lock:
            return self._device_locks.setdefault(device, threading.Lock())

    def submit(self, train: pd.DataFrame, valid: pd.DataFrame | None, config: TrainConfig, *, owner: Principal,
               name: str = "", dataset: str = "", items: pd.DataFrame | None = None) -> Job:
        """Queue a training job owned by `owner` (a signed-in principal) and return at once."""
        if not owner.signed_in:
            raise PermissionDenied("Sign in to train a model.")
        config.validate()
        job = Job(new_id(16), owner.name, name or config.model, config)
        job.thread = threading.Thread(target=self._work, args=(job, train, valid, dataset, items), daemon=True,
                                      name=f"train-{job.id}")
        with self._lock:
            self._jobs[job.id] = job
        job.thread.start()
        return job

    def _work(self, job: Job, train: pd.DataFrame, valid: pd.DataFrame | None, dataset: str, items: pd.DataFrame | None) -> None:
        progress = job.progress
        try:
            device = str(pick_device(job.config.device))
            progress.update(device=device)
            with self._device_lock(device.split(":")[0] if device.startswith("cuda") else "cpu"):
                if job.cancel.is_set():
                    progress.update(status="stopped", finished=time.time())
                    return
                progress.update(status="running", started=time.time())
                rec = Recommender(job.config).fit(train, valid, [ProgressCallback(progress)], job.cancel)
                metrics = rec.evaluate(valid) if valid is not None and len(valid) else {}
                check_finite(rec, metrics)  # a diverged fit fails the job; it is never saved as a run
                metrics = {f"valid_{k}": v for k, v in metrics.items()}
                metrics.update(train_seconds=rec.history.seconds, epochs=len(rec.history.epochs),
                               best_epoch=rec.history.best_epoch, device=device)
                run_id = self.store.save(rec, owner=job.owner, name=job.name, dataset=dataset, metrics=metrics, items=items, valid=valid,
                                         train=train[["user", "item", "rating"]])
            progress.update(status="stopped" if rec.history.cancelled else "done", run_id=run_id, metrics=metrics,
                            finished=time.time())
        except TrainingDiverged as exc:
            progress.update(status="failed", error=str(exc)[0].upper() + str(exc)[1:], finished=time.time())
        except Exception as exc:  # the page shows the message; the server keeps running
            progress.update(status="failed", error=f"{type(exc).__name__}: {exc}", finished=time.time())
            traceback.print_exc()

    def get(self, job_id: str, who: Principal) -> Job | None:
        """The job, or None when this server does not know it; PermissionDenied when it is not `who`'s."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            require_owner(who, job.owner, "see this training job")
        return job

    def snapshot(self, job_id: str, who: Principal) -> dict:
        """The job's progress (owner or admin only); KeyError for an unknown job."""
        job = self.get(job_id, who)
        if job is None:
            raise KeyError(job_id)
        return job.progress.snapshot()

    def stop(self, job_id: str, who: Principal) -> None:
        """Ask a job to stop after its current batch (owner or admin only); the best model so far is saved."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(job_id)
        require_owner(who, job.owner, "stop this training job")
        job.stop()

    def jobs(self, who: Principal) -> list[Job]:
        """The jobs `who` owns (an admin: everyone's), oldest first."""
        with self._lock:
            return [j for j in self._jobs.values() if who.owns(j.owner)]
