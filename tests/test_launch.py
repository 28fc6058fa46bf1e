"""`python -m cf_core up`: the workers start beside the web server, a worker that dies is started again, and they
all stop together."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cf_core.jobs import JobQueue
from cf_core.store import RunStore

ROOT = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _workers(queue, timeout=60, other_than=()):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [w for w in queue.workers() if w["pid"] not in other_than]
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("no worker registered")


def test_a_dead_worker_is_started_again_and_all_stop_together(tmp_path):
    env = {**os.environ, "COLLAB_STUDIO_RUNS": str(tmp_path / "runs"), "PYTHONPATH": str(ROOT)}
    web = [sys.executable, "-c", "import time; time.sleep(600)"]  # stands in for the web server
    up = subprocess.Popen([sys.executable, "-m", "cf_core", "up", "--workers", "1", "--", *web], cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        queue = JobQueue(RunStore(tmp_path / "runs"))
        (first,) = _workers(queue)
        os.kill(first["pid"], signal.SIGKILL)
        (second,) = _workers(queue, other_than=(first["pid"],))
        assert second["device"] == "cpu" and _alive(second["pid"])
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)
    log = up.stderr.read().decode()
    assert "exited with -9; starting it again" in log
    time.sleep(0.5)
    assert not _alive(second["pid"])  # stopped with the launcher
    assert second["id"] not in [w["id"] for w in queue.workers()]  # and it said goodbye
