"""Training in the web server's process (the old way) against a worker process, on MovieLens 100k, in real Chromium.

    .venv/bin/python bench/bench_workers.py [--model nn] [--probes 6]

For each way: start `streamlit run server.py` (local mode, a fresh runs folder; `inline`: COLLAB_STUDIO_WORKERS=inline,
the training runs in a thread of the server; `worker`: a `python -m cf_core worker` process beside it), load the
built-in data, press Start training, and measure
- the seconds from the click to the first epoch on the page (the RMSE chart drawn),
- the page response while the training runs: another tab switches between Data and Runs, seconds until each page
  is drawn (median and slowest of --probes switches),
- the training's own seconds (as the run records them).
Prints JSON lines and writes them to bench/results/workers-cpu.jsonl (whole).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import ROOT, emit, machine, save_results

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
MODELS = {"nn": "Neural net", "dotbias": "Dot product with biases"}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(way: str, runs: Path) -> tuple[list[subprocess.Popen], str]:
    port = _free_port()
    env = {**os.environ, "COLLAB_STUDIO_RUNS": str(runs), "COLLAB_STUDIO_MODE": "local", "PYTHONPATH": str(ROOT)}
    procs = []
    if way == "inline":
        env["COLLAB_STUDIO_WORKERS"] = "inline"
    else:
        from cf_core.launch import worker_threads

        threads = str(worker_threads())  # as `python -m cf_core up` starts it
        command = [sys.executable, "-m", "cf_core", "worker", "--device", "cpu", "--threads", threads]
        procs.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    procs.append(subprocess.Popen([sys.executable, "-m", "streamlit", "run", "server.py", "--server.port", str(port),
                                   "--server.address", "127.0.0.1", "--server.headless", "true",
                                   "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return procs, url
        except OSError:
            time.sleep(0.3)
    raise SystemExit("the server did not start")


def measure(browser, url: str, model: str, probes: int) -> dict:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(300_000)
    page.goto(url)
    page.get_by_role("button", name="Use MovieLens 100k").click()
    page.locator('[data-testid="stMetricValue"]').first.wait_for()
    page.locator('[data-testid="stSidebarNavLink"]', has_text="Train").click()
    page.get_by_role("heading", name="Train", level=1).wait_for()
    page.get_by_role("combobox", name="Model").click()
    page.get_by_role("option", name=MODELS[model], exact=True).click()
    page.wait_for_timeout(500)
    t0 = time.perf_counter()
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("RMSE per epoch").first.wait_for()
    first_epoch = time.perf_counter() - t0

    other = browser.new_page(viewport={"width": 1400, "height": 1000})
    other.set_default_timeout(300_000)
    other.goto(url)
    other.get_by_role("heading", name="Data", level=1).wait_for()
    times = []
    for i in range(probes):
        if page.get_by_text("Done in").count():
            break
        name = ("Runs", "Data")[i % 2]
        t = time.perf_counter()
        other.locator('[data-testid="stSidebarNavLink"]', has_text=name).click()
        other.get_by_role("heading", name=name, level=1).wait_for()
        other.locator('[data-testid="stSkeleton"]').first.wait_for(state="detached")
        times.append(time.perf_counter() - t)
    page.get_by_text("Done in").wait_for()
    total = time.perf_counter() - t0
    other.close()
    page.close()
    return {"first_epoch_s": round(first_epoch, 2),
            "page_median_s": round(statistics.median(times), 2) if times else None,
            "page_max_s": round(max(times), 2) if times else None, "probes": len(times),
            "click_to_done_s": round(total, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=list(MODELS), default="nn")
    ap.add_argument("--probes", type=int, default=6)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        for way in ("inline", "worker"):
            runs = Path(tempfile.mkdtemp(prefix=f"workers-{way}-")) / "runs"
            procs, url = start(way, runs)
            try:
                result = measure(browser, url, args.model, args.probes)
            finally:
                for proc in reversed(procs):
                    proc.terminate()
                    proc.wait(20)
            sys.path.insert(0, str(ROOT))
            from cf_core.access import LOCAL
            from cf_core.store import RunStore

            (info,) = RunStore(runs).list_all(LOCAL)
            rows.append(emit(bench="workers", way=way, model=args.model, **result,
                             train_seconds=round(info.metrics["train_seconds"], 1),
                             valid_rmse=round(info.metrics["valid_rmse"], 4), machine=machine()))
        browser.close()
    save_results("workers-cpu", rows)


if __name__ == "__main__":
    main()
