"""The critical path in a real browser: `streamlit run app.py` driven by Playwright with Debian's Chromium.

Built-in data -> train 8 sweeps of the default (Bayesian) fit with live curves -> the PCA map -> a share link opened in a fresh browser context,
and four bad uploads that each give a readable message while the app keeps working. Screenshots go to
tests/artifacts/. Needs no network: the data cache holds a small generated MovieLens-shaped dataset, and the server
process accepts its checksum in place of the real one.
"""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cf_core.store import RunStore
from tests.app_helpers import write_fake_movielens

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
# Runs `streamlit run app.py` in this process after accepting the generated data's checksum as MovieLens 100k's.
SERVE = ("import sys\nimport cf_core.datasets as d\nd.ML100K_SHA256 = sys.argv.pop(1)\n"
         "from streamlit.web.cli import main\nsys.argv[0] = 'streamlit'\nmain()")
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make browser)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A Streamlit server on a free port with a tmp runs store and a generated MovieLens cache; yields its URL."""
    tmp = tmp_path_factory.mktemp("browser")
    sha = write_fake_movielens(tmp / "cache")
    env = dict(os.environ, COLLAB_STUDIO_RUNS=str(tmp / "runs"), COLLAB_STUDIO_CACHE=str(tmp / "cache"))
    port = _free_port()
    log = open(tmp / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, sha, "run", "app.py", "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail("the Streamlit server did not start:\n" + (tmp / "server.log").read_text()[-3000:])
        time.sleep(0.3)
    yield {"url": url, "runs": tmp / "runs", "log": tmp / "server.log"}
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def _page(browser, url: str):
    page = browser.new_context(viewport={"width": 1400, "height": 2200}).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.get_by_role("heading", level=1).first.wait_for()
    return page


def _nav(page, title: str) -> None:
    """Go to a page through the sidebar (a full page load would start a new session)."""
    page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
    page.get_by_role("heading", name=title, level=1).wait_for()


def _no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator('[data-testid="stException"]').first.inner_text()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(600)  # let Plotly finish its transition before the picture
    # Streamlit scrolls inside its own container, so the tall viewport (not full_page) is what shows everything.
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_critical_path(server, browser):
    from playwright.sync_api import expect

    page = _page(browser, server["url"])
    page.get_by_role("button", name="Use MovieLens 100k").click()
    expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("120")
    page.locator(".js-plotly-plot .bars path").first.wait_for()
    expect(page.locator('[data-testid="stSidebar"]')).to_contain_text("Dataset: MovieLens 100k")
    _no_exception(page)
    _shot(page, "1-data")

    _nav(page, "Train")
    epochs = page.get_by_label("Sweeps (epochs)")  # the default fit for the dot product is Gibbs sampling
    epochs.fill("8")
    epochs.press("Enter")
    page.wait_for_timeout(500)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Done in").wait_for()
    assert "job=" in page.url
    expect(page.locator('[data-testid="stSidebar"]')).to_contain_text("Current run: Dot product with biases")
    lines = page.locator(".js-plotly-plot .scatterlayer path.js-line")
    expect(lines).to_have_count(3)  # the loss curve; train and validation RMSE
    assert len(lines.first.get_attribute("d").split("L")) > 5  # a loss curve with points, not an empty chart
    assert page.locator(".js-plotly-plot .scatterlayer .point").count() >= 16  # 8 sweeps x (train, valid) markers
    _no_exception(page)
    _shot(page, "2-train")

    _nav(page, "Embeddings")
    points = page.locator(".js-plotly-plot .scatterlayer .point")
    points.first.wait_for()
    assert points.count() > 10
    _no_exception(page)
    _shot(page, "3-embeddings")

    _nav(page, "Runs")
    link = page.locator('[data-testid="stCode"] code').first.inner_text().strip()
    run_id = RunStore(server["runs"]).list()[0].id
    assert link == f"{server['url']}/evaluate?run={run_id}"
    _shot(page, "4-runs")

    # Someone who did nothing else opens the link in a fresh context (a new session).
    other = _page(browser, link)
    expect(other.get_by_role("heading", name="Evaluate", level=1)).to_be_visible()
    other.locator(".js-plotly-plot .heatmaplayer, .js-plotly-plot image, .js-plotly-plot .hm").first.wait_for(state="attached")
    assert other.locator('[data-testid="stMetricValue"]').first.inner_text().startswith("0.") or \
        other.locator('[data-testid="stMetricValue"]').first.inner_text().startswith("1.")
    _no_exception(other)
    _shot(other, "5-shared-evaluate")
    _nav(other, "Embeddings")
    other.locator(".js-plotly-plot .scatterlayer .point").first.wait_for()
    _shot(other, "6-shared-embeddings")
    other.context.close()
    page.context.close()


@pytest.mark.parametrize("name, data, message", [
    ("empty.csv", b"", "the file is empty"),
    ("no_rating.csv", b"user,item\n1,2\n3,4\n", "no rating column found"),
    ("binary.bin", bytes(range(256)) * 16, "binary file"),
    ("one_row.csv", b"user,item,rating\n1,2,3\n", "needs at least 2 ratings"),
])
def test_bad_uploads_give_readable_messages(server, browser, name, data, message):
    from playwright.sync_api import expect

    page = _page(browser, server["url"])
    page.get_by_text("Upload a file").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
        files=[{"name": name, "mimeType": "application/octet-stream", "buffer": data}])
    error = page.locator('[data-testid="stAlertContentError"]').first
    expect(error).to_contain_text(message)
    expect(error).to_contain_text(name)
    _no_exception(page)
    _shot(page, f"bad-{Path(name).stem}")
    # The app keeps working: the built-in data still loads in the same session.
    page.get_by_text("Built-in: MovieLens 100k").click()
    page.get_by_role("button", name="Use MovieLens 100k").click()
    expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("120")
    _no_exception(page)
    page.context.close()


def test_the_sigmoid_choice_survives_a_visit_to_the_bayesian_fit(server, browser):
    """Streamlit forgets a widget's state on runs that do not draw it; the Train page writes it back."""
    from playwright.sync_api import expect

    def pick(label: str, option: str) -> None:
        page.get_by_role("combobox", name=label).click()
        page.get_by_role("option", name=option, exact=True).click()

    page = _page(browser, server["url"])
    page.get_by_role("button", name="Use MovieLens 100k").click()
    expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("120")
    _nav(page, "Train")
    sigmoid = page.get_by_role("checkbox", name="Squash predictions into y_range (sigmoid)")
    expect(sigmoid).not_to_be_checked()  # the default, Bayesian fit: no sigmoid
    pick("Optimizer", "Adam")
    expect(page.get_by_label("Learning rate")).to_be_enabled()
    expect(sigmoid).to_be_checked()
    sigmoid.uncheck(force=True)
    expect(sigmoid).not_to_be_checked()
    pick("Optimizer", "Bayesian (Gibbs sampling)")
    expect(page.get_by_label("Learning rate")).to_be_disabled()
    pick("Optimizer", "Adam")
    expect(page.get_by_label("Learning rate")).to_be_enabled()
    expect(sigmoid).not_to_be_checked()
    _no_exception(page)
    page.context.close()
