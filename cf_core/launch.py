"""`python -m cf_core up -- <web server command>`: the web server and its workers, started and stopped together.

One worker per GPU (`--device cuda:N`), else one CPU worker. A worker that dies is started again (after a pause that
grows while it keeps dying); so is the web server, whose restart changes nothing for a training (the workers go
on, and the Train page re-attaches to the job). SIGINT or SIGTERM stops everything: each worker leaves its job
interrupted, resumable from its last checkpoint.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import torch

RESTART_PAUSE = (1.0, 30.0)  # first and longest pause before starting a process that died


def worker_threads() -> int:
    """Torch threads for a CPU worker beside the web server: a core left to it. When they compete, a training that
    wants every core runs about twice as slow (the net on MovieLens 100k, 2 cores: 27.1 s with 2 threads, 11.7 s
    with 1; bench/bench_workers.py)."""
    return max(1, (os.cpu_count() or 2) - 1)


def worker_devices(spec: str = "auto") -> list[str]:
    """auto: cuda:0..cuda:N-1 when there are GPUs, else one cpu; a number: that many CPU workers; 0: none."""
    if spec == "auto":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [f"cuda:{i}" for i in range(n)] or ["cpu"]
    return ["cpu"] * int(spec)


class Child:
    """A command kept running: started again when it dies, with a growing pause when it dies fast."""

    def __init__(self, name: str, argv: list[str]):
        self.name, self.argv = name, argv
        self.proc: subprocess.Popen | None = None
        self.pause, self.started = RESTART_PAUSE[0], 0.0
        self.next_start = 0.0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, start_new_session=True)
        self.started = time.time()
        print(f"[up] started {self.name} (pid {self.proc.pid})", file=sys.stderr, flush=True)

    def check(self) -> None:
        now = time.time()
        if self.proc is not None and self.proc.poll() is not None:
            code = self.proc.returncode
            self.pause = RESTART_PAUSE[0] if now - self.started > 60 else min(self.pause * 2, RESTART_PAUSE[1])
            print(f"[up] {self.name} exited with {code}; starting it again in {self.pause:.0f} s",
                  file=sys.stderr, flush=True)
            self.proc, self.next_start = None, now + self.pause
        if self.proc is None and now >= self.next_start:
            self.start()

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def up(web: list[str], workers: str = "auto") -> int:
    threads = str(worker_threads())
    children = [Child(f"worker {d}", [sys.executable, "-m", "cf_core", "worker", "--device", d,
                                      *(["--threads", threads] if d == "cpu" else [])])
                for d in worker_devices(workers)]
    if web:
        children.append(Child("web server", web))
    stopping = []

    def stop(signum, frame) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.start()
    try:
        while not stopping:
            for child in children:
                child.check()
            time.sleep(0.5)
    finally:
        for child in reversed(children):  # the web server first, then the workers (they checkpoint and mark)
            child.stop()
    return 0
