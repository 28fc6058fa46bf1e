"""The app's modes and sign-in as AppTest sees them: local mode's one owner and its loopback-only rule; team mode's
sign-in page, the embedded user list's session and Streamlit's OIDC user (st.user) driving ownership.

What AppTest cannot do (a cookie from a real browser, the form post, a redirect) is in test_browser_team.py. An OIDC
round trip needs an identity provider, which this machine does not have: here the [auth] configuration is read, the
sign-in button appears, and a signed-in st.user owns runs and jobs.
"""
import pytest
from streamlit import config as st_config

from cf_core.access import Principal
from cf_core.store import RunStore
from cf_core.users import UserDirectory
from tests.app_helpers import app, open_page, tables

OIDC = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s" * 32,
        "client_id": "collab-studio", "client_secret": "secret",
        "server_metadata_url": "https://idp.example.com/.well-known/openid-configuration"}


@pytest.fixture
def team(app_env, monkeypatch):
    monkeypatch.setenv("COLLAB_STUDIO_MODE", "team")
    monkeypatch.setenv("COLLAB_STUDIO_USERS", str(app_env / "users.sqlite"))
    return UserDirectory(app_env / "users.sqlite")


def _signed_in_as(monkeypatch, users: UserDirectory, name: str) -> None:
    """The session cookie a browser would send after the sign-in form (ui/routes.py) answered."""
    users.add(name, f"{name}-password")
    token = users.start_session(name)
    monkeypatch.setattr("ui.auth.session_token", lambda: token)


def test_local_mode_owns_everything_without_sign_in(saved_run):
    at = open_page(app(), "views/runs.py")
    assert not at.exception and tables(at)[0]["id"].tolist() == [saved_run]


def test_local_mode_refuses_to_serve_the_network():
    previous = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    try:
        at = app().run()
    finally:
        st_config.set_option("server.address", previous)
    assert not at.exception and "Local mode has no sign-in" in at.error[0].value and "make serve" in at.error[0].value


def test_team_mode_without_any_sign_in_says_how_to_add_people(team):
    at = app().run()
    assert not at.exception and at.title[0].value == "Collab Studio"
    assert "python -m cf_core users add NAME" in at.warning[0].value
    assert not at.button  # nothing to press: no page, no data


def test_team_mode_signed_out_shows_the_form_on_every_page(team, saved_run):
    team.add("alice", "alice-password")
    at = app()
    at.query_params["run"] = saved_run  # a run id is not a key: nothing of the run shows
    at.run()
    assert not at.exception and at.title[0].value == "Collab Studio"
    assert any('action="/account/signin"' in h.proto.body for h in at.get("html"))
    assert not at.dataframe and not at.metric


def test_a_user_list_session_drives_ownership(team, monkeypatch, saved_run, trained):
    RunStore().save(trained, owner="bob", name="bob's run")
    _signed_in_as(monkeypatch, team, "bob")
    at = open_page(app(), "views/runs.py")
    assert not at.exception
    assert tables(at)[0]["name"].tolist() == ["bob's run"]  # not local mode's run
    assert any("Signed in as `bob`" in c.value for c in at.sidebar.caption)
    at = app()
    at.query_params["run"] = saved_run  # someone else's run id
    at = open_page(at, "views/evaluate.py")
    assert not at.exception and "no run here that you may open" in at.error[0].value and not at.metric


def test_oidc_configuration_shows_the_company_sign_in(team):
    at = app()
    at.secrets["auth"] = OIDC
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in with your company account"]


def test_the_oidc_user_owns_runs_and_jobs(team, trained, split_planted):
    store = RunStore()
    store.save(trained, owner="carol@example.com", name="carol's run")
    store.save(trained, owner="dave@example.com", name="dave's run")
    at = app()
    at.secrets["auth"] = OIDC
    at.user = {"is_logged_in": True, "email": "carol@example.com", "name": "Carol"}
    at = open_page(at, "views/runs.py")
    assert not at.exception and tables(at)[0]["name"].tolist() == ["carol's run"]
    assert [b.label for b in at.sidebar.button] == ["Sign out"]
    from ui import state

    train, valid = split_planted
    job = state.jobs().submit(train, valid, __import__("cf_core.config").config.TrainConfig(epochs=1),
                              owner=Principal("carol@example.com"), name="carol's job")
    at.query_params["job"] = job.id
    at.switch_page("views/train.py").run()
    assert not at.exception and not any("not yours" in w.value for w in at.warning)
    at.user = {"is_logged_in": True, "email": "dave@example.com"}
    at.query_params["job"] = job.id
    at.run()
    assert any("That training job is not yours" in w.value for w in at.warning)


def test_a_tab_that_changes_hands_forgets_the_previous_persons_data(team, monkeypatch):
    """A stale tab reconnecting after someone else signed in with the same browser must not hand over the first
    person's dataset, job or current run (the review's reproduction: Alice's upload shown to Bob)."""
    from cf_core.data import read_ratings
    from ui import state

    _signed_in_as(monkeypatch, team, "alice")
    at = open_page(app(), "views/data.py")
    frame = __import__("pandas").DataFrame({"user": [1, 1, 2, 2], "item": [1, 2, 1, 2], "rating": [1, 2, 3, 4]})
    at.session_state["dataset"] = state.Dataset("alice-secret.csv", read_ratings(frame))
    at.session_state["job_id"] = "alices-job"
    at.run()
    assert at.session_state["dataset"].name == "alice-secret.csv"
    _signed_in_as(monkeypatch, team, "bob")
    at.run()
    assert not at.exception and "dataset" not in at.session_state and "job_id" not in at.session_state
    assert "No dataset yet" in at.info[0].value


def test_an_unverified_oidc_email_is_not_an_identity(team, trained):
    """A provider that says the e-mail is unverified: the person is known by the provider's subject instead, which
    cannot equal a user-list name or someone's e-mail."""
    from ui import auth

    RunStore().save(trained, owner="carol@example.com", name="carol's run")
    at = app()
    at.secrets["auth"] = OIDC
    at.user = {"is_logged_in": True, "email": "carol@example.com", "email_verified": False, "sub": "12345"}
    at = open_page(at, "views/runs.py")
    assert not at.exception and "No saved runs of yours yet" in at.info[0].value
    assert any("oidc:12345" in c.value for c in at.sidebar.caption)
    assert auth.host_name("[::1]:8501") == "::1" and auth.host_name("Evil.test:8501") == "evil.test"
