"""`callscope`: one command line for every stage of the pipeline and the demo.

Only this module (through main()) reads the environment: it checks the required variables and
each stage's config is built with pipeline.settings.load_settings (it reads CALLSCOPE_* itself).
Stage modules are imported lazily so `callscope --help` stays fast and a stage's heavy
dependencies (the speech model, faust) load only in the process that runs it. The sub-command
modules (ingest_cli, gateway_cli, serve_cli, replay_cli, console_cli, grafana_cli) share
deploy/cli_common.py, not this module. Benchmarks are not part of it: they run from the
repository as `python -m bench.<name>`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

from deploy.cli_common import (
    EXIT_USAGE,
    SERVICES_ENV,
    SHARED_ENV,
    UsageError,
    configure_logging_from,
    env_block,
    formatter,
    logging_options,
    require_env,
    run_stage,
    shared_settings,
    stage_env_rows,
)
from deploy.console_cli import add_console_command
from deploy.gateway_cli import add_gateway_command
from deploy.grafana_cli import add_grafana_command
from deploy.ingest_cli import add_replay_command as add_ingest_replay_command
from deploy.replay_cli import add_replay_command as add_analyze_replay_command
from deploy.serve_cli import add_serve_command
from pipeline.topics import TOPICS

_TOPICS_HELP = f"""
topics (every one keyed by call_id):
  audio       {TOPICS.audio}
  transcripts {TOPICS.transcripts}
  assist      {TOPICS.assist}
  dead-letter {TOPICS.deadletter}
"""


# --- Stage commands: one small handler per stage (lazy imports; the stages own their config) ---


def cmd_transcribe(args: argparse.Namespace, environ: dict[str, str]) -> int:
    """transcribe.worker.run(TranscribeConfig): CALLSCOPE_TRANSCRIBE_* and the shared settings."""
    require_env("CALLSCOPE_KAFKA_BOOTSTRAP", environ)
    from pipeline.settings import load_settings
    from transcribe.config import TranscribeConfig
    from transcribe.worker import run

    return run_stage(load_settings(TranscribeConfig), run, create_topics=args.create_topics)


def cmd_analyze(args: argparse.Namespace, environ: dict[str, str]) -> int:
    """analyze.worker.run(AnalyzeConfig): CALLSCOPE_ANALYZE_* and the shared settings."""
    require_env("CALLSCOPE_KAFKA_BOOTSTRAP", environ)
    from analyze.config import AnalyzeConfig
    from analyze.worker import run
    from pipeline.settings import load_settings

    return run_stage(load_settings(AnalyzeConfig), run, create_topics=args.create_topics)


def cmd_store(args: argparse.Namespace, environ: dict[str, str]) -> int:
    """store.worker.run(StoreConfig): CALLSCOPE_STORE_*, CALLSCOPE_DATABASE_URL; migrates on start."""
    require_env("CALLSCOPE_KAFKA_BOOTSTRAP", environ)
    require_env("CALLSCOPE_DATABASE_URL", environ)
    from pipeline.settings import load_settings
    from store.config import StoreConfig
    from store.worker import run

    return run_stage(load_settings(StoreConfig), run, create_topics=args.create_topics)


def cmd_demo(args: argparse.Namespace, environ: dict[str, str]) -> int:
    from deploy.demo import demo_main

    return demo_main(args, environ, shared_settings())


# --- Parser ---


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
        epilog=SHARED_ENV
        + env
        + "\nRuns until SIGTERM or SIGINT, then drains (within _DRAIN_DEADLINE_S); a second\n"
        "signal cancels at once.",
        formatter_class=formatter,
    )
    parser.add_argument(
        "--create-topics",
        action="store_true",
        help="create the pipeline's topics first (CALLSCOPE_PARTITIONS partitions) if they are missing",
    )
    return parser


def _add_ingest(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    ingest = sub.add_parser(
        "ingest",
        help="put call audio on the audio topic",
        description="Ingest adapters: turn call audio into CallStarted, AudioFrame and CallEnded records "
        f"on {TOPICS.audio}.",
        formatter_class=formatter,
    )
    ingest_sub = ingest.add_subparsers(dest="ingest_command", metavar="ADAPTER", required=True)
    add_ingest_replay_command(ingest_sub, parent)
    add_gateway_command(ingest_sub, parent)


def build_parser() -> argparse.ArgumentParser:
    """The whole `callscope` command line (tests and the compose check import it)."""
    parent = logging_options()
    parser = argparse.ArgumentParser(
        prog="callscope",
        description=(
            "Real-time contact-center analytics: call audio -> Kafka -> streaming ASR -> analysis\n"
            "and agent assist -> PostgreSQL. Each stage is its own long-running process."
        ),
        epilog=_TOPICS_HELP
        + "\nStart with `callscope demo` (no setup needed: embedded broker and database).",
        formatter_class=formatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_ingest(sub, parent)
    transcribe = _stage_parser(
        sub,
        parent,
        "transcribe",
        "speech to text: audio topic -> transcript topic",
        "Streaming transcription: one ASR session per call leg. Reads audio frames (mu-law or PCM16),\n"
        "decodes and resamples them, segments each leg into turns and emits partial and final\n"
        "segments plus the call lifecycle. The embedded engine is Whisper tiny.en on CPU, offline.",
        env_block(
            "environment (the stage)",
            [
                ("CALLSCOPE_TRANSCRIBE_*", "worker settings, e.g. _ENGINE, _CPU_THREADS, _MAX_SILENCE_MS,"),
                ("", "_MODEL_PATH (a CTranslate2 Whisper folder)"),
                *stage_env_rows("CALLSCOPE_TRANSCRIBE_", "127.0.0.1:9402"),
            ],
        )
        + f"\nreads: {TOPICS.audio}\nwrites: {TOPICS.transcripts}, {TOPICS.deadletter}\n",
    )
    transcribe.set_defaults(handler=cmd_transcribe)
    add_serve_command(transcribe, parent)
    analyze = _stage_parser(
        sub,
        parent,
        "analyze",
        "sentiment, rules and hints: transcript topic -> assist topic",
        "Analysis (a faust app): scores sentiment of partial and final segments, matches keyword,\n"
        "intent and compliance rules, and emits agent hints and supervisor alerts. Runs on partials\n"
        "too, so an alert can fire before the customer finishes the sentence.",
        env_block(
            "environment (the stage)",
            [
                ("CALLSCOPE_ANALYZE_*", "worker settings, e.g. _RULES_PATH (a rules YAML);"),
                ("", "CALLSCOPE_PARTITIONS must equal the transcript topic's partitions"),
                *stage_env_rows("CALLSCOPE_ANALYZE_", "127.0.0.1:9403"),
            ],
        )
        + f"\nreads: {TOPICS.transcripts}\nwrites: {TOPICS.assist}, {TOPICS.deadletter}\n",
    )
    analyze.set_defaults(handler=cmd_analyze)
    add_analyze_replay_command(analyze, parent)
    store = _stage_parser(
        sub,
        parent,
        "store",
        "persist calls, segments and events: transcript + assist topics -> PostgreSQL",
        "Store: writes calls, final segments with their sentiment, assist events and leg errors to\n"
        "PostgreSQL idempotently (deterministic ids), then commits offsets. Migrates the schema on\n"
        "start unless CALLSCOPE_STORE_MIGRATE_ON_START=false.",
        env_block(
            "environment (the stage)",
            [
                ("CALLSCOPE_DATABASE_URL", "postgresql+asyncpg://user:pass@host/db (required)"),
                ("CALLSCOPE_STORE_*", "worker settings, e.g. _MAX_BATCH_RECORDS, _MIGRATE_ON_START"),
                *stage_env_rows("CALLSCOPE_STORE_", "127.0.0.1:9404"),
            ],
        )
        + f"\nreads: {TOPICS.transcripts}, {TOPICS.assist}\nwrites: PostgreSQL, {TOPICS.deadletter}\n",
    )
    store.set_defaults(handler=cmd_store)
    add_console_command(sub, parent)
    demo = sub.add_parser(
        "demo",
        parents=[parent],
        help="play a scripted call through the whole pipeline and show it live",
        description=(
            "Starts an embedded Kafka-compatible broker (Tansu) and PostgreSQL unless\n"
            "CALLSCOPE_KAFKA_BOOTSTRAP / CALLSCOPE_DATABASE_URL are set, runs transcribe, analyze and\n"
            "store as subprocesses, replays the bundled two-leg demo call at real-time pace, shows the\n"
            "live transcript, hints and alerts, serves the console (its address and a demo login are\n"
            "printed), then prints what PostgreSQL holds for the call and stops everything it started."
        ),
        epilog=SERVICES_ENV
        + "\nExit code 0 when the call reached PostgreSQL with its end, non-zero otherwise.",
        formatter_class=formatter,
    )
    demo.add_argument("--speed", type=float, default=1.0, help="replay pace, multiple of real time (0 = max)")
    demo.add_argument("--call", metavar="STEREO_WAV", help="replay this recording instead of the demo call")
    demo.add_argument("--codec", choices=("mulaw", "pcm16"), default="mulaw", help="default mulaw")
    demo.add_argument("--rate", type=int, choices=(8000, 16000), default=8000, help="Hz, default 8000")
    demo.add_argument(
        "--timeout", type=float, default=300.0, help="give up after this many seconds in all (default 300)"
    )
    demo.add_argument(
        "--console-port",
        type=int,
        default=8080,
        help="console port on 127.0.0.1 (default 8080, else any free)",
    )
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="after the call, keep the pipeline and the console running until Ctrl-C",
    )
    demo.set_defaults(handler=cmd_demo)
    add_grafana_command(sub, parent)
    return parser


def _one_line(exc: BaseException, kinds: tuple[type[Exception], ...]) -> Exception | None:
    """`exc` itself, or the first such error inside an exception group made of nothing else."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(kinds)
        if matched is not None and rest is None:
            return _one_line(matched.exceptions[0], kinds)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    environ = dict(os.environ)
    from analyze.rule_model import RuleError
    from pipeline.kafka import BrokerUnreachable
    from pipeline.settings import SettingsError
    from pipeline.stage import MetricsServerError

    # Start-up problems: one line and a non-zero exit, never a traceback.
    startup = (UsageError, SettingsError, MetricsServerError, BrokerUnreachable, RuleError)
    try:
        # The demo's own terminal is for the call; its stages log at INFO into their own files.
        configure_logging_from(args, environ, "WARNING" if args.command == "demo" else "INFO")
        return args.handler(args, environ)
    except (*startup, BaseExceptionGroup) as exc:
        error = _one_line(exc, startup)
        if error is None:
            raise
        # A rule file's problems come one per line: join them.
        lines = [line.strip().lstrip("- ") for line in str(error).splitlines() if line.strip()]
        print(
            f"callscope {args.command}: {' '.join(lines[:1] + ['; '.join(lines[1:])]).strip()}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except (KeyboardInterrupt, asyncio.CancelledError):  # a second signal, or a drain past its deadline
        return 130


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
