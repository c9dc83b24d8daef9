"""`callscope`: one command line for every stage of the pipeline, the demo and the benchmark.

Only this module (through main()) reads the environment; each stage gets a typed config object.
Stage modules are imported lazily so `callscope --help` stays fast and a stage's heavy
dependencies (the speech model, faust) load only in the process that runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from pipeline.topics import TOPICS

log = logging.getLogger("callscope.cli")

DEFAULT_PARTITIONS = 8
EXIT_USAGE = 2

StageMain = Callable[[asyncio.Event], Coroutine[Any, Any, None]]

_COMMON_ENV = f"""
environment:
  KAFKA_BOOTSTRAP        broker address, host:port[,host:port] (required)
  CALLSCOPE_PARTITIONS   partitions per topic when topics are created (default {DEFAULT_PARTITIONS})
  CALLSCOPE_LOG_FORMAT   json or text (default: text on a terminal, else json)
  CALLSCOPE_LOG_LEVEL    DEBUG, INFO, WARNING, ... (default INFO)
"""

_TOPICS_HELP = f"""
topics (every one keyed by call_id):
  audio       {TOPICS.audio}
  transcripts {TOPICS.transcripts}
  assist      {TOPICS.assist}
  dead-letter {TOPICS.deadletter}
"""


class UsageError(Exception):
    """A missing or bad setting: printed as one line, exit code 2."""


def _env(name: str, environ: dict[str, str]) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise UsageError(f"{name} is not set: export {name}=... (see `callscope <command> --help`)")
    return value


def _partitions(environ: dict[str, str]) -> int:
    raw = environ.get("CALLSCOPE_PARTITIONS", "").strip()
    if not raw:
        return DEFAULT_PARTITIONS
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"CALLSCOPE_PARTITIONS must be a whole number, got {raw!r}") from None
    if not 1 <= value <= 1024:
        raise UsageError(f"CALLSCOPE_PARTITIONS must be between 1 and 1024, got {value}")
    return value


def _settings(build: Callable[[], Any]) -> Any:
    """Build a stage's pydantic-settings object; turn a validation error into one clear message."""
    from pydantic import ValidationError

    try:
        return build()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise UsageError(f"invalid configuration: {problems}") from None


# --- Stage wiring: one small function per stage (lazy imports; the stages own their config) ---


def wire_transcribe(args: argparse.Namespace, environ: dict[str, str]) -> StageMain:
    """transcribe.worker.run(TranscribeConfig) — reads CALLSCOPE_TRANSCRIBE_* itself."""
    from transcribe.config import TranscribeConfig
    from transcribe.worker import run

    config = _settings(lambda: TranscribeConfig(kafka_bootstrap=_env("KAFKA_BOOTSTRAP", environ)))
    return lambda stop: run(config, stop=stop)


def wire_analyze(args: argparse.Namespace, environ: dict[str, str]) -> StageMain:
    """analyze.worker.run(AnalyzeConfig) — reads ANALYZE_* itself; partitions from CALLSCOPE_PARTITIONS."""
    from analyze.config import AnalyzeConfig
    from analyze.worker import run

    overrides: dict[str, Any] = {"kafka_bootstrap": _env("KAFKA_BOOTSTRAP", environ)}
    if environ.get("CALLSCOPE_PARTITIONS", "").strip():
        overrides["partitions"] = _partitions(environ)
    config = _settings(lambda: AnalyzeConfig(**overrides))
    return lambda stop: run(config, stop=stop)


def wire_store(args: argparse.Namespace, environ: dict[str, str]) -> StageMain:
    """store.worker.run(StoreConfig) — reads STORE_* itself; migrates the schema on start."""
    from store.config import StoreConfig
    from store.worker import run

    config = _settings(
        lambda: StoreConfig(
            kafka_bootstrap=_env("KAFKA_BOOTSTRAP", environ), database_url=_env("DATABASE_URL", environ)
        )
    )
    return lambda stop: run(config, stop=stop)


STAGES: dict[str, Callable[[argparse.Namespace, dict[str, str]], StageMain]] = {
    "transcribe": wire_transcribe,
    "analyze": wire_analyze,
    "store": wire_store,
}


# --- Running a long-lived stage until SIGTERM / SIGINT ---


async def run_until_signalled(stage_main: StageMain) -> None:
    """Run a stage; the first SIGTERM/SIGINT asks it to stop cleanly, a second one cancels it."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    task = asyncio.current_task()

    def on_signal(signame: str) -> None:
        if stop.is_set():
            log.warning("second signal, cancelling", extra={"signal": signame})
            if task is not None:
                task.cancel()
            return
        log.info("stopping", extra={"signal": signame})
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    try:
        await stage_main(stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _with_topics(args: argparse.Namespace, environ: dict[str, str], stage_main: StageMain) -> None:
    if getattr(args, "create_topics", False):
        from pipeline.kafka import create_topics

        await create_topics(_env("KAFKA_BOOTSTRAP", environ), _partitions(environ))
    await run_until_signalled(stage_main)


def cmd_stage(args: argparse.Namespace, environ: dict[str, str]) -> int:
    _env("KAFKA_BOOTSTRAP", environ)
    stage_main = STAGES[args.command](args, environ)
    asyncio.run(_with_topics(args, environ, stage_main))
    return 0


def cmd_ingest_replay(args: argparse.Namespace, environ: dict[str, str]) -> int:
    from deploy.ingest_cli import replay_main

    return replay_main(args, _env("KAFKA_BOOTSTRAP", environ), _partitions(environ))


def cmd_demo(args: argparse.Namespace, environ: dict[str, str]) -> int:
    from deploy.demo import demo_main

    return demo_main(args, environ, _partitions(environ))


def cmd_bench(args: argparse.Namespace, environ: dict[str, str]) -> int:
    from bench import pipeline as bench

    return int(bench.main(args, environ, _partitions(environ)) or 0)


# --- Parser ---


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _logging_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("logging")
    group.add_argument(
        "--log-format",
        choices=("json", "text"),
        help="json lines (production) or text; default CALLSCOPE_LOG_FORMAT, else text on a terminal",
    )
    group.add_argument("--log-level", help="default CALLSCOPE_LOG_LEVEL, else INFO")
    return parent


def _stage_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    parent: argparse.ArgumentParser,
    name: str,
    summary: str,
    description: str,
    env: str,
) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        name,
        parents=[parent],
        help=summary,
        description=description,
        epilog=_COMMON_ENV + env + "\nRuns until SIGTERM or SIGINT; a second signal cancels at once.",
        formatter_class=_formatter,
    )
    parser.add_argument(
        "--create-topics",
        action="store_true",
        help="create the pipeline's topics first (CALLSCOPE_PARTITIONS partitions) if they are missing",
    )
    parser.set_defaults(handler=cmd_stage)
    return parser


def _add_replay(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    ingest = sub.add_parser(
        "ingest",
        help="put call audio on the audio topic",
        description="Ingest adapters: turn call audio into CallStarted, AudioFrame and CallEnded records "
        f"on {TOPICS.audio}.",
        formatter_class=_formatter,
    )
    ingest_sub = ingest.add_subparsers(dest="ingest_command", metavar="ADAPTER", required=True)
    replay = ingest_sub.add_parser(
        "replay",
        parents=[parent],
        help="replay WAV recordings as live calls",
        description=(
            "Replay recorded calls onto the audio topic as a telephony source would: CallStarted, then\n"
            "both legs' 20 ms frames interleaved in time order at real-time pace, then CallEnded, all\n"
            "keyed by call_id. A call is a stereo WAV (agent left, customer right) or two mono WAVs\n"
            "(--agent/--customer); 8 or 16 kHz PCM16 in, resampled to --rate and encoded as --codec.\n"
            "Ends by itself when the recordings end; SIGINT/SIGTERM ends the call early (reason\n"
            "replay_stopped)."
        ),
        epilog=f"writes: {TOPICS.audio}\n" + _COMMON_ENV,
        formatter_class=_formatter,
    )
    replay.add_argument("files", nargs="*", metavar="STEREO_WAV", help="stereo recordings, one call each")
    replay.add_argument(
        "--stereo",
        action="append",
        default=[],
        metavar="FILE",
        help="a stereo recording (same as positional)",
    )
    replay.add_argument("--agent", metavar="FILE", help="mono recording of the agent leg")
    replay.add_argument("--customer", metavar="FILE", help="mono recording of the customer leg")
    replay.add_argument("--codec", choices=("mulaw", "pcm16"), default="mulaw", help="default mulaw")
    replay.add_argument("--rate", type=int, choices=(8000, 16000), default=8000, help="Hz, default 8000")
    replay.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="pace as a multiple of real time (default 1; 0 = as fast as possible)",
    )
    replay.add_argument("--parallel", action="store_true", help="replay several files at once, not in turn")
    replay.add_argument("--call-id", help="call id (default: a new UUID per call; one call only)")
    replay.add_argument("--agent-id", default="", help="agent id carried in CallStarted")
    replay.add_argument("--queue", default="", help="queue name carried in CallStarted")
    replay.add_argument("--direction", choices=("inbound", "outbound"), default="inbound")
    replay.add_argument(
        "--create-topics", action="store_true", help="create the pipeline's topics first if they are missing"
    )
    replay.set_defaults(handler=cmd_ingest_replay)
    from deploy.gateway_cli import add_gateway_commands

    add_gateway_commands(ingest_sub, parent)


def build_parser() -> argparse.ArgumentParser:
    """The whole `callscope` command line (tests and the compose check import it)."""
    parent = _logging_options()
    parser = argparse.ArgumentParser(
        prog="callscope",
        description=(
            "Real-time contact-center analytics: call audio -> Kafka -> streaming ASR -> analysis\n"
            "and agent assist -> PostgreSQL. Each stage is its own long-running process."
        ),
        epilog=_TOPICS_HELP
        + "\nStart with `callscope demo` (no setup needed: embedded broker and database).",
        formatter_class=_formatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_replay(sub, parent)
    transcribe = _stage_parser(
        sub,
        parent,
        "transcribe",
        "speech to text: audio topic -> transcript topic",
        "Streaming transcription: one ASR session per call leg. Reads audio frames (mu-law or PCM16),\n"
        "decodes and resamples them, segments each leg into turns and emits partial and final\n"
        "segments plus the call lifecycle. The embedded engine is Whisper tiny.en on CPU, offline.",
        f"  CALLSCOPE_TRANSCRIBE_*  worker settings, e.g. _CPU_THREADS, _MAX_SILENCE_MS, _METRICS_PORT,\n"
        f"                          _MODEL_PATH (a CTranslate2 Whisper folder)\n\n"
        f"reads: {TOPICS.audio}\nwrites: {TOPICS.transcripts}, {TOPICS.deadletter}",
    )
    from deploy.serve_cli import add_serve_command

    add_serve_command(transcribe, parent)
    analyze = _stage_parser(
        sub,
        parent,
        "analyze",
        "sentiment, rules and hints: transcript topic -> assist topic",
        "Analysis (a faust app): scores sentiment of partial and final segments, matches keyword,\n"
        "intent and compliance rules, and emits agent hints and supervisor alerts. Runs on partials\n"
        "too, so an alert can fire before the customer finishes the sentence.",
        "  ANALYZE_*              worker settings, e.g. ANALYZE_RULES_PATH (a rules YAML),\n"
        "                         ANALYZE_METRICS_PORT; partitions must equal the transcript topic's\n\n"
        f"reads: {TOPICS.transcripts}\nwrites: {TOPICS.assist}, {TOPICS.deadletter}",
    )
    from deploy.replay_cli import add_replay_command

    add_replay_command(analyze, parent)
    _stage_parser(
        sub,
        parent,
        "store",
        "persist calls, segments and events: transcript + assist topics -> PostgreSQL",
        "Store: writes calls, final segments with their sentiment, assist events and leg errors to\n"
        "PostgreSQL idempotently (deterministic ids), then commits offsets. Migrates the schema on\n"
        "start unless STORE_MIGRATE_ON_START=false.",
        "  DATABASE_URL           postgresql+asyncpg://user:pass@host/db (required)\n"
        "  STORE_*                worker settings, e.g. STORE_MAX_BATCH_RECORDS\n\n"
        f"reads: {TOPICS.transcripts}, {TOPICS.assist}\nwrites: PostgreSQL, {TOPICS.deadletter}",
    )
    demo = sub.add_parser(
        "demo",
        parents=[parent],
        help="play a scripted call through the whole pipeline and show it live",
        description=(
            "Starts an embedded Kafka-compatible broker (Tansu) and PostgreSQL unless KAFKA_BOOTSTRAP /\n"
            "DATABASE_URL are set, runs transcribe, analyze and store as subprocesses, replays the\n"
            "bundled two-leg demo call at real-time pace, shows the live transcript, hints and alerts,\n"
            "then prints what PostgreSQL holds for the call and stops everything it started."
        ),
        epilog=(
            "environment (all optional):\n"
            "  KAFKA_BOOTSTRAP        use this broker instead of an embedded one\n"
            "  DATABASE_URL           use this database (postgresql+asyncpg://...), not an embedded one\n"
            f"  CALLSCOPE_PARTITIONS   partitions per topic (default {DEFAULT_PARTITIONS})\n"
            "\nExit code 0 when the call reached PostgreSQL with its end, non-zero otherwise."
        ),
        formatter_class=_formatter,
    )
    demo.add_argument("--speed", type=float, default=1.0, help="replay pace, multiple of real time (0 = max)")
    demo.add_argument("--call", metavar="STEREO_WAV", help="replay this recording instead of the demo call")
    demo.add_argument("--codec", choices=("mulaw", "pcm16"), default="mulaw", help="default mulaw")
    demo.add_argument("--rate", type=int, choices=(8000, 16000), default=8000, help="Hz, default 8000")
    demo.add_argument(
        "--timeout", type=float, default=300.0, help="give up after this many seconds in all (default 300)"
    )
    demo.set_defaults(handler=cmd_demo)
    bench = sub.add_parser(
        "bench",
        parents=[parent],
        help="measure latency and capacity (see README)",
        description=(
            "Benchmark of the whole pipeline, started as the demo starts it: replays calls (the bundled\n"
            "demo call unless WAVs are given), waits until PostgreSQL holds every call, then prints p50\n"
            "and p95 of each stage's latency (from the stamps the events carry) and each process's CPU\n"
            "seconds per second of call audio (from /proc). See README, 'Measured'."
        ),
        epilog=(
            "environment (all optional):\n"
            "  KAFKA_BOOTSTRAP        use this broker instead of an embedded one\n"
            "  DATABASE_URL           use this database (postgresql+asyncpg://...), not an embedded one\n"
            f"  CALLSCOPE_PARTITIONS   partitions per topic (default {DEFAULT_PARTITIONS})"
        ),
        formatter_class=_formatter,
    )
    bench.add_argument("files", nargs="*", metavar="STEREO_WAV", help="calls to replay (default: demo call)")
    bench.add_argument("--calls", type=int, default=1, help="replay each recording N times (default 1)")
    bench.add_argument("--concurrency", type=int, default=1, help="calls replayed at once (default 1)")
    bench.add_argument("--speed", type=float, default=1.0, help="pace, multiple of real time (0 = max)")
    bench.add_argument("--codec", choices=("mulaw", "pcm16"), default="mulaw", help="default mulaw")
    bench.add_argument("--rate", type=int, choices=(8000, 16000), default=8000, help="Hz, default 8000")
    bench.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    bench.add_argument("--timeout", type=float, help="give up after this many seconds (default: by audio)")
    bench.set_defaults(handler=cmd_bench)
    return parser


def _configure_logging(args: argparse.Namespace, environ: dict[str, str]) -> None:
    from pipeline.logs import configure_logging

    fmt = (
        args.log_format or environ.get("CALLSCOPE_LOG_FORMAT") or ("text" if sys.stderr.isatty() else "json")
    )
    if fmt not in ("json", "text"):
        raise UsageError(f"CALLSCOPE_LOG_FORMAT must be json or text, got {fmt!r}")
    # The demo's own terminal is for the call; its stages log at INFO into their own files.
    default_level = "WARNING" if args.command in ("demo", "bench") else "INFO"
    level = (args.log_level or environ.get("CALLSCOPE_LOG_LEVEL") or default_level).upper()
    if not isinstance(logging.getLevelName(level), int):
        raise UsageError(f"unknown log level {level!r}")
    configure_logging(fmt, level)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    environ = dict(os.environ)
    try:
        _configure_logging(args, environ)
        return args.handler(args, environ)
    except UsageError as exc:
        print(f"callscope {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
