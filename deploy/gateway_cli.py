"""`callscope ingest gateway` and `callscope ingest loadtest`: parsers and handlers (lazy imports)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

_GATEWAY_ENV = """
environment:
  KAFKA_BOOTSTRAP                       broker address (required)
  CALLSCOPE_GATEWAY_HOST / _PORT        listen address (default 127.0.0.1:8080)
  CALLSCOPE_GATEWAY_TWILIO_AUTH_TOKEN   Twilio auth token: X-Twilio-Signature is checked
  CALLSCOPE_GATEWAY_TWILIO_PUBLIC_URL   the wss://host Twilio dials, as it signs it
  CALLSCOPE_GATEWAY_AUDIOHOOK_API_KEYS  JSON {"api key": "client secret (base64)"}
  CALLSCOPE_GATEWAY_GENERIC_TOKENS      JSON ["bearer token", ...]
  CALLSCOPE_GATEWAY_BROKER_DEADLINE_S   no broker ack for this long ends a call (default 5)
  CALLSCOPE_GATEWAY_DEAD_LETTER_SPOOL   file for dead letters the broker would not take
  CALLSCOPE_GATEWAY_METRICS_PORT        serve Prometheus metrics here
  CALLSCOPE_PARTITIONS                  partitions per topic with --create-topics (default 8)

A protocol without credentials refuses every connection (CALLSCOPE_GATEWAY_ALLOW_UNAUTHENTICATED=true
for a lab only). Runs until SIGTERM or SIGINT: open calls are ended (reason gateway_shutdown).
"""


def add_gateway_commands(ingest_sub: Any, parent: argparse.ArgumentParser) -> None:
    """Register `ingest gateway` and `ingest loadtest` under the `ingest` subcommand."""
    formatter = argparse.RawDescriptionHelpFormatter
    gateway = ingest_sub.add_parser(
        "gateway",
        parents=[parent],
        help="serve Twilio, Genesys AudioHook and generic WebSocket media streams",
        description=(
            "Telephony gateway: WebSocket endpoints /twilio (Twilio Media Streams), /audiohook (Genesys\n"
            "AudioHook v2) and /v1/stream (generic protocol, see README) turn live calls into\n"
            "CallStarted, AudioFrame and CallEnded records on the audio topic, both legs, source codec kept."
        ),
        epilog=_GATEWAY_ENV,
        formatter_class=formatter,
    )
    gateway.add_argument("--host", help="listen address (overrides CALLSCOPE_GATEWAY_HOST)")
    gateway.add_argument("--port", type=int, help="listen port (overrides CALLSCOPE_GATEWAY_PORT)")
    gateway.add_argument(
        "--create-topics", action="store_true", help="create the pipeline's topics first if they are missing"
    )
    gateway.set_defaults(handler=gateway_main)
    loadtest = ingest_sub.add_parser(
        "loadtest",
        parents=[parent],
        help="benchmark the gateway with concurrent calls at real-time pace",
        description=(
            "Starts an embedded broker and the gateway as a subprocess, drives concurrent calls over\n"
            "loopback at real-time pace (Twilio, AudioHook and generic in turn) and prints open latency,\n"
            "frame latency gateway -> topic, gateway CPU per call and frames lost."
        ),
        formatter_class=formatter,
    )
    from_args = loadtest.add_argument
    from_args("--calls", type=int, default=200, help="concurrent calls (default 200)")
    from_args("--seconds", type=float, default=40.0, help="audio per call, seconds (default 40)")
    from_args("--ramp", type=float, default=5.0, help="calls start spread over this many seconds (default 5)")
    from_args("--protocols", default="twilio,audiohook,generic", help="comma-separated, used in turn")
    loadtest.set_defaults(handler=loadtest_main)


def gateway_main(args: argparse.Namespace, environ: dict[str, str]) -> int:
    from deploy.cli import UsageError, _env, _partitions, _settings, run_until_signalled
    from ingest.config import GatewayConfig
    from ingest.gateway import run

    overrides: dict[str, Any] = {"kafka_bootstrap": _env("KAFKA_BOOTSTRAP", environ)}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    config = _settings(lambda: GatewayConfig(**overrides))

    async def main() -> None:
        if args.create_topics:
            from pipeline.kafka import create_topics

            await create_topics(config.kafka_bootstrap, _partitions(environ))
        await run_until_signalled(lambda stop: run(config, stop))

    from aiokafka.errors import KafkaError

    try:
        asyncio.run(main())
    except (OSError, KafkaError) as exc:  # the port is taken, the broker is unreachable at start
        raise UsageError(f"gateway could not start: {type(exc).__name__}: {exc}") from None
    return 0


def loadtest_main(args: argparse.Namespace, environ: dict[str, str]) -> int:
    from bench.gateway import LoadSpec, main

    protocols = tuple(p.strip() for p in args.protocols.split(",") if p.strip())
    if args.calls < 1 or args.seconds <= 0 or args.ramp < 0:
        print("callscope ingest loadtest: --calls, --seconds must be positive", file=sys.stderr)
        return 2
    if not protocols or not set(protocols) <= {"twilio", "audiohook", "generic"}:
        print("callscope ingest loadtest: --protocols takes twilio, audiohook, generic", file=sys.stderr)
        return 2
    return main(LoadSpec(calls=args.calls, seconds=args.seconds, ramp_s=args.ramp, protocols=protocols))
