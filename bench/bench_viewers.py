"""Many viewers at once: N browser sessions open one shared run's four explore pages together, in real Chromium.

    .venv/bin/python bench/bench_viewers.py [--viewers 20] [--also-one]

Trains the default fit on MovieLens 100k (the product's cache), makes a share link, starts `streamlit run server.py`
(local mode, its own runs folder), then opens the link in N browser contexts at the same moment (each a session of
its own, as N colleagues would) and walks Evaluate -> Embeddings -> Biases -> Recommend through the sidebar. A page
counts as seen when its figures and tables are drawn. Prints, per page, the median and slowest seconds, as JSON lines,
and writes them to bench/results/viewers-cpu.jsonl (whole; --server-side: viewers-server-side-cpu.jsonl).
"""
from __future__ import annotations

import argparse
import asyncio
import json
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
# What must be on screen before a page counts as seen.
READY = {
    "Evaluate": ['[data-testid="stMetricValue"]',
                 ".js-plotly-plot .heatmaplayer, .js-plotly-plot .hm, .js-plotly-plot image",
                 ".js-plotly-plot .barlayer"],
    "Embeddings": [".js-plotly-plot .scatterlayer .point", '[data-testid="stDataFrame"]'],
    "Biases": ['[data-testid="stDataFrame"]', ".js-plotly-plot .barlayer"],
    "Recommend": ['[data-testid="stDataFrame"]'],
}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(runs: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "COLLAB_STUDIO_RUNS": str(runs), "COLLAB_STUDIO_MODE": "local", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "server.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not start")


async def viewer(browser, url: str, start: asyncio.Event) -> dict[str, float]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(600_000)
    await start.wait()
    seen = {}
    for i, name in enumerate(READY):
        t0 = time.perf_counter()
        if i == 0:
            await page.goto(url)
        else:
            await page.locator('[data-testid="stSidebarNavLink"]', has_text=name).click()
        await page.get_by_role("heading", name=name, level=1).wait_for()
        for selector in READY[name]:
            await page.locator(selector).first.wait_for(state="attached")
        await page.locator('[data-testid="stSkeleton"]').first.wait_for(state="detached")
        seen[name] = time.perf_counter() - t0
    await context.close()
    return seen


async def crowd(url: str, n: int) -> list[dict[str, float]]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        start = asyncio.Event()
        tasks = [asyncio.create_task(viewer(browser, url, start)) for _ in range(n)]
        await asyncio.sleep(1.0)  # every context open before anyone starts
        start.set()
        results = await asyncio.gather(*tasks)
        await browser.close()
    return results


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def server_side(runs: Path, token: str, n: int) -> list[dict[str, float]]:
    """The server's own work per view, without browsers: N sessions (Streamlit's AppTest in one process, sharing its
    caches as a server's sessions do) run the four pages' scripts, one session after another (AppTest cannot run
    two at once). With the work cached per run, the second viewer on costs little; the sum is what N at once cost."""
    os.environ.update(COLLAB_STUDIO_RUNS=str(runs), COLLAB_STUDIO_MODE="local")
    os.chdir(ROOT)
    from streamlit.testing.v1 import AppTest

    pages = {"Evaluate": "views/evaluate.py", "Embeddings": "views/embeddings.py", "Biases": "views/biases.py",
             "Recommend": "views/recommend.py"}
    results: list[dict[str, float]] = [{} for _ in range(n)]
    for i in range(n):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.query_params["share"] = token
        for name, page in pages.items():
            t0 = time.perf_counter()
            at.switch_page(page).run()
            assert not at.exception, at.exception
            results[i][name] = time.perf_counter() - t0
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--viewers", type=int, default=20)
    ap.add_argument("--also-one", action="store_true", help="first one viewer alone, for comparison")
    ap.add_argument("--server-side", action="store_true", help="only the server's work (no browsers): see server_side")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="viewers-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "cf_core", "train", "--ratings", "ml-100k", "--out", str(tmp / "runs"),
                          "--quiet", "--name", "ml-100k"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    run_id = json.loads(out.stdout.strip().splitlines()[-1])["run_id"]
    sys.path.insert(0, str(ROOT))
    from cf_core.access import LOCAL
    from cf_core.store import RunStore

    token = RunStore(tmp / "runs").share(run_id, LOCAL, public=True).token
    rows = []
    if args.server_side:
        for n in ([1] if args.also_one else []) + [args.viewers]:
            results = server_side(tmp / "runs", token, n)
            for name in READY:
                times = [r[name] for r in results]
                rows.append(emit(bench="viewers-server-side", viewers=n, page=name, first_s=round(times[0], 3),
                                 median_s=round(statistics.median(times), 3), total_s=round(sum(times), 2),
                                 machine=machine()))
        save_results("viewers-server-side-cpu", rows)
        return
    port = _free_port()
    server = start_server(tmp / "runs", port)
    url = f"http://127.0.0.1:{port}/evaluate?share={token}"
    try:
        for n in ([1] if args.also_one else []) + [args.viewers]:
            t0, cpu0 = time.perf_counter(), cpu_seconds(server.pid)
            results = asyncio.run(crowd(url, n))
            wall, server_cpu = time.perf_counter() - t0, cpu_seconds(server.pid) - cpu0
            for name in READY:
                times = [r[name] for r in results]
                rows.append(emit(bench="viewers", viewers=n, page=name, median_s=round(statistics.median(times), 2),
                                 max_s=round(max(times), 2), machine=machine()))
            # The rest of the 2 cores went to the N Chromium renderers, which a real team runs on its own machines.
            rows.append(emit(bench="viewers", viewers=n, wall_s=round(wall, 1), server_cpu_s=round(server_cpu, 1),
                             server_share_of_machine=round(server_cpu / (wall * (os.cpu_count() or 1)), 2)))
    finally:
        server.terminate()
        server.wait(10)
    save_results("viewers-cpu", rows)


if __name__ == "__main__":
    main()
