"""Console users, roles and teams from a YAML or JSON file; argon2 password hashes; `add_user`.

File shape::

    teams:
      billing: {queues: [billing, billing-vip]}
    users:
      - {username: sam, role: supervisor, teams: [billing], password_hash: "$argon2id$..."}
      - {username: ava, role: agent, agent_id: ava, password_hash: "$argon2id$..."}

A supervisor sees the calls of the queues of their teams; an admin sees every call; an agent
sees the calls whose agent_id is theirs (their username unless `agent_id` says otherwise).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Role = Literal["admin", "supervisor", "agent"]
ROLES: tuple[Role, ...] = ("admin", "supervisor", "agent")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"

_hasher = PasswordHasher()
# Verifying against this when the user does not exist costs the same as a real check, so the
# response time does not tell which usernames exist.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


class Team(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    queues: tuple[str, ...] = ()


class User(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    username: str = Field(pattern=_NAME)
    role: Role
    password_hash: str = Field(min_length=1)
    teams: tuple[str, ...] = ()
    agent_id: str = ""  # agents: the agent_id their calls carry; default the username
    display_name: str = ""

    @property
    def effective_agent_id(self) -> str:
        return self.agent_id or self.username


class UsersFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    teams: dict[str, Team] = Field(default_factory=dict)
    users: tuple[User, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> UsersFile:
        names = [u.username for u in self.users]
        if len(names) != len(set(names)):
            raise ValueError("a username appears twice")
        for user in self.users:
            unknown = [t for t in user.teams if t not in self.teams]
            if unknown:
                raise ValueError(f"user {user.username} names unknown teams {unknown}")
        return self

    def queues_of(self, user: User) -> frozenset[str]:
        return frozenset(q for team in user.teams for q in self.teams[team].queues)

    def find(self, username: str) -> User | None:
        return next((u for u in self.users if u.username == username), None)


class UsersFileError(Exception):
    """The users file cannot be read or does not fit its schema (one line, no secrets)."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(user: User | None, password: str) -> bool:
    """True when `password` is the user's; costs one argon2 check whether or not the user exists."""
    try:
        return _hasher.verify(user.password_hash if user else _DUMMY_HASH, password) and user is not None
    except (VerificationError, InvalidHashError):
        return False


def load_users(path: Path) -> UsersFile:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsersFileError(f"users file {path} does not exist: create it with add-user") from None
    except OSError as exc:
        raise UsersFileError(f"cannot read users file {path}: {exc.strerror}") from None
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError):
        raise UsersFileError(f"users file {path} is not valid {path.suffix.lstrip('.') or 'YAML'}") from None
    try:
        return UsersFile.model_validate(data or {})
    except ValidationError as exc:
        where = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}" for err in exc.errors()
        )
        raise UsersFileError(f"users file {path}: {where}"[:500]) from None


def save_users(path: Path, users: UsersFile) -> None:
    """Write atomically (a reader never sees half a file), readable by the owner only."""
    data = users.model_dump(mode="json")
    text = json.dumps(data, indent=2) if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_user(
    path: Path,
    username: str,
    password: str,
    role: Role,
    *,
    teams: tuple[str, ...] = (),
    agent_id: str = "",
    team_queues: dict[str, tuple[str, ...]] | None = None,
    replace: bool = False,
) -> User:
    """Create (or with `replace`, update) a user in the file, creating the file and teams as needed.

    `team_queues` defines or redefines teams (name -> queues) in the same write.
    """
    if len(password) < 8:
        raise UsersFileError("password must have at least 8 characters")
    current = load_users(path) if path.exists() else UsersFile()
    team_map = dict(current.teams)
    for name, queues in (team_queues or {}).items():
        team_map[name] = Team(queues=tuple(queues))
    if current.find(username) and not replace:
        raise UsersFileError(f"user {username} exists (pass replace to change them)")
    try:
        user = User(
            username=username,
            role=role,
            password_hash=hash_password(password),
            teams=teams,
            agent_id=agent_id,
        )
        updated = UsersFile(
            teams=team_map, users=tuple(u for u in current.users if u.username != username) + (user,)
        )
    except ValidationError as exc:
        raise UsersFileError("; ".join(_problem(err) for err in exc.errors())[:300]) from None
    save_users(path, updated)
    return user


def _problem(err: Any) -> str:
    field = ".".join(str(p) for p in err["loc"]) or "user"
    if err["type"] == "string_pattern_mismatch":
        return f"{field}: 1 to 64 letters, digits and _.@- (starting with a letter or digit)"
    return f"{field}: {err['msg']}"


class UserDirectory:
    """The users file as loaded, reloaded when it changes on disk (checked at most once a second)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._mtime = self._stat()
        self._users = load_users(path)
        self._checked = clock()

    def _stat(self) -> float | None:
        try:
            return self._path.stat().st_mtime_ns
        except OSError:
            return None

    @property
    def users(self) -> UsersFile:
        now = self._clock()
        if now - self._checked >= 1.0:
            with self._lock:
                self._checked = now
                mtime = self._stat()
                if mtime is not None and mtime != self._mtime:
                    try:
                        self._users = load_users(self._path)
                        self._mtime = mtime
                    except UsersFileError:
                        pass  # keep serving the last good file; the operator fixes the new one
        return self._users
