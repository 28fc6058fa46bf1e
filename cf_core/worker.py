"""Training workers (`python -m cf_core worker`): each takes the oldest queued job for its device from the job queue
(`cf_core.jobs`), trains it with a heartbeat every second that carries its progress and reads whether its owner
asked it to stop, checkpoints it every few epochs, and saves its run; then the next job."""
from __future__ import annotations

import os
import signal
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field

import pandas as pd
import torch

from .access import Principal
from .cost import TooCostly
from .jobs import Job, JobQueue, device_kind, heartbeat_timeout
from .progress import Progress, ProgressCallback
from .ranking import flat_metrics
from .recommender import Recommender, TrainingDiverged, check_finite
from .store import RunStore, new_id
from .train import Callback, Checkpoint, EpochInfo, Trainer, pick_device

HEARTBEAT_SECONDS = 1.0   # how often a worker writes progress and reads the stop request


def checkpoint_epochs() -> int:
    """A checkpoint every this many epochs ($COLLAB_STUDIO_CHECKPOINT_EPOCHS; Gibbs sweeps: five times as many)..."""
    return max(1, int(os.environ.get("COLLAB_STUDIO_CHECKPOINT_EPOCHS", "5")))


def checkpoint_seconds() -> float:
    """...and at least this many seconds apart ($COLLAB_STUDIO_CHECKPOINT_SECONDS): epochs of small data take
    milliseconds, and a checkpoint of them every few epochs cost more than the training."""
    return float(os.environ.get("COLLAB_STUDIO_CHECKPOINT_SECONDS", "20"))


class CheckpointCallback(Callback):
    """Saves the fit's whole state every `every` complete epochs (not after the last: the run is saved then)."""

    def __init__(self, queue: JobQueue, job_id: str, worker: str, progress: Progress, lost: threading.Event):
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
            self.queue.save_checkpoint(self.job_id, trainer.checkpoint(), self.progress.snapshot(), self.worker)
            self.progress.update(checkpoint_epoch=info.epoch)
            self.last = time.monotonic()


@dataclass
class _Attempt:
    """One claimed job as its worker trains it: its progress (replaced by the checkpoint's on a resume) and the
    events that the training loop and the heartbeat thread share."""

    job: Job
    progress: Progress
    cancel: threading.Event = field(default_factory=threading.Event)     # the loop stops at its next batch
    lost: threading.Event = field(default_factory=threading.Event)       # no longer this worker's: save nothing
    stop_seen: threading.Event = field(default_factory=threading.Event)  # its owner asked it to stop
    finished: threading.Event = field(default_factory=threading.Event)   # the attempt ended: the heartbeats stop

    def give_up(self) -> None:
        """The job has been (or will be) marked interrupted elsewhere: stop training and keep nothing."""
        self.lost.set()
        self.cancel.set()


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
        attempt = _Attempt(job, Progress())
        self._cancel = attempt.cancel
        if self._shutdown.is_set() or job.stop:
            attempt.cancel.set()
        if job.stop:
            attempt.stop_seen.set()
        attempt.progress.update(device=self.device)
        beater = threading.Thread(target=self._beat, args=(attempt,), daemon=True, name=f"beat-{job.id}")
        beater.start()
        try:
            self._fit_and_save(attempt)
        except (TrainingDiverged, TooCostly) as exc:
            self._fail(attempt, str(exc)[0].upper() + str(exc)[1:])
        except (MemoryError, torch.OutOfMemoryError) as exc:
            self._fail(attempt, f"It ran out of memory ({str(exc).splitlines()[0] if str(exc) else 'no details'})"
                                ": use fewer factors or a smaller batch.")
        except Exception as exc:  # the page shows the message; the worker goes on with the next job
            self._fail(attempt, f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
        finally:
            attempt.finished.set()
            beater.join()
            self._cancel = None

    def _beat(self, attempt: _Attempt) -> None:
        """Report every second; a store that fails to answer for longer than the heartbeat timeout means the job has
        been (or will be) marked interrupted elsewhere: give it up."""
        failing_since = None
        while not attempt.finished.wait(HEARTBEAT_SECONDS):
            try:
                answer = self.queue.report(attempt.job.id, self.id, attempt.progress.snapshot())
                failing_since = None
            except Exception as exc:
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > heartbeat_timeout():
                    print(f"worker {self.id}: no heartbeat written for {heartbeat_timeout():.0f} s ({exc}); "
                          f"giving up job {attempt.job.id}", flush=True)
                    attempt.give_up()
                    return
                continue
            if answer is None:
                attempt.give_up()
            elif answer:
                attempt.stop_seen.set()
                attempt.cancel.set()

    def _fit_and_save(self, attempt: _Attempt) -> None:
        """Fit the job (from its checkpoint when it resumes) and save its run, unless it was given up on or its
        worker shut down meanwhile."""
        job, queue = attempt.job, self.queue
        resume = self._resume_point(attempt) if job.resume else None
        train, valid, items = queue.read_data(job.id)
        config = job.train_config.replace(device=self.device)
        callbacks = [ProgressCallback(attempt.progress),
                     CheckpointCallback(queue, job.id, self.id, attempt.progress, attempt.lost)]
        rec = Recommender(config).fit(train, valid, callbacks, attempt.cancel, resume=resume, items=items)
        if attempt.lost.is_set():
            return  # interrupted meanwhile (and maybe taken by another worker): save nothing
        if self._shutdown.is_set() and rec.history.cancelled and not attempt.stop_seen.is_set():
            queue.finish(job.id, self.id, "interrupted", attempt.progress.snapshot(),
                         error="Its worker was shut down (the server stopped). Resume it from its last checkpoint.")
            return
        self._save(attempt, rec, train, valid, items)

    def _resume_point(self, attempt: _Attempt) -> Checkpoint:
        """The job's checkpoint; the attempt's progress becomes the one saved with it, rewound to its epoch (a resume
        redoes what came after)."""
        saved = self.queue.load_checkpoint(attempt.job.id)
        if saved is None:
            raise ValueError("Its checkpoint cannot be read (damaged or removed), so it cannot go on from it: "
                             "start it again from the beginning.")
        resume, at = saved
        progress = Progress.from_snapshot(at)
        progress.rewind(resume.meta["epoch"])
        progress.update(resumed_from=resume.meta["epoch"], device=self.device)
        attempt.progress = progress
        return resume

    def _save(self, attempt: _Attempt, rec: Recommender, train: pd.DataFrame, valid: pd.DataFrame | None,
              items: pd.DataFrame | None) -> None:
        """Evaluate the fit and save it as the job's run; the run goes again when the job was given up on meanwhile."""
        job, queue = attempt.job, self.queue
        metrics = rec.evaluate(valid) if valid is not None and len(valid) else {}
        check_finite(rec, metrics)  # a diverged fit fails the job; it is never saved as a run
        metrics = {f"valid_{k}": v for k, v in flat_metrics(metrics).items() if v is not None}
        metrics.update(train_seconds=rec.history.seconds, epochs=len(rec.history.epochs),
                       best_epoch=rec.history.best_epoch, device=self.device)
        run_id = queue.store.save(rec, owner=job.owner, name=job.name, dataset=job.dataset, metrics=metrics,
                                  items=items, valid=valid, train=train[["user", "item", "rating"]])
        status = "stopped" if rec.history.cancelled else "done"
        if attempt.lost.is_set() or not queue.finish(job.id, self.id, status, attempt.progress.snapshot(),
                                                     run_id=run_id, metrics=metrics):
            queue.store.delete(run_id, _owner(job))  # it was given up on meanwhile: no run behind its back

    def _fail(self, attempt: _Attempt, error: str) -> None:
        try:
            self.queue.finish(attempt.job.id, self.id, "failed", attempt.progress.snapshot(), error=error)
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
