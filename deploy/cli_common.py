"""What `deploy/cli.py` and its sub-command modules share: the usage error, required variables,
help layout and logging options, and running a stage until it is signalled.

The sub-command modules (ingest_cli, gateway_cli, serve_cli, replay_cli) import this module, never
cli.py, so the command line has no import cycle. Heavy imports stay inside the functions.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline.settings import DEFAULT_PARTITIONS

if TYPE_CHECKING:
    from pipeline.settings import StageSettings

C = TypeVar("C", bound="StageSettings")

EXIT_USAGE = 2


def env_block(title: str, rows: list[tuple[str, str]]) -> str:
    """An epilog section: one variable a line, the explanations in one column."""
    width = max(len(name) for name, _ in rows) + 2
    return f"\n{title}:\n" + "".join(f"  {name:<{width}}{text}\n" for name, text in rows)


def stage_env_rows(prefix: str, metrics_default: str) -> list[tuple[str, str]]:
    """The two settings every stage has under its own prefix."""
    return [
        (f"{prefix}METRICS_ADDRESS", f"host:port of /metrics (default {metrics_default}; off = none)"),
        (f"{prefix}DRAIN_DEADLINE_S", "after SIGTERM, finish and commit within this long (default 5)"),
    ]


SHARED_ENV = env_block(
    "environment (shared by every stage)",
    [
        ("CALLSCOPE_KAFKA_BOOTSTRAP", "broker address, host:port[,host:port] (required)"),
        (
            "CALLSCOPE_PARTITIONS",
            f"partitions per topic when topics are created (default {DEFAULT_PARTITIONS})",
        ),
        (
            "CALLSCOPE_*_TOPIC",
            "topic names: _AUDIO_TOPIC, _TRANSCRIPTS_TOPIC, _ASSIST_TOPIC, _DEADLETTER_TOPIC",
        ),
        ("CALLSCOPE_LOG_FORMAT", "json or text (default: text on a terminal, else json)"),
        ("CALLSCOPE_LOG_LEVEL", "DEBUG, INFO, WARNING, ... (default INFO)"),
    ],
)


# The demo and the pipeline benchmark: services they start unless these name running ones.
SERVICES_ENV = env_block(
    "environment (all optional)",
    [
        ("CALLSCOPE_KAFKA_BOOTSTRAP", "use this broker instead of an embedded one"),
        ("CALLSCOPE_DATABASE_URL", "use this database (postgresql+asyncpg://...), not an embedded one"),
        ("CALLSCOPE_PARTITIONS", f"partitions per topic (default {DEFAULT_PARTITIONS})"),
    ],
)


class UsageError(Exception):
    """A missing or bad setting: printed as one line, exit code 2."""


def require_env(name: str, environ: dict[str, str]) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise UsageError(f"{name} is not set: export {name}=... (see `callscope <command> --help`)")
    return value


def formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def logging_options() -> argparse.ArgumentParser:
    """--log-format and --log-level, a parent of every sub-command's parser."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("logging")
    group.add_argument(
        "--log-format",
        choices=("json", "text"),
        help="json lines (production) or text; default CALLSCOPE_LOG_FORMAT, else text on a terminal",
    )
    group.add_argument("--log-level", help="default CALLSCOPE_LOG_LEVEL, else INFO")
    return parent


def configure_logging_from(
    args: argparse.Namespace, environ: dict[str, str], default_level: str, *, stage: str | None = None
) -> None:
    """The logging set-up of every command: format and level from the options, else the environment;
    each line names `stage` (default: the command, e.g. transcribe)."""
    from pipeline.logs import configure_logging

    fmt = (
        args.log_format or environ.get("CALLSCOPE_LOG_FORMAT") or ("text" if sys.stderr.isatty() else "json")
    )
    if fmt not in ("json", "text"):
        raise UsageError(f"CALLSCOPE_LOG_FORMAT must be json or text, got {fmt!r}")
    level = (args.log_level or environ.get("CALLSCOPE_LOG_LEVEL") or default_level).upper()
    if not isinstance(logging.getLevelName(level), int):
        raise UsageError(f"unknown log level {level!r}")
    stage = stage or getattr(args, "command", None) or "callscope"
    configure_logging(fmt, level, stage=stage)  # type: ignore[arg-type]


def shared_settings() -> StageSettings:
    """The CALLSCOPE_* settings every stage shares, for the commands that are not a stage."""
    from pipeline.settings import StageSettings, load_settings

    return load_settings(StageSettings, metrics_address="off")


StageRun = Callable[..., Coroutine[Any, Any, None]]  # run(config, *, stop)


def run_stage(config: C, run: StageRun, *, create_topics: bool = False) -> int:
    """Run `run(config, stop=...)` until SIGTERM/SIGINT, draining within config.drain_deadline_s."""
    from pipeline.stage import run_until_signalled

    async def main() -> None:
        if create_topics:
            from pipeline.kafka import create_topics as create

            await create(config.kafka_bootstrap, config.partitions)
        await run_until_signalled(
            lambda stop: run(config, stop=stop), drain_deadline_s=config.drain_deadline_s
        )

    asyncio.run(main())
    return 0
