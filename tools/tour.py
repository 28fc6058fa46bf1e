"""Screenshots of every page on real MovieLens 100k, for the README's tour (docs/tour/*.png).

    .venv/bin/python -m cf_core fetch && .venv/bin/python tools/tour.py     # needs Pillow (pip install pillow)

Starts `streamlit run server.py` (local mode) on a free port with a throwaway runs folder, drives it with Playwright and Debian's
Chromium (/usr/bin/chromium) as a person would (use the built-in data, train with the defaults, open each page),
and saves one picture per page.
"""
from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "tour"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save(page, name: str, height: int = 1500) -> None:
    page.wait_for_timeout(1200)  # Plotly's transitions
    png = page.screenshot(clip={"x": 0, "y": 0, "width": 1400, "height": height})
    img = Image.open(io.BytesIO(png)).convert("RGB")
    img = img.resize((1050, round(img.height * 1050 / img.width)), Image.LANCZOS)
    OUT.mkdir(parents=True, exist_ok=True)
    # 256 colours keep a screenshot of flat UI small and sharp
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(OUT / f"{name}.png", optimize=True)
    print("saved", OUT / f"{name}.png")


def nav(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
    page.get_by_role("heading", name=title, level=1).wait_for()


def main() -> None:
    port = free_port()
    env = dict(os.environ, COLLAB_STUDIO_RUNS=tempfile.mkdtemp())
    # The web server and its training worker, as `make run` starts them.
    server = subprocess.Popen([sys.executable, "-m", "cf_core", "up", "--", sys.executable, "-m", "streamlit", "run",
                               "server.py", "--server.port", str(port), "--server.address", "127.0.0.1"], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 2400}).new_page()
            page.set_default_timeout(120_000)
            page.goto(url)
            page.get_by_role("button", name="Use MovieLens 100k").click()
            page.locator(".js-plotly-plot .bars path").first.wait_for()
            save(page, "1-data", 1900)
            nav(page, "Train")
            page.get_by_role("button", name="Start training").click()
            page.get_by_text("Done in").wait_for()
            save(page, "2-train", 1750)
            for i, title in enumerate(["Evaluate", "Embeddings", "Biases", "Recommend", "Runs"], start=3):
                nav(page, title)
                if title == "Runs":
                    page.get_by_role("button", name="Make a share link").click()
                    page.locator('[data-testid="stCode"]').first.wait_for()
                page.wait_for_timeout(1500)
                save(page, f"{i}-{title.lower()}", 1600)
            browser.close()
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
