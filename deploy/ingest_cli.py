"""`callscope ingest replay`: the command-line side of ingest.replay (argument checks, signals)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from ingest.events import Codec
from ingest.replay import ReplayCall, ReplayResult, replay_call
from ingest.wavsource import OutputFormat


class _Usage(Exception):
    pass


def _calls(args: argparse.Namespace) -> list[ReplayCall]:
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
    bootstrap: str, calls: list[ReplayCall], fmt: OutputFormat, args: argparse.Namespace, partitions: int
) -> list[ReplayResult]:
    if args.create_topics:
        from pipeline.kafka import create_topics

        await create_topics(bootstrap, partitions)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if args.parallel:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(
                        replay_call(bootstrap, c, args.speed, fmt=fmt, stop=stop), name=f"replay-{i}"
                    )
                    for i, c in enumerate(calls)
                ]
            return [t.result() for t in tasks]
        results = []
        for call in calls:
            results.append(await replay_call(bootstrap, call, args.speed, fmt=fmt, stop=stop))
            if stop.is_set():
                break
        return results
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def replay_main(args: argparse.Namespace, bootstrap: str, partitions: int) -> int:
    if args.speed < 0:
        print("callscope ingest replay: --speed must be >= 0", file=sys.stderr)
        return 2
    try:
        fmt = OutputFormat(Codec.MULAW if args.codec == "mulaw" else Codec.PCM16, args.rate)
        calls = _calls(args)
    except (_Usage, ValueError, OSError) as exc:  # WavError is a ValueError
        print(f"callscope ingest replay: {exc}", file=sys.stderr)
        return 2
    results = asyncio.run(_replay(bootstrap, calls, fmt, args, partitions))
    for result in results:
        state = "replayed" if result.completed else "stopped early"
        print(
            f"{result.call_id}: {state}, {result.frames_sent} frames, "
            f"{result.audio_seconds:.1f} s of audio in {result.wall_seconds:.1f} s"
        )
    return 0 if all(r.completed for r in results) else 1
