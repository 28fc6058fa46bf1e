"""Screenshots of every page on real MovieLens 100k, for the README's tour (docs/tour/*.png).

    .venv/bin/python -m cf_core fetch && .venv/bin/python tools/tour.py     # needs Pillow (pip install pillow)
    .venv/bin/python tools/tour.py --width 390 --out /tmp/phone              # as a phone shows it

Starts `streamlit run server.py` (local mode) on a free port with a throwaway runs folder, drives it with Playwright
and Debian's Chromium (/usr/bin/chromium) as a person would (use the built-in data, train with the defaults, open
each page), and saves one picture per page.
"""
from __future__ import annotations

import argparse
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


def save(page, out: Path, name: str, width: int) -> None:
    """The whole page (every chart, not just the first screen), as a person scrolling it sees it."""
    page.wait_for_timeout(1500)  # Plotly's transitions
    # Streamlit scrolls inside its main section: make the window as tall as the content, then shoot the window.
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll('section, [data-testid=stMain]')]"
                           ".map(e => e.scrollHeight), document.body.scrollHeight)")
    page.set_viewport_size({"width": width, "height": min(int(height) + 40, 9000)})
    page.wait_for_timeout(800)
    png = page.screenshot(full_page=True)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    if width > 1050:
        img = img.resize((1050, round(img.height * 1050 / img.width)), Image.LANCZOS)
    out.mkdir(parents=True, exist_ok=True)
    # 256 colours keep a screenshot of flat UI small and sharp
    if name.endswith("embeddings"):  # 19 genre colours and their blends: 256 colours would merge some
        img.save(out / f"{name}.png", optimize=True)
    else:
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out / f"{name}.png", optimize=True)
    page.set_viewport_size({"width": width, "height": VIEW_HEIGHT})
    print("saved", out / f"{name}.png")


def nav(page, title: str, phone: bool) -> None:
    if phone:  # the sidebar is folded away on a phone: open it as a person would
        page.locator('[data-testid="stExpandSidebarButton"], '
                     '[data-testid="stSidebarCollapsedControl"] button').first.click()
    page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
    page.get_by_role("heading", name=title, level=1).wait_for()
    if phone:  # Streamlit leaves the sidebar open over the page on a phone: fold it away as a person must
        page.locator('[data-testid="stSidebarCollapseButton"] button').first.click()


VIEW_HEIGHT = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1400, help="window width (390 for a phone)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the pictures go")
    args = parser.parse_args()
    phone = args.width < 700
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
            page = browser.new_context(viewport={"width": args.width, "height": VIEW_HEIGHT},
                                       device_scale_factor=1).new_page()
            page.set_default_timeout(120_000)
            page.goto(url)
            try:
                tour(page, args.out, args.width, phone)
            except Exception:
                page.screenshot(path=str(args.out / "failed.png"), full_page=True)  # where it stopped, to see why
                raise
            browser.close()
    finally:
        server.terminate()
        server.wait(10)


def tour(page, out: Path, width: int, phone: bool) -> None:
    """Every page as a new user meets it: the first screen, the built-in data, a training run, each explore page."""
    page.get_by_role("button", name="Use MovieLens 100k").wait_for()
    save(page, out, "0-start", width)
    page.get_by_role("button", name="Use MovieLens 100k").click()
    page.locator(".js-plotly-plot .bars path").first.wait_for()
    save(page, out, "1-data", width)
    nav(page, "Train", phone)
    save(page, out, "2-train-settings", width)
    # One control's help, as the (?) beside it shows it.
    label = page.locator('[data-testid="stWidgetLabel"]', has_text="Number of factors").first
    label.locator('[data-testid="stTooltipHoverTarget"], [data-testid="stTooltipIcon"]').first.hover()
    page.get_by_role("tooltip").first.wait_for()
    page.wait_for_timeout(500)
    box, tip = label.bounding_box(), page.get_by_role("tooltip").first.bounding_box()
    left, top = min(box["x"], tip["x"]) - 20, min(box["y"], tip["y"]) - 20
    right, bottom = (max(box["x"] + box["width"], tip["x"] + tip["width"]) + 20,
                     max(box["y"] + 60, tip["y"] + tip["height"]) + 20)
    page.screenshot(path=str(out / "2-train-help.png"),
                    clip={"x": max(0, left), "y": max(0, top), "width": right - max(0, left),
                          "height": bottom - max(0, top)})
    page.mouse.move(0, 0)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Done in").wait_for()
    save(page, out, "2-train", width)
    for i, title in enumerate(["Evaluate", "Embeddings", "Biases", "Recommend", "Runs"], start=3):
        nav(page, title, phone)
        if title == "Runs":
            page.get_by_role("button", name="Make a share link").click()
            page.locator('[data-testid="stCode"]').first.wait_for()
        page.wait_for_timeout(1500)
        if title == "Embeddings":  # the genres' colours as drawn (a screenshot's 256 colours can merge close ones)
            colours = page.evaluate("() => [...document.querySelectorAll('.legend .traces .legendpoints path')]"
                                    ".map(p => p.style.fill)")
            print(f"legend: {len(set(colours))} distinct colours for {len(colours)} genres")
        save(page, out, f"{i}-{title.lower()}", width)


if __name__ == "__main__":
    main()
