"""`callscope ingest replay`: the command-line side of ingest.replay (parser, argument checks)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

from deploy.cli_common import EXIT_USAGE, SHARED_ENV, formatter, require_env, shared_settings
from pipeline.topics import TOPICS

if TYPE_CHECKING:
    from ingest.replay import ReplayCall, ReplayResult
    from ingest.wavsource import OutputFormat
    from pipeline.settings import StageSettings


class _Usage(Exception):
    pass


def add_replay_command(ingest_sub: Any, parent: argparse.ArgumentParser) -> None:
    """Register `ingest replay` under the `ingest` subcommand."""
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
            "replay_stopped), a second signal at once."
        ),
        epilog=f"writes: {TOPICS.audio} (CALLSCOPE_AUDIO_TOPIC)\n" + SHARED_ENV,
        formatter_class=formatter,
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
    replay.set_defaults(handler=replay_main)


def _calls(args: argparse.Namespace) -> list[ReplayCall]:
    from ingest.replay import ReplayCall

    stereo = [*args.files, *args.stereo]
    if bool(args.agent) != bool(args.customer):
        raise _Usage("--agent and --customer go together (one mono file per leg)")
    if stereo and args.agent:
        raise _Usage("give stereo files or --agent/--customer, not both")
    if not stereo and not args.agent:
        raise _Usage("nothing to replay: give a stereo WAV, or --agent FILE --customer FILE")
    count = len(stereo) or 1
    if args.call_id and count > 1:
        raise _Usage("--call-id names one call; several files were given")
    meta = {"agent_id": args.agent_id, "queue": args.queue, "direction": args.direction}
    if args.call_id:
        meta["call_id"] = args.call_id
    if args.agent:
        return [ReplayCall.from_legs(args.agent, args.customer, **meta)]
    return [ReplayCall.from_stereo(path, **meta) for path in stereo]


async def _replay(
    settings: StageSettings,
    calls: list[ReplayCall],
    fmt: OutputFormat,
    args: argparse.Namespace,
    stop: asyncio.Event,
) -> list[ReplayResult]:
    from ingest.replay import replay_call

    bootstrap = settings.kafka_bootstrap
    if args.create_topics:
        from pipeline.kafka import create_topics

        await create_topics(bootstrap, settings.partitions, settings.topics())

    def one(call: ReplayCall):  # noqa: ANN202 - a coroutine of ReplayResult
        return replay_call(bootstrap, call, args.speed, fmt=fmt, topic=settings.audio_topic, stop=stop)

    if args.parallel:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(c), name=f"replay-{i}") for i, c in enumerate(calls)]
        return [t.result() for t in tasks]
    results = []
    for call in calls:
        results.append(await one(call))
        if stop.is_set():
            break
    return results


def replay_main(args: argparse.Namespace, environ: dict[str, str]) -> int:
    require_env("CALLSCOPE_KAFKA_BOOTSTRAP", environ)
    from ingest.events import Codec
    from ingest.wavsource import OutputFormat
    from pipeline.stage import run_until_signalled

    if args.speed < 0:
        print("callscope ingest replay: --speed must be >= 0", file=sys.stderr)
        return EXIT_USAGE
    settings = shared_settings()
    try:
        fmt = OutputFormat(Codec.MULAW if args.codec == "mulaw" else Codec.PCM16, args.rate)
        calls = _calls(args)
    except (_Usage, ValueError, OSError) as exc:  # WavError is a ValueError
        print(f"callscope ingest replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    results: list[ReplayResult] = []

    async def main(stop: asyncio.Event) -> None:
        results.extend(await _replay(settings, calls, fmt, args, stop))

    # The first signal ends the calls early (each still well formed); the drain deadline bounds that.
    asyncio.run(run_until_signalled(main, drain_deadline_s=settings.drain_deadline_s))
    for result in results:
        state = "replayed" if result.completed else "stopped early"
        print(
            f"{result.call_id}: {state}, {result.frames_sent} frames, "
            f"{result.audio_seconds:.1f} s of audio in {result.wall_seconds:.1f} s"
        )
    return 0 if all(r.completed for r in results) else 1
