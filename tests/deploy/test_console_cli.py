"""`callscope console add-user` writes argon2 users the console signs in; `console` refuses to start
without a usable users file, in one line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from console.users import load_users, verify_password
from deploy.cli import main


def add_user(monkeypatch: pytest.MonkeyPatch, password: str, *argv: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))  # not a terminal: one line is read
    return main(["console", "add-user", *argv])


def test_added_users_sign_in_with_their_password_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = tmp_path / "users.yaml"
    assert add_user(monkeypatch, "correct horse", "ava", "--role", "agent", "--users-file", str(users)) == 0
    args = ["sam", "--role", "supervisor", "--team", "billing", "--team-queues", "billing=billing,vip"]
    assert add_user(monkeypatch, "battery staple", *args, "--users-file", str(users)) == 0
    loaded = load_users(users)
    ava, sam = loaded.find("ava"), loaded.find("sam")
    assert verify_password(ava, "correct horse") and not verify_password(ava, "battery staple")
    assert loaded.queues_of(sam) == {"billing", "vip"}
    assert "correct horse" not in users.read_text()  # only the hash is stored
    assert users.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("password", "argv", "complaint"),
    [
        ("short", ["ava", "--role", "agent"], "at least 8"),
        ("long enough", ["ava", "--role", "agent", "--team-queues", "billing"], "TEAM=Q1,Q2"),
        ("long enough", ["bad name!", "--role", "agent"], "username"),
    ],
)
def test_a_bad_user_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, password: str, argv: list[str], complaint: str
) -> None:
    assert add_user(monkeypatch, password, *argv, "--users-file", str(tmp_path / "u.yaml")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("callscope console:") and complaint in err and "\n" not in err
    assert "Traceback" not in err


def test_the_console_does_not_start_without_its_users_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("CALLSCOPE_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setenv("CALLSCOPE_CONSOLE_USERS_FILE", str(tmp_path / "missing.yaml"))
    assert main(["console"]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.yaml" in err and "\n" not in err
