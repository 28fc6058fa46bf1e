"""Helpers for the real-browser tests: a Streamlit server (server.py) on a free port, Debian's Chromium, shortcuts."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.app_helpers import write_fake_movielens

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
# Runs `streamlit run server.py` in this process after accepting the generated data's checksum as MovieLens 100k's.
SERVE = ("import sys\nimport cf_core.datasets as d\nd.ML100K_SHA256 = sys.argv.pop(1)\n"
         "from streamlit.web.cli import main\nsys.argv[0] = 'streamlit'\nmain()")
TIMEOUT_MS = 60_000
# How long an `expect(...)` assertion waits for the page to come round (Playwright's default is 5 s): a busy CI host
# took longer than that to draw MovieLens 100k's summary after "Use MovieLens 100k" (test_critical_path, 2026-12-03).
EXPECT_TIMEOUT_MS = 30_000

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make browser)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`streamlit run server.py` and a training worker (`python -m cf_core worker`, a process of its own, as `make run`
    starts one) with a tmp runs store and a generated MovieLens cache; the web server can be killed and restarted in
    place while the worker goes on."""

    def __init__(self, tmp: Path, mode: str = "local", extra: tuple[str, ...] = ()):
        self.tmp, self.mode, self.extra = tmp, mode, extra
        self.sha = write_fake_movielens(tmp / "cache")
        self.runs, self.log = tmp / "runs", tmp / "server.log"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, COLLAB_STUDIO_RUNS=str(self.runs), COLLAB_STUDIO_CACHE=str(tmp / "cache"),
                        COLLAB_STUDIO_MODE=mode, COLLAB_STUDIO_USERS=str(tmp / "users.sqlite"))
        self.proc = self.worker = None

    def start_worker(self) -> None:
        log = open(self.tmp / "worker.log", "ab")
        # As `python -m cf_core up` starts it: a core left to the web server and the browser (with every core, torch's
        # threads fought them, and an 800-epoch training in CI took over 3 minutes instead of about one).
        from cf_core.launch import worker_threads

        threads = str(worker_threads())
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "cf_core", "worker", "--device", "cpu", "--threads", threads],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def kill(self) -> None:
        """SIGKILL the web server (an out-of-memory kill, a crash): the worker is left alone."""
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def start(self) -> Server:
        if self.worker is None or self.worker.poll() is not None:
            self.start_worker()
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, self.sha, "run", "server.py", "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false", *self.extra],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.proc.kill()
                pytest.fail("the Streamlit server did not start:\n" + self.log.read_text()[-3000:])
            time.sleep(0.3)

    def stop(self, worker: bool = True) -> None:
        for name in ("proc", "worker") if worker else ("proc",):
            proc = getattr(self, name)
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                setattr(self, name, None)

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
        """`python -m cf_core ...` against this server's files."""
        return subprocess.run([sys.executable, "-m", "cf_core", *args], input=stdin, text=True, capture_output=True,
                              cwd=ROOT, env=self.env, check=True)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def new_page(browser, url: str | None = None, context=None):
    """A page in a new browser context (a new person), or in `context` (the same person, another tab)."""
    page = (context or browser.new_context(viewport={"width": 1400, "height": 2200})).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    from playwright.sync_api import expect

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    if url:
        page.goto(url)
        page.get_by_role("heading", level=1).first.wait_for()
    return page


def nav(page, title: str) -> None:
    """Go to a page through the sidebar (a full page load would start a new session)."""
    page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
    page.get_by_role("heading", name=title, level=1).wait_for()


def no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, \
        page.locator('[data-testid="stException"]').first.inner_text()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(600)  # let Plotly finish its transition before the picture
    # Streamlit scrolls inside its own container, so the tall viewport (not full_page) is what shows everything.
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
