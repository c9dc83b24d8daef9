"""`callscope transcribe serve`: the embedded engine as a vLLM-compatible `/v1/realtime` server."""

from __future__ import annotations

import argparse
import asyncio

from deploy.cli_common import UsageError, formatter

# The settings base's default drain (StageSettings.drain_deadline_s): a first signal stops accepting
# and closes the open sessions; what is still running after this long is cancelled.
DRAIN_DEADLINE_S = 5.0


def add_serve_command(transcribe: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    """`transcribe` keeps running the worker when no subcommand is given."""
    sub = transcribe.add_subparsers(dest="transcribe_command", metavar="SUBCOMMAND", required=False)
    serve = sub.add_parser(
        "serve",
        parents=[parent],
        help="serve the embedded CPU engine over vLLM's /v1/realtime WebSocket protocol",
        description=(
            "Serves Whisper tiny.en (CPU) behind vLLM's realtime protocol: same events, error codes\n"
            "and utterance semantics, so a worker with CALLSCOPE_TRANSCRIBE_ENGINE=vllm uses one client\n"
            "whether the model is vLLM on a GPU or this engine in another process. GET /health and\n"
            "/ping answer 200. Utterances beyond --max-sessions wait, as vLLM's --max-num-seqs."
        ),
        epilog=(
            "environment:\n"
            "  CALLSCOPE_SERVE_API_KEY  require `Authorization: Bearer <key>` on /v1/realtime\n"
            f"\nRuns until SIGTERM or SIGINT (then drains within {DRAIN_DEADLINE_S:g} s); a second signal\n"
            "cancels at once."
        ),
        formatter_class=formatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    serve.add_argument("--port", type=int, default=8000, help="default 8000")
    serve.add_argument(
        "--served-model-name", default="callscope-whisper-tiny.en", help="name session.update uses"
    )
    serve.add_argument(
        "--max-sessions", type=int, default=4, help="utterances transcribed at once (default 4)"
    )
    serve.add_argument(
        "--max-utterance-s",
        type=float,
        default=3600.0,
        help="an utterance ends by itself here (default 3600)",
    )
    serve.add_argument("--cpu-threads", type=int, default=1, help="threads per decode (default 1)")
    serve.set_defaults(handler=cmd_transcribe_serve)


def cmd_transcribe_serve(args: argparse.Namespace, environ: dict[str, str]) -> int:
    from pipeline.stage import run_until_signalled
    from transcribe.serve import ServeConfig, run_server
    from transcribe.whisper_engine import WhisperConfig, shared_engine

    if args.max_sessions < 1 or args.max_utterance_s <= 0:
        raise UsageError("--max-sessions must be >= 1 and --max-utterance-s > 0")
    config = ServeConfig(
        host=args.host,
        port=args.port,
        model_name=args.served_model_name,
        api_key=environ.get("CALLSCOPE_SERVE_API_KEY") or None,
        max_sessions=args.max_sessions,
        max_utterance_s=args.max_utterance_s,
    )
    whisper = WhisperConfig(cpu_threads=args.cpu_threads, num_workers=args.max_sessions)

    async def main(stop: asyncio.Event) -> None:
        engine = await asyncio.to_thread(shared_engine, whisper)
        await run_server(config, stop=stop, engine=engine)

    asyncio.run(run_until_signalled(main, drain_deadline_s=DRAIN_DEADLINE_S))
    return 0
