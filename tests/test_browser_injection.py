"""Hostile strings in a real browser: a run whose name, dataset, ids, titles and genres are Markdown images and
links, HTML tags, autolinks and Streamlit directives, opened on every page in Chromium. No page may link to or
fetch the planted host, in its text, its pickers' options, or Plotly's labels and hover boxes. Also: the upload
limit is stated and an upload over it gets a plain message (a server started with a 1 MB limit)."""
from urllib.parse import urlsplit

import pytest

from cf_core.store import RunStore
from tests.browser_helpers import Server, browser, nav, needs_chromium, new_page, no_exception, shot
from tests.test_injection import HOST, save_hostile_run

pytestmark = needs_chromium
__all__ = ["browser"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("injection"), extra=("--server.maxUploadSize", "1"))
    run_id = save_hostile_run(RunStore(srv.runs))
    yield srv.start(), run_id
    srv.stop()


def _no_planted_host(page, requests: list[str]) -> None:
    page.wait_for_timeout(500)
    assert page.locator(f'a[href*="{HOST}"]').count() == 0
    assert page.locator(f'img[src*="{HOST}"]').count() == 0
    assert page.locator(".js-plotly-plot a").count() == 0  # Plotly draws <a> for a title's live link
    assert requests == [], requests
    no_exception(page)


def test_hostile_strings_render_as_text_on_every_page(server, browser):
    srv, run_id = server
    requests: list[str] = []
    page = new_page(browser)
    page.on("request", lambda r: requests.append(r.url) if urlsplit(r.url).hostname == HOST else None)
    page.goto(f"{srv.url}/evaluate?run={run_id}")
    page.get_by_role("heading", name="Evaluate", level=1).wait_for()
    page.get_by_text("![x](http://127.0.0.9/pixel.png)", exact=False).first.wait_for()  # shown, as text
    _no_planted_host(page, requests)
    shot(page, "injection-evaluate")

    nav(page, "Embeddings")
    page.get_by_role("combobox", name="Colour by").click()
    page.get_by_role("option", name="Genre (the first listed)").click()
    point = page.locator(".js-plotly-plot .scatterlayer .point").first
    point.wait_for()
    point.hover(force=True)
    page.locator(".hoverlayer .hovertext").first.wait_for()
    _no_planted_host(page, requests)
    shot(page, "injection-embeddings")

    nav(page, "Recommend")
    page.get_by_role("tab", name="Similar items").click()
    page.get_by_role("combobox", name="Item").click()
    page.get_by_role("option").first.wait_for()
    _no_planted_host(page, requests)  # the picker's options, titles with links and tags, are text
    page.keyboard.press("Escape")
    page.get_by_role("tab", name="For a new user").click()
    page.get_by_role("combobox", name="Items you have an opinion on").click()
    for _ in range(3):
        page.get_by_role("option").first.click()
    page.keyboard.press("Escape")
    page.locator('[data-testid="stSlider"]').nth(4).wait_for()
    _no_planted_host(page, requests)  # the sliders are labelled with titles
    shot(page, "injection-recommend")

    nav(page, "Biases")
    _no_planted_host(page, requests)
    nav(page, "Runs")
    page.get_by_role("combobox", name="Runs").click()
    _no_planted_host(page, requests)
    page.keyboard.press("Escape")
    shot(page, "injection-runs")
    page.goto(f"{srv.url}/evaluate?run=![x](http://{HOST}/r.png)")  # a crafted ?run= is not echoed
    page.get_by_text("no run here that you may open").wait_for()
    _no_planted_host(page, requests)
    page.context.close()


def test_the_upload_limit_is_stated_and_enforced(server, browser):
    from playwright.sync_api import expect

    srv, _ = server
    page = new_page(browser, srv.url)
    page.get_by_text("Upload a file").click()
    expect(page.get_by_text("Files up to 1 MB each")).to_be_visible()
    big = b"user,item,rating\n" + b"1,2,3\n" * 250_000  # 1.5 MB
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
        files=[{"name": "big.csv", "mimeType": "text/csv", "buffer": big}])
    expect(page.get_by_text("File must be 1.0MB or smaller")).to_be_visible()
    no_exception(page)
    shot(page, "upload-too-large")
    page.context.close()
