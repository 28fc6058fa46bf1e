"""The sign-in and sign-out endpoints of team mode's embedded user list, mounted beside Streamlit's own (server.py).

The Streamlit script cannot set a cookie, so the sign-in form on the page is a plain HTML form that posts here:
the password goes to this endpoint once, never through the app's websocket; on success it answers with an HttpOnly,
SameSite=Lax session cookie and a redirect back to the page the person came from. Cross-site posts are refused by
their Origin header, and a name that fails too often is locked for a while.
"""
from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from cf_core.users import SESSION_DAYS, UserDirectory

COOKIE = "collab_studio_session"
SIGNIN_PATH, SIGNOUT_PATH = "/account/signin", "/account/signout"
MAX_FAILURES, LOCKOUT_SECONDS = 10, 15 * 60
_failures: dict[str, list[float]] = {}
_failures_lock = threading.Lock()


def safe_next(target: str | None) -> str:
    """A same-site path to go back to after signing in (never another host: no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def _with_param(path: str, key: str, value: str) -> str:
    parts = urlsplit(path)
    query = {k: v for k, v in parse_qs(parts.query).items() if k != key}
    query[key] = [value]
    return parts.path + "?" + urlencode(query, doseq=True)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None  # browsers send Origin on form posts; "null" is a sandboxed or privacy-stripped post
    return urlsplit(origin).netloc == request.headers.get("host")


def _locked(name: str) -> bool:
    now = time.time()
    with _failures_lock:
        recent = [t for t in _failures.get(name, []) if now - t < LOCKOUT_SECONDS]
        _failures[name] = recent
        return len(recent) >= MAX_FAILURES


def _failed(name: str) -> None:
    with _failures_lock:
        _failures.setdefault(name, []).append(time.time())


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


async def signin(request: Request) -> Response:
    if not _same_origin(request):
        return PlainTextResponse("Sign-in refused: the form was posted from another site.", status_code=403)
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    name, password = form.get("username", "").strip(), form.get("password", "")
    back = safe_next(form.get("next"))
    if _locked(name):
        return RedirectResponse(_with_param(back, "signin", "locked"), status_code=303)
    users = UserDirectory()
    who = users.verify(name, password) if name and password else None
    if who is None:
        _failed(name)
        return RedirectResponse(_with_param(back, "signin", "failed"), status_code=303)
    response = RedirectResponse(back, status_code=303)
    response.set_cookie(COOKIE, users.start_session(who.name), max_age=SESSION_DAYS * 86400, httponly=True,
                        samesite="lax", secure=_secure(request), path="/")
    return response


async def signout(request: Request) -> Response:
    if not _same_origin(request):
        return PlainTextResponse("Sign-out refused: the form was posted from another site.", status_code=403)
    UserDirectory().end_session(request.cookies.get(COOKIE))
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


ROUTES = [Route(SIGNIN_PATH, signin, methods=["POST"]), Route(SIGNOUT_PATH, signout, methods=["POST"])]
