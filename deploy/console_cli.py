"""`callscope console` (serve the supervisor console and agent streams) and `console add-user`."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from deploy.cli_common import (
    SHARED_ENV,
    UsageError,
    env_block,
    formatter,
    require_env,
    run_stage,
    stage_env_rows,
)

_ENV = env_block(
    "environment (the console)",
    [
        ("CALLSCOPE_DATABASE_URL", "postgresql+asyncpg://... for history and search (unset: live only)"),
        ("CALLSCOPE_CONSOLE_HOST", "listen address (default 127.0.0.1)"),
        ("CALLSCOPE_CONSOLE_PORT", "listen port (default 8080)"),
        ("CALLSCOPE_CONSOLE_USERS_FILE", "users, roles and teams (default console-users.yaml)"),
        ("CALLSCOPE_CONSOLE_SESSION_SECRET", "HMAC key of sessions and panel tokens (>= 32 characters)"),
        ("CALLSCOPE_CONSOLE_*", "more in console/config.py, e.g. _SECURE_COOKIES, _READBACK_S"),
        *stage_env_rows("CALLSCOPE_CONSOLE_", "127.0.0.1:9405"),
    ],
)


def add_console_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    console = sub.add_parser(
        "console",
        parents=[parent],
        help="supervisor console and agent hint stream (web): transcript + assist topics, PostgreSQL",
        description=(
            "Serves the live wall, call view with listen-in, history and full-text search, and the\n"
            "agents' hint streams and embeddable panel, from one process. Live data comes from the\n"
            "transcript, assist and audio topics (every partition: replicas need no coordination),\n"
            "history from PostgreSQL. Every page and API route checks who is asking."
        ),
        epilog=SHARED_ENV + _ENV + "\nRuns until SIGTERM or SIGINT.",
        formatter_class=formatter,
    )
    console.set_defaults(handler=cmd_console)
    actions = console.add_subparsers(dest="console_command", metavar="ACTION")
    add_user = actions.add_parser(
        "add-user",
        parents=[parent],
        help="create or update a console user (the password is read from the terminal or stdin)",
        description=(
            "Adds a user to the users file (created if missing), with an argon2id password hash.\n"
            "The password is asked for on a terminal, else read as one line from standard input;\n"
            "never from the command line. A running console picks the change up within a second."
        ),
        formatter_class=formatter,
    )
    add_user.add_argument("username")
    add_user.add_argument("--role", choices=("admin", "supervisor", "agent"), required=True)
    add_user.add_argument("--team", action="append", default=[], help="a team the user belongs to (repeat)")
    add_user.add_argument(
        "--team-queues",
        action="append",
        default=[],
        metavar="TEAM=Q1,Q2",
        help="set the queues a team sees (repeat per team)",
    )
    add_user.add_argument("--agent-id", default="", help="agents: the agent_id their calls carry")
    add_user.add_argument("--users-file", type=Path, help="default CALLSCOPE_CONSOLE_USERS_FILE")
    add_user.add_argument("--replace", action="store_true", help="update the user if it exists")
    add_user.set_defaults(handler=cmd_add_user)


def cmd_console(args: argparse.Namespace, environ: dict[str, str]) -> int:
    """console.worker.run(ConsoleConfig): CALLSCOPE_CONSOLE_* and the shared settings."""
    require_env("CALLSCOPE_KAFKA_BOOTSTRAP", environ)
    from console.config import ConsoleConfig
    from console.users import UsersFileError, load_users
    from console.worker import run
    from pipeline.settings import load_settings

    config = load_settings(ConsoleConfig)
    try:
        load_users(config.users_file)  # a missing or bad file is a start-up error, not a 500 later
    except UsersFileError as exc:
        raise UsageError(str(exc)) from None
    return run_stage(config, run)


def cmd_add_user(args: argparse.Namespace, environ: dict[str, str]) -> int:
    from console.users import UsersFileError, add_user

    path = args.users_file or Path(environ.get("CALLSCOPE_CONSOLE_USERS_FILE") or "console-users.yaml")
    team_queues: dict[str, tuple[str, ...]] = {}
    for item in args.team_queues:
        team, sep, queues = item.partition("=")
        if not sep or not team:
            raise UsageError(f"--team-queues takes TEAM=Q1,Q2, got {item!r}")
        team_queues[team] = tuple(q for q in queues.split(",") if q)
    password = _read_password()
    try:
        user = add_user(
            path,
            args.username,
            password,
            args.role,
            teams=tuple(args.team),
            agent_id=args.agent_id,
            team_queues=team_queues or None,
            replace=args.replace,
        )
    except UsersFileError as exc:
        raise UsageError(str(exc)) from None
    print(f"{user.username} ({user.role}) saved in {path}")
    return 0


def _read_password() -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if password != getpass.getpass("again: "):
            raise UsageError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    return password  # add_user checks its length
