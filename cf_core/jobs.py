"""Training jobs: a queue in the store's database, run by worker processes (`python -m cf_core worker`).

A job is a row (who, when, the settings, where its data is, its status and progress); its data is written once as
Parquet beside the runs, where any worker reads it. A worker takes the oldest queued job for its device (first come,
first served), trains it, and every second writes its progress and a heartbeat to the row and reads whether its
owner asked it to stop. The web pages only read rows, so any page of any server replica shows any job, and a web
server that restarts changes nothing for a training. Every few epochs the worker saves a checkpoint (the whole
state of the fit); a job whose worker stops heartbeating (killed, its machine gone) is marked interrupted and can be
resumed from its checkpoint, restarted, or turned into a run from the best epoch it reached.

Statuses: queued, running, done, stopped (its owner stopped it: the best model so far is a run), failed,
interrupted. Only a job's owner (or an admin) may see its progress, stop, resume or restart it; the queue enforces
this, whatever page asks.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from .access import PermissionDenied, Principal, require_owner
from .config import TooCostly, TrainConfig
from .recommender import Recommender, TrainingDiverged, check_finite
from .store import RUN_ID, RunStore, new_id
from .train import BatchInfo, Callback, Checkpoint, EpochInfo, Trainer, pick_device

# How many batch points the live loss curve keeps at most (older points are thinned, not dropped).
MAX_BATCH_POINTS = 2000
ACTIVE = ("queued", "running")
HEARTBEAT_SECONDS = 1.0   # how often a worker writes progress and reads the stop request


def heartbeat_timeout() -> float:
    """Seconds without a heartbeat after which a running job counts as interrupted ($COLLAB_STUDIO_HEARTBEAT_TIMEOUT).
    Machines that share a queue need clocks in step (NTP): heartbeats carry the worker's time."""
    return float(os.environ.get("COLLAB_STUDIO_HEARTBEAT_TIMEOUT", "30"))


def checkpoint_epochs() -> int:
    """A checkpoint every this many epochs ($COLLAB_STUDIO_CHECKPOINT_EPOCHS; Gibbs sweeps: five times as many)..."""
    return max(1, int(os.environ.get("COLLAB_STUDIO_CHECKPOINT_EPOCHS", "5")))


def checkpoint_seconds() -> float:
    """...and at least this many seconds apart ($COLLAB_STUDIO_CHECKPOINT_SECONDS): epochs of small data take
    milliseconds, and a checkpoint of them every few epochs cost more than the training."""
    return float(os.environ.get("COLLAB_STUDIO_CHECKPOINT_SECONDS", "20"))


class Progress:
    """What a running job has done so far; every method takes the lock, so any thread may call it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.step = self.total_steps = 0
        self.epoch = 0.0
        self.n_epochs = 0
        self.batches: list[tuple[float, float, float]] = []   # (epoch, smoothed loss, lr)
        self.epochs: list[dict] = []
        self.device = ""
        self.optimizer = ""             # the resolved optimizer ("gibbs": epochs are sweeps, the loss is each sample's)
        self.pretrain: tuple[int, int] | None = None  # (sweep, sweeps) of the net's pretraining fit, while it runs
        self.checkpoint_epoch: int | None = None
        self.resumed_from: int | None = None  # the checkpoint's epoch this run went on from
        self._stride = 1
        self._phase_started: float | None = None  # when the current phase (pretraining, or training) began
        self._phase_offset = 0.0  # work of this phase done before a resume (so its ETA counts only what runs now)

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
            self._phase_offset = self.step / self.total_steps if self.total_steps and "pretrain" not in fields else 0.0
            for k, v in fields.items():
                setattr(self, k, v)

    def add_epoch(self, info: EpochInfo) -> None:
        with self._lock:
            self.epochs.append(vars(info).copy())

    def to_dict(self, now: float | None = None) -> dict:
        """A consistent copy for the job's row, with an ETA from the work done in this phase."""
        with self._lock:
            now = now or time.time()
            frac = self.step / self.total_steps if self.total_steps else 0.0
            # From the work done in this phase, not the job's wall time: preparing the data and the net's Bayesian
            # start would otherwise count as training (the net's first ETA said 1,450 s for a job that took 55).
            if self.pretrain:
                done, todo = self.pretrain[0] / self.pretrain[1], 1.0
            else:
                done, todo = frac - self._phase_offset, 1.0 - self._phase_offset
            spent = now - self._phase_started if self._phase_started else 0.0
            eta = spent * (todo - done) / done if done > 0 and spent > 0 else None
            return {"step": self.step, "total_steps": self.total_steps, "epoch": self.epoch, "n_epochs": self.n_epochs,
                    "batches": list(self.batches), "epochs": [dict(e) for e in self.epochs], "eta": eta,
                    "device": self.device, "fraction": frac, "optimizer": self.optimizer, "pretrain": self.pretrain,
                    "checkpoint_epoch": self.checkpoint_epoch, "resumed_from": self.resumed_from,
                    "stride": self._stride}

    @classmethod
    def from_dict(cls, d: dict) -> "Progress":
        """The progress a checkpointed job had, to go on from it."""
        p = cls()
        for k in ("step", "total_steps", "epoch", "n_epochs", "device", "optimizer", "checkpoint_epoch"):
            setattr(p, k, d.get(k, getattr(p, k)))
        p.batches = [tuple(b) for b in d.get("batches", [])]
        p.epochs = [dict(e) for e in d.get("epochs", [])]
        p._stride = d.get("stride", 1)
        return p

    def rewind(self, epoch: int) -> None:
        """Forget what came after the end of `epoch` (a resume from that epoch's checkpoint redoes it)."""
        with self._lock:
            self.epochs = [e for e in self.epochs if e["epoch"] <= epoch]
            self.batches = [b for b in self.batches if b[0] <= epoch + 1e-9]
            self.epoch = float(epoch)
            self.step = int(round(epoch / self.n_epochs * self.total_steps)) if self.n_epochs else 0


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


class CheckpointCallback(Callback):
    """Saves the fit's whole state every `every` complete epochs (not after the last: the run is saved then)."""

    def __init__(self, queue: "JobQueue", job_id: str, worker: str, progress: Progress, lost: threading.Event):
        self.queue, self.job_id, self.worker, self.progress, self.lost = queue, job_id, worker, progress, lost
        self.last = time.monotonic()

    def on_epoch_end(self, trainer: Trainer, info: EpochInfo) -> None:
        every = checkpoint_epochs() * (5 if trainer.cfg.optimizer == "gibbs" else 1)
        if (info.complete and info.epoch % every == 0 and info.epoch < trainer.cfg.epochs
                and not trainer.cancel.is_set() and not self.lost.is_set()
                and time.monotonic() - self.last >= checkpoint_seconds()):
            if not self.queue.still_mine(self.job_id, self.worker):  # given up on: another worker may own it now
                self.lost.set()
                trainer.cancel.set()
                return
            self.queue.save_checkpoint(self.job_id, trainer.checkpoint(), self.progress.to_dict(), self.worker)
            self.progress.update(checkpoint_epoch=info.epoch)
            self.last = time.monotonic()


COLUMNS = ("id, owner, name, created, queued, status, device, config, dataset, worker, started, finished, heartbeat, "
           "stop, error, run_id, metrics, progress, resume")


@dataclass
class Job:
    """One row of the queue."""

    id: str
    owner: str
    name: str
    created: float
    queued: float              # when it last joined the queue (its place: first come, first served)
    status: str
    device: str                # cpu, cuda or auto (a GPU worker's, else a CPU worker's when no GPU worker is alive)
    config: dict
    dataset: str
    worker: str | None = None
    started: float | None = None
    finished: float | None = None
    heartbeat: float | None = None
    stop: bool = False
    error: str | None = None
    run_id: str | None = None
    metrics: dict = field(default_factory=dict)
    progress: dict = field(default_factory=dict)
    resume: bool = False       # a worker that takes it goes on from its checkpoint

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.config)

    def snapshot(self) -> dict:
        """What a page shows: the row's status and the worker's last progress report."""
        snap = {"step": 0, "total_steps": 0, "epoch": 0.0, "n_epochs": 0, "batches": [], "epochs": [], "eta": None,
                "device": "", "fraction": 0.0, "optimizer": "", "pretrain": None, "checkpoint_epoch": None}
        snap.update(self.progress)
        end = self.finished or self.heartbeat or self.started
        snap.update(status=self.status, error=self.error, run_id=self.run_id, metrics=dict(self.metrics),
                    elapsed=(end - self.started) if self.started and end else 0.0, worker=self.worker,
                    stop_requested=self.stop, id=self.id, name=self.name)
        if self.status != "running":
            snap["eta"] = None
        return snap


def _job(row) -> Job:
    (id_, owner, name, created, queued, status, device, config, dataset, worker, started, finished, heartbeat, stop,
     error, run_id, metrics, progress, resume) = row
    return Job(id_, owner, name, created, queued, status, device, json.loads(config), dataset, worker, started,
               finished, heartbeat, bool(stop), error, run_id, json.loads(metrics or "{}"), json.loads(progress or "{}"),
               bool(resume))


def _stale(job: Job) -> bool:
    """A running job whose worker has not been heard from within the heartbeat timeout (`JobQueue.reap` marks it)."""
    return job.status == "running" and (job.heartbeat or 0) < time.time() - heartbeat_timeout()


def device_kind(device: str) -> str:
    """The queue a device takes jobs from: cuda (any GPU), cpu, or auto."""
    return "cuda" if device.startswith("cuda") else ("cpu" if device == "cpu" else "auto")


class JobQueue:
    """The jobs of one store: submit and read (the web pages), claim and report (the workers)."""

    def __init__(self, store: RunStore):
        self.store = store
        self.create_tables()

    def create_tables(self) -> None:
        with self.store.db.connect() as con:
            con.execute("""CREATE TABLE IF NOT EXISTS jobs (
                id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
                queued DOUBLE PRECISION NOT NULL, status TEXT NOT NULL, device TEXT NOT NULL, config TEXT NOT NULL,
                dataset TEXT NOT NULL, worker TEXT, started DOUBLE PRECISION, finished DOUBLE PRECISION,
                heartbeat DOUBLE PRECISION, stop INTEGER NOT NULL DEFAULT 0, error TEXT, run_id TEXT, metrics TEXT,
                progress TEXT, resume INTEGER NOT NULL DEFAULT 0)""")
            con.execute("CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, queued)")
            con.execute("""CREATE TABLE IF NOT EXISTS workers (
                id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, device TEXT NOT NULL,
                kind TEXT NOT NULL, started DOUBLE PRECISION NOT NULL, heartbeat DOUBLE PRECISION NOT NULL,
                job TEXT)""")

    def _connect(self):
        return self.store.db.connect()

    # ------------------------------------------------------------ files of a job
    def _dir(self, job_id: str) -> str:
        if not RUN_ID.match(job_id or ""):
            raise KeyError(job_id)
        return self.store._path("jobs", job_id)

    def read_data(self, job_id: str) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
        """The job's training ratings, validation ratings and item metadata (None when it has none)."""
        folder, fs = self._dir(job_id), self.store.fs
        frames = [self.store.read_frame(f"{folder}/{n}.parquet") if fs.exists(f"{folder}/{n}.parquet") else None
                  for n in ("train", "valid", "items")]
        return frames[0], frames[1], frames[2]

    def save_checkpoint(self, job_id: str, ckpt: Checkpoint, progress: dict, worker: str = "") -> None:
        """Write a checkpoint beside the job's data: the tensors under a name of their own, then the JSON that names
        them (replaced in one step), then the previous tensors go. A kill at any moment leaves the previous
        checkpoint or this one, whole; two workers (a stale one and its successor) never share a file name."""
        folder, fs, epoch = self._dir(job_id), self.store.fs, ckpt.meta["epoch"]
        tag = new_id(6)
        weights = f"checkpoint-{epoch}-{tag}.safetensors"
        self.store.write_bytes(f"{folder}/{weights}", save_tensors(ckpt.tensors))
        previous = self._checkpoint_json(job_id)
        progress = {**progress, "checkpoint_epoch": epoch}
        tmp = f"{folder}/checkpoint-{tag}.json.tmp"
        self.store.write_bytes(tmp, json.dumps({"meta": ckpt.meta, "progress": progress, "weights": weights,
                                                "worker": worker}).encode())
        fs.mv(tmp, f"{folder}/checkpoint.json")
        if previous and previous.get("weights") and previous["weights"] != weights:
            self.store.remove(f"{folder}/{previous['weights']}")

    def _checkpoint_json(self, job_id: str) -> dict | None:
        try:
            return json.loads(self.store.read_bytes(f"{self._dir(job_id)}/checkpoint.json"))
        except Exception:
            return None

    def load_checkpoint(self, job_id: str) -> tuple[Checkpoint, dict] | None:
        """(checkpoint, progress at it), or None when the job has no whole, readable checkpoint."""
        saved = self._checkpoint_json(job_id)
        try:
            tensors = load_tensors(self.store.read_bytes(f"{self._dir(job_id)}/{saved['weights']}"))
            return Checkpoint(saved["meta"], tensors), saved["progress"]
        except Exception:  # missing, truncated (safetensors' own error), or no JSON at all
            return None

    def checkpoint_epoch(self, job_id: str) -> int | None:
        """The epoch of the job's checkpoint on disk, or None without a readable one (its tensors are not read)."""
        saved = self._checkpoint_json(job_id)
        if not saved or not self.store.fs.exists(f"{self._dir(job_id)}/{saved.get('weights')}"):
            return None
        return saved["meta"]["epoch"]

    def still_mine(self, job_id: str, worker: str) -> bool:
        """Whether `worker` still runs this job (a heartbeat that also answers that)."""
        with self._connect() as con:
            return con.execute("UPDATE jobs SET heartbeat=? WHERE id=? AND worker=? AND status='running'",
                               (time.time(), job_id, worker)).rowcount == 1

    def has_checkpoint(self, job_id: str) -> bool:
        return self.checkpoint_epoch(job_id) is not None

    def _forget_data(self, job_id: str) -> None:
        self.store.remove(self._dir(job_id))

    # ------------------------------------------------------------ the web side
    def submit(self, train: pd.DataFrame, valid: pd.DataFrame | None, config: TrainConfig, *, owner: Principal,
               name: str = "", dataset: str = "", items: pd.DataFrame | None = None) -> Job:
        """Queue a training job owned by `owner` (a signed-in principal): its data is written once, as Parquet."""
        if not owner.signed_in:
            raise PermissionDenied("Sign in to train a model.")
        config.validate()
        job_id, now = new_id(16), time.time()
        folder = self._dir(job_id)
        try:
            self.store.fs.makedirs(folder, exist_ok=True)
            self.store.write_frame(train, f"{folder}/train.parquet")
            for frame, fname in ((valid, "valid"), (items, "items")):
                if frame is not None:
                    self.store.write_frame(frame, f"{folder}/{fname}.parquet")
            with self._connect() as con:
                con.execute(f"INSERT INTO jobs ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,NULL,NULL,NULL,NULL,0,NULL,NULL,NULL,NULL,0)",
                            (job_id, owner.name, name or config.model, now, now, "queued", device_kind(config.device),
                             json.dumps(config.to_dict()), dataset))
        except BaseException:
            self._forget_data(job_id)
            raise
        return self._get(job_id)

    def _get(self, job_id: str) -> Job | None:
        if not isinstance(job_id, str) or not RUN_ID.match(job_id):
            return None
        with self._connect() as con:
            row = con.execute(f"SELECT {COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _job(row) if row else None

    def get(self, job_id: str, who: Principal) -> Job | None:
        """The job, or None for an unknown id; PermissionDenied when it is not `who`'s."""
        job = self._get(job_id)
        if job is not None and _stale(job):  # pages poll every second: write only when there is something to mark
            self.reap()
            job = self._get(job_id)
        if job is not None:
            require_owner(who, job.owner, "see this training job")
        return job

    def snapshot(self, job_id: str, who: Principal) -> dict:
        """The job's progress (owner or admin only); KeyError for an unknown job."""
        job = self.get(job_id, who)
        if job is None:
            raise KeyError(job_id)
        snap = job.snapshot()
        if job.status == "queued":
            snap["ahead"] = self.ahead(job)
            snap["workers"] = len(self.workers())
        elif job.status in ("interrupted", "failed"):
            snap["checkpoint_epoch"] = self.checkpoint_epoch(job.id)  # the file's, not the last report's
            snap["can_resume"] = snap["checkpoint_epoch"] is not None
        return snap

    def ahead(self, job: Job) -> int:
        """How many queued or running jobs go before `job` on its device."""
        with self._connect() as con:
            return con.execute("SELECT COUNT(*) FROM jobs WHERE (status='running' OR (status='queued' AND queued < ?)) "
                               "AND device=?", (job.queued, job.device)).fetchone()[0]

    def jobs(self, who: Principal) -> list[Job]:
        """The jobs `who` owns (an admin: everyone's), oldest first."""
        if not who.signed_in:
            return []
        jobs = self._jobs_of(who)
        if any(_stale(j) for j in jobs):
            self.reap()
            jobs = self._jobs_of(who)
        return jobs

    def _jobs_of(self, who: Principal) -> list[Job]:
        with self._connect() as con:
            if who.admin:
                rows = con.execute(f"SELECT {COLUMNS} FROM jobs ORDER BY created").fetchall()
            else:
                rows = con.execute(f"SELECT {COLUMNS} FROM jobs WHERE owner=? ORDER BY created", (who.name,)).fetchall()
        return [_job(r) for r in rows]

    def stop(self, job_id: str, who: Principal) -> None:
        """A queued job leaves the queue; a running one stops after its current batch (the worker reads the request
        within a second) and its best model so far is saved. Owner or admin only."""
        job = self._get(job_id)
        if job is None:
            raise KeyError(job_id)
        require_owner(who, job.owner, "stop this training job")
        with self._connect() as con:
            con.execute("UPDATE jobs SET status='stopped', finished=? WHERE id=? AND status='queued'", (time.time(), job_id))
            con.execute("UPDATE jobs SET stop=1 WHERE id=? AND status='running'", (job_id,))

    def resume(self, job_id: str, who: Principal, how: str = "resume") -> Job:
        """Queue an interrupted (or failed) job again: `how` is resume (from its checkpoint), restart (from the
        beginning) or keep (save the best epoch its checkpoint reached as a run, without training further)."""
        job = self._get(job_id)
        if job is None:
            raise KeyError(job_id)
        require_owner(who, job.owner, "resume this training job")
        if job.status not in ("interrupted", "failed"):
            raise ValueError(f"Only an interrupted or failed job can be resumed or restarted; this one is {job.status}.")
        if how in ("resume", "keep") and not self.has_checkpoint(job_id):
            raise ValueError("This job has no checkpoint to go on from (it stopped before its first one): restart it.")
        if not self.store.fs.exists(f"{self._dir(job_id)}/train.parquet"):
            raise ValueError("This job's data is gone, so it cannot run again: train a new one.")
        # A restart leaves the checkpoint where it is and only ignores it (resume=0): the same data, settings and
        # seed would reach it again, so a later resume from it is still exact, and a second tab's resume is safe.
        with self._connect() as con:
            n = con.execute("UPDATE jobs SET status='queued', queued=?, worker=NULL, error=NULL, finished=NULL, "
                            "heartbeat=NULL, stop=?, resume=?, progress=? WHERE id=? AND status IN ('interrupted', 'failed')",
                            (time.time(), int(how == "keep"), int(how != "restart"),
                             json.dumps(job.progress) if how != "restart" else None, job_id)).rowcount
        if n != 1:
            raise ValueError("This job changed meanwhile (another tab resumed or restarted it): reload the page.")
        return self._get(job_id)

    # ------------------------------------------------------------ the worker side
    def reap(self, timeout: float | None = None) -> int:
        """Mark running jobs whose worker stopped heartbeating as interrupted; returns how many."""
        now, timeout = time.time(), heartbeat_timeout() if timeout is None else timeout
        with self._connect() as con:
            n = con.execute("UPDATE jobs SET status='interrupted', finished=heartbeat, error=? WHERE status='running' "
                            "AND heartbeat < ?", ("Its worker stopped answering (it was stopped, killed, or its machine "
                                                  "went away).", now - timeout)).rowcount
            con.execute("DELETE FROM workers WHERE heartbeat < ?", (now - 10 * timeout,))
        return n

    def claim(self, worker: str, kind: str) -> Job | None:
        """Take the oldest queued job this worker's device may run, atomically (two workers never take the same)."""
        now = time.time()
        skip = " FOR UPDATE SKIP LOCKED" if self.store.db.postgres else ""
        devices = "device='cuda' OR device='auto'" if kind == "cuda" else (
            "device='cpu' OR (device='auto' AND NOT EXISTS (SELECT 1 FROM workers WHERE kind='cuda' AND heartbeat > ?))")
        params = () if kind == "cuda" else (now - heartbeat_timeout(),)
        for _ in range(5):  # another worker may win the row between the choice and the update: choose again
            with self._connect() as con:
                row = con.execute(f"SELECT id FROM jobs WHERE status='queued' AND ({devices}) ORDER BY queued, id LIMIT 1{skip}",
                                  params).fetchone()
                if row is None:
                    return None
                got = con.execute("UPDATE jobs SET status='running', worker=?, started=COALESCE(started, ?), heartbeat=? "
                                  "WHERE id=? AND status='queued' RETURNING id", (worker, now, now, row[0])).fetchone()
            if got:
                return self._get(got[0])
        return None

    def report(self, job_id: str, worker: str, progress: dict) -> bool | None:
        """A worker's heartbeat with its progress. Returns whether a stop was asked, or None when the job is no longer
        this worker's (it was marked interrupted meanwhile): the worker then drops it."""
        with self._connect() as con:
            row = con.execute("UPDATE jobs SET progress=?, heartbeat=? WHERE id=? AND worker=? AND status='running' "
                              "RETURNING stop", (json.dumps(progress), time.time(), job_id, worker)).fetchone()
            con.execute("UPDATE workers SET heartbeat=?, job=? WHERE id=?", (time.time(), job_id, worker))
        return None if row is None else bool(row[0])

    def finish(self, job_id: str, worker: str, status: str, progress: dict, *, run_id: str | None = None,
               metrics: dict | None = None, error: str | None = None) -> bool:
        """End a job; False when it was no longer this worker's."""
        with self._connect() as con:
            n = con.execute("UPDATE jobs SET status=?, progress=?, run_id=?, metrics=?, error=?, finished=?, heartbeat=? "
                            "WHERE id=? AND worker=? AND status='running'",
                            (status, json.dumps(progress), run_id, json.dumps(metrics or {}), error, time.time(),
                             time.time(), job_id, worker)).rowcount
        if n and status in ("done", "stopped"):
            self._forget_data(job_id)  # the run holds what it needs; the job keeps its row
        return bool(n)

    def register_worker(self, worker: str, device: str) -> None:
        now = time.time()
        with self._connect() as con:
            con.execute("INSERT INTO workers VALUES (?,?,?,?,?,?,?,NULL) ON CONFLICT (id) DO UPDATE SET heartbeat=excluded.heartbeat",
                        (worker, socket.gethostname(), os.getpid(), device, device_kind(device), now, now))

    def beat_worker(self, worker: str) -> None:
        with self._connect() as con:
            con.execute("UPDATE workers SET heartbeat=?, job=NULL WHERE id=?", (time.time(), worker))

    def unregister_worker(self, worker: str) -> None:
        with self._connect() as con:
            con.execute("DELETE FROM workers WHERE id=?", (worker,))

    def workers(self) -> list[dict]:
        """The workers heard from within the heartbeat timeout."""
        with self._connect() as con:
            rows = con.execute("SELECT id, host, pid, device, kind, started, heartbeat, job FROM workers WHERE heartbeat > ? "
                               "ORDER BY started", (time.time() - heartbeat_timeout(),)).fetchall()
        return [dict(zip(("id", "host", "pid", "device", "kind", "started", "heartbeat", "job"), r)) for r in rows]


class Worker:
    """Takes the next queued job for its device, trains it, saves its run; then the next. `run()` loops until
    `shutdown()`; a shut-down worker leaves its job interrupted (resumable from its last checkpoint)."""

    def __init__(self, queue: JobQueue, device: str = "auto", poll: float = 0.5, name: str | None = None):
        self.queue, self.poll = queue, poll
        self.device = str(pick_device(device)) if device == "auto" else device
        self.id = name or f"{socket.gethostname()}:{os.getpid()}:{self.device}:{new_id(4)}"
        self._shutdown = threading.Event()
        self._cancel: threading.Event | None = None

    def shutdown(self) -> None:
        """Stop taking jobs; a job in training stops at its next batch and is left interrupted."""
        self._shutdown.set()
        if self._cancel is not None:
            self._cancel.set()

    def run(self, max_jobs: int | None = None) -> None:
        """Take jobs until shut down. A store that cannot be reached or read (a damaged index, the database server
        down) is reported and tried again every few seconds: the worker outlives it."""
        done, trouble, registered = 0, None, False
        while not self._shutdown.is_set() and (max_jobs is None or done < max_jobs):
            try:
                if not registered or trouble is not None:
                    self.queue.create_tables()  # a repaired (rebuilt) index has lost them
                    self.queue.register_worker(self.id, self.device)
                    self.queue.store.clean_leftovers()
                    registered, trouble = True, None
                self.queue.reap()
                job = self.queue.claim(self.id, device_kind(self.device))
                if job is None:
                    self.queue.beat_worker(self.id)
                    self._shutdown.wait(self.poll)
                    continue
            except Exception as exc:
                if str(exc) != trouble:
                    print(f"worker {self.id}: the store is not usable, trying again every 5 s: {exc}", flush=True)
                trouble = str(exc)
                self._shutdown.wait(5)
                continue
            try:
                self.train(job)
            except Exception:  # train() ends every job itself; this keeps the worker alive whatever happens
                traceback.print_exc()
            done += 1
        try:
            self.queue.unregister_worker(self.id)
        except Exception:
            pass

    def start_thread(self) -> threading.Thread:
        """Run in a daemon thread of this process (tests, and the in-process mode of a one-person server)."""
        thread = threading.Thread(target=self.run, daemon=True, name=f"worker-{self.id}")
        thread.start()
        return thread

    def train(self, job: Job) -> None:
        """Train one claimed job to its end: done, stopped, failed, or interrupted (shut down). Heartbeats run from
        the claim to the final write, so neither a slow evaluation nor a slow save is taken for a dead worker."""
        queue, cancel, lost, stop_seen = self.queue, threading.Event(), threading.Event(), threading.Event()
        self._cancel = cancel
        if self._shutdown.is_set() or job.stop:
            cancel.set()
        if job.stop:
            stop_seen.set()
        progress, finished = Progress(), threading.Event()
        progress.update(device=self.device)

        def beat() -> None:
            """Report every second; a store that fails to answer for longer than the heartbeat timeout means the
            job has been (or will be) marked interrupted elsewhere: give it up."""
            failing_since = None
            while not finished.wait(HEARTBEAT_SECONDS):
                try:
                    answer = queue.report(job.id, self.id, progress.to_dict())
                    failing_since = None
                except Exception as exc:
                    failing_since = failing_since or time.monotonic()
                    if time.monotonic() - failing_since > heartbeat_timeout():
                        print(f"worker {self.id}: no heartbeat written for {heartbeat_timeout():.0f} s ({exc}); "
                              f"giving up job {job.id}", flush=True)
                        lost.set()
                        cancel.set()
                        return
                    continue
                if answer is None:
                    lost.set()
                    cancel.set()
                elif answer:
                    stop_seen.set()
                    cancel.set()

        beater = threading.Thread(target=beat, daemon=True, name=f"beat-{job.id}")
        beater.start()
        try:
            resume = None
            if job.resume:
                saved = queue.load_checkpoint(job.id)
                if saved is None:
                    raise ValueError("Its checkpoint cannot be read (damaged or removed), so it cannot go on from it: "
                                     "start it again from the beginning.")
                resume, at = saved
                progress = Progress.from_dict(at)
                progress.rewind(resume.meta["epoch"])
                progress.update(resumed_from=resume.meta["epoch"], device=self.device)
            train, valid, items = queue.read_data(job.id)
            config = job.train_config.replace(device=self.device)
            callbacks = [ProgressCallback(progress), CheckpointCallback(queue, job.id, self.id, progress, lost)]
            rec = Recommender(config).fit(train, valid, callbacks, cancel, resume=resume)
            if lost.is_set():
                return  # interrupted meanwhile (and maybe taken by another worker): save nothing
            if self._shutdown.is_set() and rec.history.cancelled and not stop_seen.is_set():
                queue.finish(job.id, self.id, "interrupted", progress.to_dict(),
                             error="Its worker was shut down (the server stopped). Resume it from its last checkpoint.")
                return
            metrics = rec.evaluate(valid) if valid is not None and len(valid) else {}
            check_finite(rec, metrics)  # a diverged fit fails the job; it is never saved as a run
            metrics = {f"valid_{k}": v for k, v in metrics.items()}
            metrics.update(train_seconds=rec.history.seconds, epochs=len(rec.history.epochs),
                           best_epoch=rec.history.best_epoch, device=self.device)
            run_id = queue.store.save(rec, owner=job.owner, name=job.name, dataset=job.dataset, metrics=metrics,
                                      items=items, valid=valid, train=train[["user", "item", "rating"]])
            status = "stopped" if rec.history.cancelled else "done"
            if lost.is_set() or not queue.finish(job.id, self.id, status, progress.to_dict(), run_id=run_id,
                                                 metrics=metrics):
                queue.store.delete(run_id, _owner(job))  # it was given up on meanwhile: no run behind its back
        except (TrainingDiverged, TooCostly) as exc:
            self._fail(job, progress, str(exc)[0].upper() + str(exc)[1:])
        except (MemoryError, torch.OutOfMemoryError) as exc:
            self._fail(job, progress, f"It ran out of memory ({str(exc).splitlines()[0] if str(exc) else 'no details'})"
                                      ": use fewer factors or a smaller batch.")
        except Exception as exc:  # the page shows the message; the worker goes on with the next job
            self._fail(job, progress, f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
        finally:
            finished.set()
            beater.join()
            self._cancel = None

    def _fail(self, job: Job, progress: Progress, error: str) -> None:
        try:
            self.queue.finish(job.id, self.id, "failed", progress.to_dict(), error=error)
        except Exception:  # the store is away: the reaper marks the job interrupted later
            traceback.print_exc()


def _owner(job: Job) -> Principal:
    return Principal(job.owner, admin=False)


def run_worker(store: RunStore | None = None, device: str = "auto", max_jobs: int | None = None,
               threads: int | None = None) -> int:
    """`python -m cf_core worker`: a worker process until SIGTERM or SIGINT (its job is left interrupted)."""
    worker = Worker(JobQueue(store or RunStore()), device)
    torch.set_num_threads(threads or os.cpu_count() or 1)

    def stop(signum, frame) -> None:
        worker.shutdown()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"worker {worker.id} takes jobs for {worker.device} from {worker.queue.store.db.describe()}", flush=True)
    worker.run(max_jobs)
    return 0
