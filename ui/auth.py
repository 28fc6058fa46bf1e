"""Who is using this browser tab: local mode's one person, a signed-in team member, or a visitor with a share link.

Local mode (`make run`, the default) serves 127.0.0.1 only and needs no sign-in: its one person owns everything.
Team mode (`make serve`, COLLAB_STUDIO_MODE=team) listens on the network and needs a sign-in, through the company's
identity provider (Streamlit's OIDC: `st.login`, `st.user`, the `[auth]` section of .streamlit/secrets.toml) or the
embedded user list (cf_core.users; the form posts to ui/routes.py, which sets an HttpOnly session cookie). The
identity is read afresh on every run from the cookie, so it survives a reload and a server restart, never from
session state.
"""
from __future__ import annotations

import html
import os
from urllib.parse import urlencode, urlsplit

import streamlit as st

from cf_core.access import ANONYMOUS, LOCAL, Principal
from cf_core.access import principal as named
from cf_core.users import UserDirectory, default_path

from . import routes

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def mode() -> str:
    """'local' or 'team', from $COLLAB_STUDIO_MODE (local unless it says team)."""
    return "team" if os.environ.get("COLLAB_STUDIO_MODE", "local").strip().lower() == "team" else "local"


def local_address_problem() -> str | None:
    """Why local mode must not serve this connection (it has no sign-in), or None when it is this machine's own.

    It listens on loopback only, and answers only a page whose address names this machine: a web page elsewhere
    whose domain was rebound to 127.0.0.1 (DNS rebinding) reaches the socket, but with its own host name.
    """
    if mode() != "local":
        return None
    address = st.get_option("server.address") or ""
    if address not in LOOPBACK:
        return (f"Local mode has no sign-in, so it serves this machine only, but the server listens on "
                f"{address or 'every network address'}. Start it with `make run` (127.0.0.1), or run it for a team "
                "with `make serve`, which asks everyone to sign in.")
    host = host_name(st.context.headers.get("Host") if st.context.headers else None)
    if host is not None and host not in LOOPBACK:
        return ("Local mode answers only addresses of this machine (localhost, 127.0.0.1), not "
                f"{host}. Open http://localhost:{st.get_option('server.port')} instead.")
    return None


def host_name(header: str | None) -> str | None:
    """The host of a Host header, without its port ([::1]:8501 -> ::1); None without a header."""
    if not isinstance(header, str) or not header:
        return None
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def oidc_configured() -> bool:
    """Whether .streamlit/secrets.toml has an [auth] section for Streamlit's OIDC sign-in."""
    try:
        auth = st.secrets.get("auth")
    except (FileNotFoundError, KeyError, OSError):
        return False
    return bool(auth) and bool(auth.get("redirect_uri") or any(isinstance(v, dict) for v in auth.values()))


def _oidc_principal() -> Principal | None:
    try:
        user = st.user
        if not user.get("is_logged_in"):
            return None
    except (AttributeError, KeyError, st.errors.StreamlitAPIException):
        return None
    email = user.get("email")
    if email and user.get("email_verified") is not False:
        return named(str(email).strip().lower())
    sub = user.get("sub")
    return named(f"oidc:{sub}") if sub else None  # ':' is not allowed in user-list names, so never a collision


@st.cache_resource(show_spinner=False)
def _users(path: str) -> UserDirectory:
    return UserDirectory(path)


def users() -> UserDirectory:
    """The user list, opened (its tables created) once per server, not on every rerun."""
    return _users(str(default_path()))


def session_token() -> str | None:
    """The embedded user list's session cookie sent with this tab's connection."""
    return st.context.cookies.get(routes.COOKIE)


def principal() -> Principal:
    """Who is asking, for this run of the script."""
    if mode() == "local":
        return LOCAL
    who = _oidc_principal() if oidc_configured() else None
    if who is None:
        who = users().session_principal(session_token())
    return who or ANONYMOUS


def _here() -> str:
    """The path and query of this page, to come back to after signing in."""
    parts = urlsplit(st.context.url or "/")
    query = {k: v for k, v in st.query_params.to_dict().items() if k != "signin"}
    return (parts.path or "/") + ("?" + urlencode(query) if query else "")


SIGNIN_MESSAGES = {"failed": "That user name and password do not match. Try again.",
                   "locked": "Too many failed attempts from this computer: wait a quarter of an hour and try again."}


def signin_panel() -> None:
    """The sign-in choices team mode offers: the identity provider's button and/or the user list's form."""
    problem = st.query_params.get("signin")
    if problem in SIGNIN_MESSAGES:
        st.error(SIGNIN_MESSAGES[problem], icon=":material/error:")
    if oidc_configured():
        st.button("Sign in with your company account", key="oidc_login", type="primary", icon=":material/login:",
                  on_click=st.login)
    has_users = len(users()) > 0
    if has_users:
        # A plain form that posts to ui/routes.py: the password never goes through the websocket.
        st.html(f"""
<form method="post" action="{routes.SIGNIN_PATH}" class="cs-signin" autocomplete="on">
  <input type="hidden" name="next" value="{html.escape(_here(), quote=True)}">
  <label>User name<br><input name="username" autocomplete="username" required></label>
  <label>Password<br><input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Sign in</button>
</form>
<style>
.cs-signin {{ display: flex; flex-direction: column; gap: .75rem; max-width: 22rem; font-family: sans-serif; }}
.cs-signin label {{ font-size: .9rem; color: #1f2430; }}
.cs-signin input {{ width: 100%; box-sizing: border-box; padding: .5rem .6rem; margin-top: .25rem;
  border: 1px solid #ced4da; border-radius: .5rem; font-size: 1rem; }}
.cs-signin button {{ align-self: flex-start; padding: .5rem 1.1rem; border: 0; border-radius: .5rem;
  background: #d6336c; color: white; font-size: 1rem; cursor: pointer; }}
</style>""")
    if not has_users and not oidc_configured():
        st.warning("No sign-in is set up on this server yet. Whoever runs it adds people with "
                   "`python -m cf_core users add NAME` (or configures a company sign-in in "
                   "`.streamlit/secrets.toml`), then they can sign in here.", icon=":material/warning:")


def signout_control(who: Principal) -> None:
    """The sidebar's "signed in as" line and its sign-out (a form post for the user list, st.logout for OIDC)."""
    from .safe import lit

    st.caption(f"Signed in as {lit(who.name)}" + (" (admin)" if who.admin else ""))
    if oidc_configured() and _oidc_principal() is not None:
        st.button("Sign out", key="oidc_logout", icon=":material/logout:", on_click=st.logout)
    else:
        st.html(f"""<form method="post" action="{routes.SIGNOUT_PATH}" style="margin:0">
<button type="submit" style="padding:.3rem .8rem;border:1px solid #ced4da;border-radius:.5rem;background:white;
cursor:pointer;font-size:.9rem">Sign out</button></form>""")
