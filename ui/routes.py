"""The sign-in and sign-out endpoints of team mode's embedded user list, mounted beside Streamlit's own (server.py).

The Streamlit script cannot set a cookie, so the sign-in form on the page is a plain HTML form that posts here:
the password goes to this endpoint once, never through the app's websocket; on success it answers with an HttpOnly,
SameSite=Lax session cookie and a redirect back to the page the person came from. Cross-site posts are refused by
their Origin header; bodies over 4 KB are refused unread; the Argon2 check runs off the event loop, two at a time,
so a flood of sign-in attempts neither stalls the app's pages nor takes the memory (64 MB a check). Failures are
counted per client address and name (10 in 15 minutes lock that pair: a stranger elsewhere cannot lock a colleague
out) and per client address (30 lock that address: password spraying across names), in memory and bounded.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from cf_core.users import SESSION_DAYS, USER_NAME, UserDirectory

COOKIE = "collab_studio_session"
SIGNIN_PATH, SIGNOUT_PATH = "/account/signin", "/account/signout"
MAX_FAILURES, MAX_CLIENT_FAILURES, LOCKOUT_SECONDS = 10, 30, 15 * 60
MAX_BODY, MAX_PASSWORD, MAX_TRACKED = 4096, 1024, 10_000
_failures: OrderedDict[tuple[str, str], list[float]] = OrderedDict()  # (client, name or "") -> failure times
_failures_lock = threading.Lock()
# Each Argon2 check takes ~0.1 s and 64 MB: at most two at a time, the rest wait their turn without a thread.
_verify_slots = asyncio.Semaphore(2)


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


def _recent(key: tuple[str, str], now: float) -> list[float]:
    recent = [t for t in _failures.get(key, []) if now - t < LOCKOUT_SECONDS]
    if recent:
        _failures[key] = recent
    else:
        _failures.pop(key, None)
    return recent


def _locked(client: str, name: str) -> bool:
    now = time.time()
    with _failures_lock:
        return (len(_recent((client, name), now)) >= MAX_FAILURES
                or len(_recent((client, ""), now)) >= MAX_CLIENT_FAILURES)


def _failed(client: str, name: str) -> None:
    now = time.time()
    with _failures_lock:
        for key in ((client, name), (client, "")):
            _failures.setdefault(key, []).append(now)
            _failures.move_to_end(key)
        while len(_failures) > MAX_TRACKED:  # the oldest entries go first: memory stays bounded
            _failures.popitem(last=False)


async def _form(request: Request) -> dict[str, str] | None:
    """The url-encoded form, or None when the body is larger than a sign-in form can be."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


async def signin(request: Request) -> Response:
    if not _same_origin(request):
        return PlainTextResponse("Sign-in refused: the form was posted from another site.", status_code=403)
    form = await _form(request)
    if form is None:
        return PlainTextResponse("Sign-in refused: the form is too large.", status_code=413)
    name, password = form.get("username", "").strip(), form.get("password", "")
    back = safe_next(form.get("next"))
    client = request.client.host if request.client else ""
    if not USER_NAME.match(name) or not password or len(password) > MAX_PASSWORD:
        return RedirectResponse(_with_param(back, "signin", "failed"), status_code=303)  # no such user can exist
    if _locked(client, name):
        return RedirectResponse(_with_param(back, "signin", "locked"), status_code=303)
    users = UserDirectory()
    async with _verify_slots:
        who = await run_in_threadpool(users.verify, name, password)  # not on the event loop
    if who is None:
        _failed(client, name)
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
