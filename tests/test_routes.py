"""The sign-in and sign-out endpoints (ui/routes.py) over real HTTP against a team-mode server: the cookie and its
flags, no open redirect, cross-site posts refused, oversized forms refused unread, failures counted per client
address and name (a stranger cannot lock a colleague out) and per address, in bounded memory."""
import http.client
import time
from urllib.parse import urlencode, urlsplit

import pytest

from tests.browser_helpers import Server
from ui import routes


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("routes"), mode="team")
    srv.cli("users", "add", "alice", "--password-stdin", stdin="alice-password\n")
    yield srv.start()
    srv.stop()


def post(srv, path, form=None, body=None, headers=None):
    con = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    data = body if body is not None else urlencode(form or {}).encode()
    con.request("POST", path, data, {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
    response = con.getresponse()
    response.read()
    con.close()
    return response


def sign_in(srv, name="alice", password="alice-password", client=None, next_="/runs"):
    headers = {"X-Test-Client": client} if client else {}
    return post(srv, routes.SIGNIN_PATH, {"username": name, "password": password, "next": next_}, headers=headers)


def test_a_good_sign_in_sets_an_httponly_cookie_and_returns_to_the_page(team):
    response = sign_in(team)
    assert response.status == 303 and response.getheader("Location") == "/runs"
    cookie = response.getheader("Set-Cookie")
    assert cookie.startswith(f"{routes.COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain HTTP here; behind HTTPS (X-Forwarded-Proto) it is Secure
    secure = post(team, routes.SIGNIN_PATH, {"username": "alice", "password": "alice-password"},
                  headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in secure.getheader("Set-Cookie")
    token = cookie.split(";")[0].split("=", 1)[1]
    out = post(team, routes.SIGNOUT_PATH, headers={"Cookie": f"{routes.COOKIE}={token}"})
    assert out.status == 303 and f"{routes.COOKIE}=" in out.getheader("Set-Cookie")
    from cf_core.users import UserDirectory

    assert UserDirectory(team.tmp / "users.sqlite").session_principal(token) is None  # ended on the server


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "evil", ""])
def test_no_open_redirect(team, target):
    response = sign_in(team, next_=target)
    assert response.status == 303 and urlsplit(response.getheader("Location")).netloc == ""
    assert response.getheader("Location") == "/"


def test_cross_site_and_oversized_posts_are_refused(team):
    assert post(team, routes.SIGNIN_PATH, {"username": "alice", "password": "alice-password"},
                headers={"Origin": "http://evil.example"}).status == 403
    assert post(team, routes.SIGNOUT_PATH, headers={"Origin": "null"}).status == 403
    assert post(team, routes.SIGNIN_PATH, body=b"username=" + b"a" * 20_000 + b"&password=x").status == 413


def test_a_wrong_password_says_so_and_the_health_check_stays_quick(team):
    response = sign_in(team, password="wrong-password")
    assert response.status == 303 and response.getheader("Location") == "/runs?signin=failed"
    assert "Set-Cookie" not in dict(response.getheaders())
    import threading
    import urllib.request

    threads = [threading.Thread(target=sign_in, args=(team, f"user{i}", "wrong-password")) for i in range(30)]
    for t in threads:
        t.start()
    time.sleep(0.3)  # the sign-ins are being checked now
    t0 = time.perf_counter()
    with urllib.request.urlopen(f"{team.url}/_stcore/health", timeout=30) as r:
        assert r.read() == b"ok"
    health = time.perf_counter() - t0
    for t in threads:
        t.join()
    assert health < 1.5, health  # the Argon2 checks run in a thread pool, not on the event loop


def test_failures_lock_a_client_and_name_not_the_colleague(monkeypatch):
    """The counting itself (a server sees one client address here, so this part runs in-process)."""
    monkeypatch.setattr(routes, "_failures", routes.OrderedDict())
    for _ in range(routes.MAX_FAILURES):
        routes._failed("10.0.0.66", "alice")
    assert routes._locked("10.0.0.66", "alice")
    assert not routes._locked("10.0.0.7", "alice")  # alice at her own desk still signs in
    assert not routes._locked("10.0.0.66", "bob")
    for i in range(routes.MAX_CLIENT_FAILURES):
        routes._failed("10.0.0.99", f"name{i}")  # one password sprayed over many names
    assert routes._locked("10.0.0.99", "carol")
    monkeypatch.setattr(routes, "MAX_TRACKED", 50)
    for i in range(500):
        routes._failed(f"10.1.{i // 250}.{i % 250}", "x")
    assert len(routes._failures) <= 50
