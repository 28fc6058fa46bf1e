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
this, whatever page asks. The workers are in `cf_core.worker`, the progress they report in `cf_core.progress`.
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field, replace

import pandas as pd
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from .access import PermissionDenied, Principal, require_owner
from .config import TrainConfig
from .progress import ProgressSnapshot
from .store import RUN_ID, RunStore, new_id
from .train import Checkpoint

ACTIVE = ("queued", "running")


def heartbeat_timeout() -> float:
    """Seconds without a heartbeat after which a running job counts as interrupted ($COLLAB_STUDIO_HEARTBEAT_TIMEOUT).
    Machines that share a queue need clocks in step (NTP): heartbeats carry the worker's time."""
    return float(os.environ.get("COLLAB_STUDIO_HEARTBEAT_TIMEOUT", "30"))


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
    progress: ProgressSnapshot = field(default_factory=ProgressSnapshot)  # the worker's last report
    resume: bool = False       # a worker that takes it goes on from its checkpoint

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.config)

    def snapshot(self) -> JobSnapshot:
        """What a page shows: the row's status and the worker's last progress report."""
        end = self.finished or self.heartbeat or self.started
        return JobSnapshot(
            id=self.id, name=self.name, status=self.status,
            progress=self.progress if self.status == "running" else replace(self.progress, eta=None),
            error=self.error, run_id=self.run_id, metrics=dict(self.metrics),
            elapsed=(end - self.started) if self.started and end else 0.0, worker=self.worker, stop_requested=self.stop)


@dataclass(frozen=True)
class JobSnapshot:
    """What a page shows of a job (`JobQueue.snapshot`): its row's status and its worker's last progress report."""

    id: str
    name: str
    status: str                    # queued, running, done, stopped, failed or interrupted
    progress: ProgressSnapshot     # the worker's last report (no ETA unless running; while interrupted or failed,
                                   # its checkpoint_epoch is the checkpoint file's)
    error: str | None = None       # why it failed or was interrupted, in words
    run_id: str | None = None      # the run it saved (done, or stopped with its best model so far)
    metrics: dict = field(default_factory=dict)  # the run's metrics (valid_rmse, valid_mae, ..., train_seconds)
    elapsed: float = 0.0           # seconds from its start to its end (or its latest heartbeat)
    worker: str | None = None      # the worker that has (or had) it
    stop_requested: bool = False   # its owner asked it to stop; the worker stops after the current batch
    ahead: int | None = None       # queued only: the queued or running jobs that go before it on its device
    workers: int | None = None     # queued only: the workers heard from within the heartbeat timeout
    can_resume: bool = False       # interrupted or failed: it has a readable checkpoint to go on from

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


def _job(row) -> Job:
    (id_, owner, name, created, queued, status, device, config, dataset, worker, started, finished, heartbeat, stop,
     error, run_id, metrics, progress, resume) = row
    return Job(id_, owner, name, created, queued, status, device, json.loads(config), dataset, worker, started,
               finished, heartbeat, bool(stop), error, run_id, json.loads(metrics or "{}"),
               ProgressSnapshot.from_dict(json.loads(progress or "{}")), bool(resume))


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

    def save_checkpoint(self, job_id: str, ckpt: Checkpoint, progress: ProgressSnapshot, worker: str = "") -> None:
        """Write a checkpoint beside the job's data: the tensors under a name of their own, then the JSON that names
        them (replaced in one step), then the previous tensors go. A kill at any moment leaves the previous
        checkpoint or this one, whole; two workers (a stale one and its successor) never share a file name."""
        folder, fs, epoch = self._dir(job_id), self.store.fs, ckpt.meta["epoch"]
        tag = new_id(6)
        weights = f"checkpoint-{epoch}-{tag}.safetensors"
        self.store.write_bytes(f"{folder}/{weights}", save_tensors(ckpt.tensors))
        previous = self._checkpoint_json(job_id)
        progress = replace(progress, checkpoint_epoch=epoch)
        tmp = f"{folder}/checkpoint-{tag}.json.tmp"
        self.store.write_bytes(tmp, json.dumps({"meta": ckpt.meta, "progress": progress.to_dict(), "weights": weights,
                                                "worker": worker}).encode())
        fs.mv(tmp, f"{folder}/checkpoint.json")
        if previous and previous.get("weights") and previous["weights"] != weights:
            self.store.remove(f"{folder}/{previous['weights']}")

    def _checkpoint_json(self, job_id: str) -> dict | None:
        try:
            return json.loads(self.store.read_bytes(f"{self._dir(job_id)}/checkpoint.json"))
        except Exception:
            return None

    def load_checkpoint(self, job_id: str) -> tuple[Checkpoint, ProgressSnapshot] | None:
        """(checkpoint, progress at it), or None when the job has no whole, readable checkpoint."""
        saved = self._checkpoint_json(job_id)
        try:
            tensors = load_tensors(self.store.read_bytes(f"{self._dir(job_id)}/{saved['weights']}"))
            ckpt, progress = Checkpoint(saved["meta"], tensors), ProgressSnapshot.from_dict(saved["progress"])
        except Exception:  # missing, truncated (safetensors' own error), no JSON at all, or JSON of another shape
            return None
        return ckpt, progress

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
                con.execute(f"INSERT INTO jobs ({COLUMNS}) VALUES "
                            "(?,?,?,?,?,?,?,?,?,NULL,NULL,NULL,NULL,0,NULL,NULL,NULL,NULL,0)",
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

    def snapshot(self, job_id: str, who: Principal) -> JobSnapshot:
        """The job's progress (owner or admin only); KeyError for an unknown job."""
        job = self.get(job_id, who)
        if job is None:
            raise KeyError(job_id)
        snap = job.snapshot()
        if job.status == "queued":
            return replace(snap, ahead=self.ahead(job), workers=len(self.workers()))
        if job.status in ("interrupted", "failed"):
            epoch = self.checkpoint_epoch(job.id)  # the file's, not the last report's
            return replace(snap, progress=replace(snap.progress, checkpoint_epoch=epoch), can_resume=epoch is not None)
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
            con.execute("UPDATE jobs SET status='stopped', finished=? WHERE id=? AND status='queued'",
                        (time.time(), job_id))
            con.execute("UPDATE jobs SET stop=1 WHERE id=? AND status='running'", (job_id,))

    def resume(self, job_id: str, who: Principal, how: str = "resume") -> Job:
        """Queue an interrupted (or failed) job again: `how` is resume (from its checkpoint), restart (from the
        beginning) or keep (save the best epoch its checkpoint reached as a run, without training further)."""
        job = self._get(job_id)
        if job is None:
            raise KeyError(job_id)
        require_owner(who, job.owner, "resume this training job")
        if job.status not in ("interrupted", "failed"):
            raise ValueError("Only an interrupted or failed job can be resumed or restarted; "
                             f"this one is {job.status}.")
        if how in ("resume", "keep") and not self.has_checkpoint(job_id):
            raise ValueError("This job has no checkpoint to go on from (it stopped before its first one): restart it.")
        if not self.store.fs.exists(f"{self._dir(job_id)}/train.parquet"):
            raise ValueError("This job's data is gone, so it cannot run again: train a new one.")
        # A restart leaves the checkpoint where it is and only ignores it (resume=0): the same data, settings and
        # seed would reach it again, so a later resume from it is still exact, and a second tab's resume is safe.
        with self._connect() as con:
            n = con.execute("UPDATE jobs SET status='queued', queued=?, worker=NULL, error=NULL, finished=NULL, "
                            "heartbeat=NULL, stop=?, resume=?, progress=? "
                            "WHERE id=? AND status IN ('interrupted', 'failed')",
                            (time.time(), int(how == "keep"), int(how != "restart"),
                             json.dumps(job.progress.to_dict()) if how != "restart" else None, job_id)).rowcount
        if n != 1:
            raise ValueError("This job changed meanwhile (another tab resumed or restarted it): reload the page.")
        return self._get(job_id)

    # ------------------------------------------------------------ the worker side
    def reap(self, timeout: float | None = None) -> int:
        """Mark running jobs whose worker stopped heartbeating as interrupted; returns how many."""
        now, timeout = time.time(), heartbeat_timeout() if timeout is None else timeout
        with self._connect() as con:
            gone = "Its worker stopped answering (it was stopped, killed, or its machine went away)."
            n = con.execute("UPDATE jobs SET status='interrupted', finished=heartbeat, error=? WHERE status='running' "
                            "AND heartbeat < ?", (gone, now - timeout)).rowcount
            con.execute("DELETE FROM workers WHERE heartbeat < ?", (now - 10 * timeout,))
        return n

    def claim(self, worker: str, kind: str) -> Job | None:
        """Take the oldest queued job this worker's device may run, atomically (two workers never take the same)."""
        now = time.time()
        skip = " FOR UPDATE SKIP LOCKED" if self.store.db.postgres else ""
        devices = "device='cuda' OR device='auto'" if kind == "cuda" else (
            "device='cpu' OR (device='auto' AND NOT EXISTS "
            "(SELECT 1 FROM workers WHERE kind='cuda' AND heartbeat > ?))")
        params = () if kind == "cuda" else (now - heartbeat_timeout(),)
        for _ in range(5):  # another worker may win the row between the choice and the update: choose again
            with self._connect() as con:
                row = con.execute(f"SELECT id FROM jobs WHERE status='queued' AND ({devices}) "
                                  f"ORDER BY queued, id LIMIT 1{skip}", params).fetchone()
                if row is None:
                    return None
                got = con.execute("UPDATE jobs SET status='running', worker=?, started=COALESCE(started, ?), "
                                  "heartbeat=? WHERE id=? AND status='queued' RETURNING id",
                                  (worker, now, now, row[0])).fetchone()
            if got:
                return self._get(got[0])
        return None

    def report(self, job_id: str, worker: str, progress: ProgressSnapshot) -> bool | None:
        """A worker's heartbeat with its progress. Returns whether a stop was asked, or None when the job is no longer
        this worker's (it was marked interrupted meanwhile): the worker then drops it."""
        with self._connect() as con:
            row = con.execute("UPDATE jobs SET progress=?, heartbeat=? WHERE id=? AND worker=? AND status='running' "
                              "RETURNING stop",
                              (json.dumps(progress.to_dict()), time.time(), job_id, worker)).fetchone()
            con.execute("UPDATE workers SET heartbeat=?, job=? WHERE id=?", (time.time(), job_id, worker))
        return None if row is None else bool(row[0])

    def finish(self, job_id: str, worker: str, status: str, progress: ProgressSnapshot, *, run_id: str | None = None,
               metrics: dict | None = None, error: str | None = None) -> bool:
        """End a job; False when it was no longer this worker's."""
        with self._connect() as con:
            n = con.execute("UPDATE jobs SET status=?, progress=?, run_id=?, metrics=?, error=?, finished=?, "
                            "heartbeat=? WHERE id=? AND worker=? AND status='running'",
                            (status, json.dumps(progress.to_dict()), run_id, json.dumps(metrics or {}), error,
                             time.time(), time.time(), job_id, worker)).rowcount
        if n and status in ("done", "stopped"):
            self._forget_data(job_id)  # the run holds what it needs; the job keeps its row
        return bool(n)

    def register_worker(self, worker: str, device: str) -> None:
        now = time.time()
        with self._connect() as con:
            con.execute("INSERT INTO workers VALUES (?,?,?,?,?,?,?,NULL) "
                        "ON CONFLICT (id) DO UPDATE SET heartbeat=excluded.heartbeat",
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
            rows = con.execute("SELECT id, host, pid, device, kind, started, heartbeat, job FROM workers "
                               "WHERE heartbeat > ? ORDER BY started", (time.time() - heartbeat_timeout(),)).fetchall()
        return [dict(zip(("id", "host", "pid", "device", "kind", "started", "heartbeat", "job"), r)) for r in rows]
