"""Tokens, passwords, the users file and the access rules: pure, driven with an explicit clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.access import Principal, can_issue_panel_token, can_listen, can_open_agent_stream, can_see_call
from console.auth import Signer, TokenError
from console.users import UserDirectory, UsersFileError, add_user, load_users, verify_password

SECRET = b"s" * 32
T = 1_800_000_000.0


def test_a_session_token_opens_until_it_expires():
    signer = Signer(SECRET)
    token = signer.issue_session("sam", now=T, ttl_s=60)
    assert signer.open_session(token, now=T + 59).username == "sam"
    with pytest.raises(TokenError) as exc:
        signer.open_session(token, now=T + 60)
    assert exc.value.reason == "expired"


@pytest.mark.parametrize(
    "mangle", [lambda t: t[:-2] + "AA", lambda t: "x" + t, lambda t: t.replace(".", ""), lambda t: ""]
)
def test_a_tampered_or_malformed_token_is_refused(mangle):
    signer = Signer(SECRET)
    token = signer.issue_session("sam", now=T, ttl_s=60)
    with pytest.raises(TokenError):
        signer.open_session(mangle(token), now=T)


def test_a_token_signed_with_another_secret_is_refused():
    token = Signer(b"o" * 32).issue_session("sam", now=T, ttl_s=60)
    with pytest.raises(TokenError) as exc:
        Signer(SECRET).open_session(token, now=T)
    assert exc.value.reason == "bad_signature"


def test_a_panel_token_is_not_a_session_and_a_session_is_not_a_panel_token():
    signer = Signer(SECRET)
    panel = signer.issue_panel("ava", now=T, ttl_s=300)
    assert signer.open_panel(panel, now=T).agent_id == "ava"
    with pytest.raises(TokenError):
        signer.open_session(panel, now=T)
    with pytest.raises(TokenError):
        signer.open_panel(signer.issue_session("ava", now=T, ttl_s=300), now=T)


def test_the_csrf_token_belongs_to_one_session():
    signer = Signer(SECRET)
    one = signer.open_session(signer.issue_session("sam", now=T, ttl_s=60), now=T)
    two = signer.open_session(signer.issue_session("sam", now=T, ttl_s=60), now=T)
    assert signer.check_csrf(one, signer.csrf_token(one))
    assert not signer.check_csrf(one, signer.csrf_token(two))
    assert not signer.check_csrf(one, None)


def test_add_user_hashes_with_argon2_and_the_file_holds_no_password(tmp_path: Path):
    path = tmp_path / "users.yaml"
    add_user(
        path, "sam", "correct horse", "supervisor", teams=("billing",), team_queues={"billing": ("billing",)}
    )
    text = path.read_text()
    assert "correct horse" not in text and "$argon2id$" in text
    assert path.stat().st_mode & 0o077 == 0
    users = load_users(path)
    assert verify_password(users.find("sam"), "correct horse")
    assert not verify_password(users.find("sam"), "wrong horse")
    assert not verify_password(users.find("nobody"), "correct horse")


def test_add_user_refuses_a_duplicate_an_unknown_team_and_a_short_password(tmp_path: Path):
    path = tmp_path / "users.yaml"
    add_user(path, "sam", "correct horse", "admin")
    with pytest.raises(UsersFileError, match="exists"):
        add_user(path, "sam", "another pass", "admin")
    with pytest.raises(UsersFileError, match="unknown teams"):
        add_user(path, "tess", "correct horse", "supervisor", teams=("nope",))
    with pytest.raises(UsersFileError, match="8 characters"):
        add_user(path, "tess", "short", "agent")
    add_user(path, "sam", "changed pass", "admin", replace=True)
    assert verify_password(load_users(path).find("sam"), "changed pass")


def test_a_broken_users_file_is_reported_in_one_line_without_its_content(tmp_path: Path):
    path = tmp_path / "users.yaml"
    path.write_text("users:\n  - {username: sam, role: wizard, password_hash: secret-hash}\n")
    with pytest.raises(UsersFileError) as exc:
        load_users(path)
    assert "role" in str(exc.value) and "secret-hash" not in str(exc.value)
    with pytest.raises(UsersFileError, match="does not exist"):
        load_users(tmp_path / "missing.yaml")


def test_the_directory_picks_up_a_user_added_while_running(tmp_path: Path):
    path = tmp_path / "users.json"
    add_user(path, "root", "correct horse", "admin")
    clock = [0.0]
    directory = UserDirectory(path, clock=lambda: clock[0])
    add_user(path, "ava", "correct horse", "agent")
    assert directory.users.find("ava") is None  # checked at most once a second
    clock[0] = 1.5
    assert directory.users.find("ava") is not None


ADMIN = Principal("root", "admin")
SAM = Principal("sam", "supervisor", queues=frozenset({"billing"}))
AVA = Principal("ava", "agent", agent_id="ava")
PANEL = Principal.panel("ava")


@pytest.mark.parametrize(
    ("who", "agent_id", "queue", "sees"),
    [
        (ADMIN, "bob", "tech", True),
        (SAM, "bob", "billing", True),
        (SAM, "bob", "tech", False),
        (SAM, "bob", None, False),
        (AVA, "ava", "tech", True),
        (AVA, "bob", "billing", False),
        (PANEL, "ava", "billing", False),
    ],
)
def test_who_sees_which_call(who, agent_id, queue, sees):
    assert can_see_call(who, agent_id=agent_id, queue=queue) is sees


def test_listen_in_is_for_supervisors_of_the_queue_and_panel_tokens_are_for_admins_to_issue():
    assert can_listen(SAM, agent_id="ava", queue="billing")
    assert not can_listen(SAM, agent_id="ava", queue="tech")
    assert not can_listen(AVA, agent_id="ava", queue="billing")
    assert can_open_agent_stream(AVA, "ava") and can_open_agent_stream(PANEL, "ava")
    assert not can_open_agent_stream(AVA, "bob") and not can_open_agent_stream(SAM, "ava")
    assert can_issue_panel_token(ADMIN) and not can_issue_panel_token(SAM)


def test_sign_in_is_refused_for_a_while_after_repeated_wrong_passwords():
    from console.throttle import SignInThrottle

    clock = [0.0]
    throttle = SignInThrottle(max_failures=3, window_s=60, clock=lambda: clock[0])
    for _ in range(3):
        assert throttle.retry_after_s("10.0.0.1", "Sam") == 0
        throttle.failed("10.0.0.1", "sam")
    assert throttle.retry_after_s("10.0.0.1", "SAM") == 60
    assert throttle.retry_after_s("10.0.0.2", "sam") == 0  # another address is not locked out
    clock[0] = 60.5
    assert throttle.retry_after_s("10.0.0.1", "sam") == 0
    throttle.failed("10.0.0.1", "sam")
    throttle.succeeded("10.0.0.1", "sam")
    assert throttle.retry_after_s("10.0.0.1", "sam") == 0
