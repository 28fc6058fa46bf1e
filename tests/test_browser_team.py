"""Team mode in a real browser (Playwright + Debian's Chromium): two people, Alice and Bob, on one shared server.

Alice signs in and trains; Bob cannot see or stop her job through its ?job= URL; Alice makes a sign-in-only share
link; the server restarts; Bob's first visit after the restart is that deep link, and he sees her run on the
explore pages while his Runs page lists none of her runs and no control of his can delete it; an anonymous browser
is refused that link but opens an open one, seeing the explore pages only; Alice revokes the link and Bob's next
visit is refused in plain words; reloading keeps Alice signed in, and signing out works.
"""
import pytest

from cf_core.access import Principal
from cf_core.store import RunStore
from tests.browser_helpers import Server, browser, nav, needs_chromium, new_page, no_exception, shot

pytestmark = needs_chromium
__all__ = ["browser"]
ALICE, BOB = ("alice", "alice-password"), ("bob", "bob-password")


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("team"), mode="team")
    for name, password in (ALICE, BOB):
        srv.cli("users", "add", name, "--password-stdin", stdin=password + "\n")
    yield srv.start()
    srv.stop()


def sign_in(page, who: tuple[str, str]) -> None:
    """Fill the sign-in form on the page shown (any page of a signed-out tab shows it)."""
    page.get_by_label("User name").fill(who[0])
    page.get_by_label("Password").fill(who[1])
    page.get_by_role("button", name="Sign in").click()
    page.locator('[data-testid="stSidebar"]').get_by_text(f"Signed in as {who[0]}").wait_for()


def sidebar_pages(page) -> list[str]:
    return [t.strip().split("\n")[-1] for t in page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()]


def test_two_people_share_a_run_through_a_link(team, browser):
    from playwright.sync_api import expect

    # A stranger who opens the server sees only the sign-in form: no pages, no data.
    stranger = new_page(browser, team.url)
    expect(stranger.get_by_role("button", name="Sign in")).to_be_visible()
    assert sidebar_pages(stranger) == []
    stranger.get_by_label("User name").fill("alice")
    stranger.get_by_label("Password").fill("not-her-password")
    stranger.get_by_role("button", name="Sign in").click()
    expect(stranger.get_by_text("do not match")).to_be_visible()
    shot(stranger, "team-0-signin")
    stranger.context.close()

    # Alice signs in, trains, and keeps her job's URL.
    alice = new_page(browser, team.url)
    sign_in(alice, ALICE)
    alice.get_by_role("button", name="Use MovieLens 100k").click()
    expect(alice.locator('[data-testid="stMetricValue"]').first).to_have_text("120")
    nav(alice, "Train")
    sweeps = alice.get_by_role("spinbutton", name="Sweeps (epochs)")
    sweeps.fill("8")
    sweeps.press("Enter")
    alice.wait_for_timeout(500)
    alice.get_by_role("button", name="Start training").click()
    alice.get_by_text("Done in").wait_for()
    job_url = alice.url
    assert "job=" in job_url
    store = RunStore(team.runs)
    (run,) = store.list(Principal("alice"))
    # A second run of hers that she never shares.
    private = store.save(store.load(run.id, Principal("alice"), device="cpu").recommender, owner="alice",
                         name="alice-private", dataset="MovieLens 100k")

    # Bob signs in; Alice's ?job= URL shows him nothing of her job, and no Stop.
    bob = new_page(browser, team.url)
    sign_in(bob, BOB)
    bob.goto(job_url)
    bob.get_by_role("heading", name="Train", level=1).wait_for()
    expect(bob.get_by_text("That training job is not yours")).to_be_visible()
    assert bob.get_by_text("Done in").count() == 0 and bob.get_by_role("button", name="Stop").count() == 0
    assert bob.locator(".js-plotly-plot").count() == 0
    shot(bob, "team-1-bob-on-alices-job")

    # Alice makes a link that needs sign-in.
    nav(alice, "Runs")
    alice.get_by_role("combobox", name="Run", exact=True).click()
    alice.get_by_role("option", name=f"{run.name} ·", exact=False).first.click()
    alice.get_by_role("button", name="Make a share link").click()
    code = alice.locator('[data-testid="stCode"] code').first
    code.wait_for()
    signed_link = code.inner_text().strip()
    token = store.shares(run.id, Principal("alice"))[0].token
    assert signed_link.endswith(f"/evaluate?share={token}") and run.id not in signed_link
    shot(alice, "team-2-alice-runs")

    # The server restarts. Bob's first visit after it is the deep link: he is still signed in and sees her run.
    team.stop()
    team.start()
    bob.goto(signed_link)
    bob.get_by_role("heading", name="Evaluate", level=1).wait_for()
    expect(bob.locator('[data-testid="stSidebar"]')).to_contain_text("Signed in as bob")
    expect(bob.get_by_text("shared by alice")).to_be_visible()
    expect(bob.locator('[data-testid="stMetricValue"]').first).to_have_text(
        f"{run.metrics['valid_rmse']:.4f}")
    no_exception(bob)
    shot(bob, "team-3-bob-evaluate")
    for title in ("Embeddings", "Biases", "Recommend"):
        nav(bob, title)
        expect(bob.get_by_text("shared by alice")).to_be_visible()
        no_exception(bob)
        assert bob.get_by_role("button", name="Delete").count() == 0
    nav(bob, "Runs")
    expect(bob.get_by_text("No saved runs of yours yet")).to_be_visible()
    assert bob.locator('[data-testid="stDataFrame"]').count() == 0  # no runs table: none of hers
    expect(bob.get_by_role("heading", name="Shared with you")).to_be_visible()
    assert bob.get_by_text("alice-private").count() == 0
    for control in ("Delete", "Rename", "Make a share link", "Revoke"):
        assert bob.get_by_role("button", name=control).count() == 0
    shot(bob, "team-4-bob-runs")

    # An anonymous browser is refused the sign-in link, and opens an open one: the explore pages and nothing else.
    anon = new_page(browser, signed_link)
    expect(anon.get_by_text("This share link is for signed-in people")).to_be_visible()
    expect(anon.get_by_role("button", name="Sign in")).to_be_visible()
    assert anon.get_by_text("shared by alice").count() == 0
    alice.reload()  # after the restart too, she is still signed in
    alice.get_by_role("heading", name="Runs", level=1).wait_for()
    expect(alice.locator('[data-testid="stSidebar"]')).to_contain_text("Signed in as alice")
    alice.get_by_role("combobox", name="Run", exact=True).click()
    alice.get_by_role("option", name=f"{run.name} ·", exact=False).first.click()
    alice.get_by_text("Open to anyone with the link, without signing in").click()
    alice.get_by_role("button", name="Make a share link").click()
    expect(alice.get_by_text("Open to anyone with it")).to_be_visible()
    open_link = next(s.token for s in store.shares(run.id, Principal("alice")) if s.public)
    anon.goto(f"{team.url}/evaluate?share={open_link}")
    anon.get_by_role("heading", name="Evaluate", level=1).wait_for()
    expect(anon.get_by_text("shared by alice")).to_be_visible()
    assert sidebar_pages(anon) == ["Evaluate", "Embeddings", "Biases", "Recommend", "Sign in"]
    nav(anon, "Embeddings")
    anon.locator(".js-plotly-plot .scatterlayer .point").first.wait_for()
    no_exception(anon)
    shot(anon, "team-5-anonymous-embeddings")
    anon.goto(f"{team.url}/runs?share={open_link}")  # a page outside the link's reach: not there for this visitor
    expect(anon.get_by_text("Page not found")).to_be_visible()
    assert anon.get_by_text("alice-private").count() == 0 and anon.locator('[data-testid="stDataFrame"]').count() == 0

    # Alice revokes the sign-in link: Bob's next visit is refused in plain words, and it leaves his Runs page.
    nav(alice, "Runs")
    alice.get_by_role("combobox", name="Run", exact=True).click()
    alice.get_by_role("option", name=f"{run.name} ·", exact=False).first.click()
    alice.locator('[data-testid="stCode"] code', has_text=token).wait_for()
    revoke = [s.token for s in store.shares(run.id, Principal("alice"))].index(token)
    alice.get_by_role("button", name="Revoke").nth(revoke).click()
    alice.locator('[data-testid="stCode"] code', has_text=token).wait_for(state="detached")
    bob.goto(signed_link)
    expect(bob.get_by_text("This share link was revoked")).to_be_visible()
    assert bob.get_by_text("shared by alice").count() == 0
    no_exception(bob)
    shot(bob, "team-6-bob-revoked")
    nav(bob, "Runs")
    assert bob.get_by_role("heading", name="Shared with you").count() == 0

    # Signing out works: the next page asks for sign-in again.
    alice.get_by_role("button", name="Sign out").click()
    expect(alice.get_by_role("button", name="Sign in")).to_be_visible()
    alice.goto(team.url + "/runs")
    expect(alice.get_by_role("button", name="Sign in")).to_be_visible()
    assert private not in alice.content()
    for page in (alice, bob, anon):
        page.context.close()
