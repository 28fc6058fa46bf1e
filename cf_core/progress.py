"""Training progress: what a running job has done so far (`Progress`, fed from the training loop by
`ProgressCallback`) and the typed report of it (`ProgressSnapshot`), which a worker writes as JSON into the job's row
and beside its checkpoints, and which the pages read back."""
from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .train import BatchInfo, Callback, EpochInfo, Trainer

# How many batch points the live loss curve keeps at most (older points are thinned, not dropped).
MAX_BATCH_POINTS = 2000


@dataclass(frozen=True)
class ProgressSnapshot:
    """A consistent copy of a job's progress, as its worker last reported it. Its JSON (`to_dict`) keeps the keys a
    job's row has always had, so rows written before a field existed still read (`from_dict`)."""

    step: int = 0                   # batches done (Gibbs sampling: sweeps)
    total_steps: int = 0            # batches of the whole fit; 0 until training starts
    epoch: float = 0.0              # the fractional epoch reached
    n_epochs: int = 0               # epochs (sweeps) of the fit; 0 while the data and the model are prepared
    batches: list[tuple[float, float, float]] = field(default_factory=list)  # (epoch, smoothed loss, lr), thinned
    epochs: list[dict] = field(default_factory=list)  # one record per epoch ended (the fields of EpochInfo)
    eta: float | None = None        # seconds left, from the work done in this phase; None while it cannot tell
    device: str = ""                # where it trains (the worker's device)
    fraction: float = 0.0           # step / total_steps
    optimizer: str = ""             # the resolved optimizer ("gibbs": epochs are sweeps, the loss is each sample's)
    pretrain: tuple[int, int] | None = None  # (sweep, sweeps) of the net's pretraining fit, while it runs
    checkpoint_epoch: int | None = None  # the epoch of the job's latest checkpoint
    resumed_from: int | None = None  # the checkpoint's epoch this run went on from
    stride: int = 1                 # one batch in `stride` is recorded (doubled at each thinning)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object for the job's row and its checkpoint."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProgressSnapshot:
        """From a row's or a checkpoint's JSON: keys it lacks take their defaults, keys it does not know are ignored."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["batches"] = [tuple(b) for b in kw.get("batches") or []]
        kw["epochs"] = [dict(e) for e in kw.get("epochs") or []]
        if kw.get("pretrain") is not None:
            kw["pretrain"] = tuple(kw["pretrain"])
        return cls(**kw)


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

    def snapshot(self, now: float | None = None) -> ProgressSnapshot:
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
            return ProgressSnapshot(
                step=self.step, total_steps=self.total_steps, epoch=self.epoch, n_epochs=self.n_epochs,
                batches=list(self.batches), epochs=[dict(e) for e in self.epochs], eta=eta, device=self.device,
                fraction=frac, optimizer=self.optimizer, pretrain=self.pretrain, checkpoint_epoch=self.checkpoint_epoch,
                resumed_from=self.resumed_from, stride=self._stride)

    @classmethod
    def from_snapshot(cls, snap: ProgressSnapshot) -> Progress:
        """The progress a checkpointed job had, to go on from it."""
        p = cls()
        p.step, p.total_steps, p.epoch, p.n_epochs = snap.step, snap.total_steps, snap.epoch, snap.n_epochs
        p.device, p.optimizer, p.checkpoint_epoch = snap.device, snap.optimizer, snap.checkpoint_epoch
        p.batches = [tuple(b) for b in snap.batches]
        p.epochs = [dict(e) for e in snap.epochs]
        p._stride = snap.stride
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
        cfg = trainer.cfg  # an implicit-feedback fit is tagged: its loss and epoch figures are not a rating's
        self.progress.start_phase(n_epochs=cfg.epochs, pretrain=None, optimizer=cfg.optimizer if cfg.feedback !=
                                  "implicit" else f"implicit:{cfg.implicit_loss or 'als'}")

    def on_batch_end(self, trainer: Trainer, info: BatchInfo) -> None:
        self.progress.add_batch(info)

    def on_epoch_end(self, trainer: Trainer, info: EpochInfo) -> None:
        self.progress.add_epoch(info)
