"""The embedded user list: Argon2 hashes (never the password), sessions that survive a restart, removal, the CLI."""
import sqlite3

import pytest

from cf_core.access import Principal
from cf_core.cli import main
from cf_core.users import UserDirectory, UserError


def test_passwords_are_hashed_with_argon2_and_verified(tmp_path):
    users = UserDirectory(tmp_path / "users.sqlite")
    users.add("alice", "correct horse", admin=True)
    stored = sqlite3.connect(tmp_path / "users.sqlite").execute("SELECT hash FROM users").fetchone()[0]
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert users.verify("alice", "correct horse") == Principal("alice", admin=True)
    assert users.verify("alice", "Correct horse") is None
    assert users.verify("nobody", "correct horse") is None
    assert [u.name for u in users.list()] == ["alice"] and users.list()[0].admin


@pytest.mark.parametrize("name, password, message", [
    ("", "long enough", "not a valid user name"),
    ("bad name", "long enough", "not a valid user name"),
    ("../etc", "long enough", "not a valid user name"),
    ("bob", "short", "at least 8 characters"),
])
def test_bad_names_and_short_passwords_are_refused(tmp_path, name, password, message):
    with pytest.raises(UserError, match=message):
        UserDirectory(tmp_path / "u.sqlite").add(name, password)


def test_a_name_is_added_once_and_reset_signs_out(tmp_path):
    users = UserDirectory(tmp_path / "u.sqlite")
    users.add("bob", "password-1")
    with pytest.raises(UserError, match="already a user"):
        users.add("bob", "password-2")
    token = users.start_session("bob")
    users.add("bob", "password-2", replace=True)
    assert users.session_principal(token) is None
    assert users.verify("bob", "password-1") is None and users.verify("bob", "password-2") == Principal("bob")


def test_sessions_survive_a_new_directory_object_end_at_sign_out_expiry_and_removal(tmp_path):
    path = tmp_path / "u.sqlite"
    UserDirectory(path).add("carol", "password-c")
    token = UserDirectory(path).start_session("carol")
    assert len(token) >= 43  # 256 bits
    assert UserDirectory(path).session_principal(token) == Principal("carol")  # as after a server restart
    stored = sqlite3.connect(path).execute("SELECT token_hash FROM sessions").fetchone()[0]
    assert token not in stored  # a copy of the file signs nobody in
    UserDirectory(path).end_session(token)
    assert UserDirectory(path).session_principal(token) is None
    expired = UserDirectory(path).start_session("carol", days=-1)
    assert UserDirectory(path).session_principal(expired) is None
    live = UserDirectory(path).start_session("carol")
    UserDirectory(path).remove("carol")
    assert UserDirectory(path).session_principal(live) is None
    for junk in (None, "", "x" * 500, "not-a-token"):
        assert UserDirectory(path).session_principal(junk) is None


def test_admins_named_in_the_config(tmp_path, monkeypatch):
    users = UserDirectory(tmp_path / "u.sqlite")
    users.add("dave", "password-d")
    assert not users.session_principal(users.start_session("dave")).admin
    monkeypatch.setenv("COLLAB_STUDIO_ADMINS", "erin, Dave")
    assert users.session_principal(users.start_session("dave")).admin


def test_cli_add_list_remove(tmp_path, monkeypatch, capsys):
    path = tmp_path / "team" / "users.sqlite"
    monkeypatch.setenv("COLLAB_STUDIO_USERS", str(path))
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("alice-password\n"))
    assert main(["users", "add", "alice", "--admin", "--password-stdin"]) == 0
    assert "added alice (admin)" in capsys.readouterr().out
    assert UserDirectory(path).verify("alice", "alice-password").admin
    assert main(["users", "list"]) == 0
    assert capsys.readouterr().out.startswith("alice\tadmin\t")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("short\n"))
    assert main(["users", "add", "bob", "--password-stdin"]) == 2
    assert "at least 8 characters" in capsys.readouterr().err
    assert main(["users", "remove", "alice"]) == 0
    assert main(["users", "remove", "alice"]) == 2
    assert "no user named 'alice'" in capsys.readouterr().err
    assert UserDirectory(path).list() == []


def test_user_list_names_cannot_look_like_identity_provider_names(tmp_path):
    for name in ("carol@example.com", "oidc:12345"):
        with pytest.raises(UserError, match="not a valid user name"):
            UserDirectory(tmp_path / "u.sqlite").add(name, "long enough")
