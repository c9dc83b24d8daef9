"""`callscope ingest gateway`: parser and handler (lazy imports)."""

from __future__ import annotations

import argparse
from typing import Any

from deploy.cli_common import (
    SHARED_ENV,
    UsageError,
    env_block,
    formatter,
    require_env,
    run_stage,
    stage_env_rows,
)

_GATEWAY_ENV = (
    SHARED_ENV
    + env_block(
        "environment (the gateway)",
        [
            ("CALLSCOPE_INGEST_HOST / _PORT", "listen address (default 127.0.0.1:8080)"),
            ("CALLSCOPE_INGEST_TWILIO_AUTH_TOKEN", "Twilio auth token: X-Twilio-Signature is checked"),
            ("CALLSCOPE_INGEST_TWILIO_PUBLIC_URL", "the wss://host Twilio dials, as it signs it"),
            ("CALLSCOPE_INGEST_AUDIOHOOK_API_KEYS", 'JSON {"api key": "client secret (base64)"}'),
            ("CALLSCOPE_INGEST_GENERIC_TOKENS", 'JSON ["bearer token", ...]'),
            ("CALLSCOPE_INGEST_BROKER_DEADLINE_S", "no broker ack for this long ends a call (default 5)"),
            ("CALLSCOPE_INGEST_DEAD_LETTER_SPOOL", "file for dead letters the broker would not take"),
            *stage_env_rows("CALLSCOPE_INGEST_", "127.0.0.1:9401"),
        ],
    )
    + """
A protocol without credentials refuses every connection (CALLSCOPE_INGEST_ALLOW_UNAUTHENTICATED=true
for a lab only). Runs until SIGTERM or SIGINT: open calls are ended (reason gateway_shutdown).
"""
)


def add_gateway_command(ingest_sub: Any, parent: argparse.ArgumentParser) -> None:
    """Register `ingest gateway` under the `ingest` subcommand."""
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
    gateway.add_argument("--host", help="listen address (overrides CALLSCOPE_INGEST_HOST)")
    gateway.add_argument("--port", type=int, help="listen port (overrides CALLSCOPE_INGEST_PORT)")
    gateway.add_argument(
        "--create-topics", action="store_true", help="create the pipeline's topics first if they are missing"
    )
    gateway.set_defaults(handler=gateway_main)


def gateway_main(args: argparse.Namespace, environ: dict[str, str]) -> int:
    require_env("CALLSCOPE_KAFKA_BOOTSTRAP", environ)
    from aiokafka.errors import KafkaError

    from ingest.config import GatewayConfig
    from ingest.gateway import run
    from pipeline.settings import load_settings

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    config = load_settings(GatewayConfig, **overrides)
    try:
        return run_stage(config, run, create_topics=args.create_topics)
    except (OSError, KafkaError) as exc:  # the port is taken, the broker is unreachable at start
        raise UsageError(f"gateway could not start: {type(exc).__name__}: {exc}") from None
