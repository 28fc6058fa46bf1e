"""The critical path in a real browser, local mode: `streamlit run server.py` driven by Playwright with Debian's
Chromium.

Built-in data -> train 8 sweeps of the default (Bayesian) fit with live curves -> the PCA map -> a share link made
and opened in a fresh browser context, and four bad uploads that each give a readable message while the app keeps
working. Screenshots go to tests/artifacts/. Needs no network: the data cache holds a small generated
MovieLens-shaped dataset, and the server process accepts its checksum in place of the real one.
"""
from pathlib import Path

import pytest

from cf_core.access import LOCAL
from cf_core.store import RunStore
from tests.browser_helpers import Server, browser, needs_chromium, new_page
from tests.browser_helpers import nav as _nav
from tests.browser_helpers import no_exception as _no_exception
from tests.browser_helpers import shot as _shot

pytestmark = needs_chromium
__all__ = ["browser"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A local-mode server; yields its URL, runs folder and log."""
    srv = Server(tmp_path_factory.mktemp("browser")).start()
    yield {"url": srv.url, "runs": srv.runs, "log": srv.log}
    srv.stop()


def _page(browser, url: str):
    return new_page(browser, url)


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
    # the default fit for the dot product is Gibbs sampling
    epochs = page.get_by_role("spinbutton", name="Sweeps (epochs)")
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
    page.get_by_role("button", name="Make a share link").click()
    code = page.locator('[data-testid="stCode"] code').first
    code.wait_for()
    link = code.inner_text().strip()
    store = RunStore(server["runs"])
    run_id = store.list(LOCAL)[0].id
    assert link == f"{server['url']}/evaluate?share={store.shares(run_id, LOCAL)[0].token}"
    _shot(page, "4-runs")

    # Someone who did nothing else opens the link in a fresh context (a new session).
    other = _page(browser, link)
    expect(other.get_by_role("heading", name="Evaluate", level=1)).to_be_visible()
    other.locator(".js-plotly-plot .heatmaplayer, .js-plotly-plot image, .js-plotly-plot .hm").first.wait_for(
        state="attached")
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
    ("no_rating.csv", b"name,colour\nHeat,red\nAlien,green\n", "no rating column found"),
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
    expect(page.get_by_role("spinbutton", name="Learning rate")).to_be_enabled()
    expect(sigmoid).to_be_checked()
    sigmoid.uncheck(force=True)
    expect(sigmoid).not_to_be_checked()
    pick("Optimizer", "Bayesian (Gibbs sampling)")
    expect(page.get_by_role("spinbutton", name="Learning rate")).to_be_disabled()
    pick("Optimizer", "Adam")
    expect(page.get_by_role("spinbutton", name="Learning rate")).to_be_enabled()
    expect(sigmoid).not_to_be_checked()
    _no_exception(page)
    page.context.close()


def test_local_mode_refuses_a_rebound_host_name(server, browser):
    """DNS rebinding: a web page whose domain now resolves to 127.0.0.1 reaches local mode's socket, but with its
    own host name; local mode (no sign-in, its one person owns everything) answers only this machine's names."""
    from playwright.sync_api import expect

    from tests.browser_helpers import ARGS, CHROMIUM, TIMEOUT_MS

    port = server["url"].rsplit(":", 1)[1]
    rebound = browser.browser_type.launch(executable_path=CHROMIUM, headless=True,
                                          args=[*ARGS, "--host-resolver-rules=MAP evil.test 127.0.0.1"])
    try:
        page = rebound.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"http://evil.test:{port}/runs")
        expect(page.get_by_text("Local mode answers only addresses of this machine")).to_be_visible()
        assert page.locator('[data-testid="stSidebarNavLink"]').count() == 0
        assert page.get_by_role("heading", name="Runs").count() == 0
        _no_exception(page)
    finally:
        rebound.close()
