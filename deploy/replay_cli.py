"""`callscope analyze replay`: re-run analysis over stored calls with a chosen rule-set version."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

from deploy.cli_common import UsageError, formatter


def add_replay_command(analyze: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    """`analyze` keeps running the worker when no subcommand is given."""
    sub = analyze.add_subparsers(dest="analyze_command", metavar="SUBCOMMAND", required=False)
    replay = sub.add_parser(
        "replay",
        parents=[parent],
        help="re-run analysis over stored calls with a rule file; new events are stored beside the old",
        description=(
            "Reads the stored final segments of the chosen calls from PostgreSQL, runs them through the\n"
            "rules of RULES, and writes the hints, alerts and compliance checklist it produces, tagged\n"
            "with the file's version (origin 'replay'), beside the events stored live. Replaying the same\n"
            "version twice changes nothing; a version already stored with other content is refused."
        ),
        epilog="environment:\n  CALLSCOPE_DATABASE_URL   postgresql+asyncpg://user:pass@host/db (required)",
        formatter_class=formatter,
    )
    replay.add_argument("--rules", type=Path, required=True, help="rule file (YAML) whose version to apply")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--call-id", action="append", default=[], help="a stored call (repeatable)")
    which.add_argument("--since", type=datetime.fromisoformat, help="calls started at or after (ISO 8601)")
    replay.add_argument("--until", type=datetime.fromisoformat, help="calls started before (ISO 8601)")
    replay.add_argument("--no-embeddings", action="store_true", help="skip semantic intents (no MiniLM)")
    replay.add_argument("--dry-run", action="store_true", help="count what would be written; write nothing")
    replay.set_defaults(handler=cmd_analyze_replay)


def cmd_analyze_replay(args: argparse.Namespace, environ: dict[str, str]) -> int:
    url = environ.get("CALLSCOPE_DATABASE_URL", "").strip()
    if not url:
        raise UsageError(
            "CALLSCOPE_DATABASE_URL is not set: export CALLSCOPE_DATABASE_URL=postgresql+asyncpg://..."
        )
    if not args.rules.is_file():
        raise UsageError(f"no rule file at {args.rules}")
    result = asyncio.run(_replay(url, args))
    verb = "would write" if args.dry_run else "wrote"
    print(
        f"replayed {result.calls} calls ({result.segments} segments) with rule-set version "
        f"{result.rule_version}: {verb} {result.hints} hints, {result.alerts} alerts, "
        f"{result.checklists} checklist updates"
    )
    return 0


async def _replay(url: str, args: argparse.Namespace) -> Any:
    from sqlalchemy.ext.asyncio import create_async_engine

    from analyze.assist import AssistPolicy
    from analyze.rules import RuleMatcher, RuleSet
    from analyze.sentiment import VaderScorer
    from store.migrate import migrate
    from store.replay import run_replay

    embedder = None
    if not args.no_embeddings:
        from analyze.embeddings import Embedder, EmbeddingModelMissing

        try:
            embedder = await asyncio.to_thread(Embedder.load)
        except EmbeddingModelMissing:
            embedder = None

    def make_policy(rules: RuleSet) -> AssistPolicy:
        return AssistPolicy(RuleMatcher(rules, embedder=embedder), VaderScorer())

    await migrate(url)
    engine = create_async_engine(url)
    try:
        return await run_replay(
            engine,
            args.rules,
            make_policy=make_policy,
            call_ids=args.call_id,
            since=args.since,
            until=args.until,
            dry_run=args.dry_run,
        )
    finally:
        await engine.dispose()
