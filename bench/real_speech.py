"""Benchmark on the standard real-speech test calls: `python -m bench.real_speech [options]`.

The same run and report as `callscope bench`, over tests/calls.py's two-leg calls (LibriVox
reading, Asterisk phone prompts, two scripted phrases). Needs espeak-ng, sox and the Asterisk
prompt packages, as the test suite does (`bash deploy/run.sh test` installs them).
"""

from __future__ import annotations

import argparse
import os
import sys

from bench.pipeline import repeated, run_and_print
from deploy.cli import DEFAULT_PARTITIONS
from pipeline.logs import configure_logging


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.real_speech", description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=1, help="replay each standard call N times (default 1)")
    p.add_argument("--concurrency", type=int, default=2, help="calls replayed at once (default 2)")
    p.add_argument("--speed", type=float, default=1.0, help="replay pace, multiple of real time (0 = max)")
    p.add_argument("--codec", choices=("mulaw", "pcm16"), default="mulaw", help="default mulaw")
    p.add_argument("--rate", type=int, choices=(8000, 16000), default=8000, help="Hz, default 8000")
    p.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    p.add_argument("--timeout", type=float, help="give up after this many seconds (default: from the audio)")
    return p


def main(argv: list[str] | None = None) -> int:
    from tests.calls import standard_calls

    args = parser().parse_args(argv)
    environ = dict(os.environ)
    configure_logging("text", environ.get("CALLSCOPE_LOG_LEVEL", "WARNING"))
    try:
        calls = [call.replay() for call in standard_calls()]
    except FileNotFoundError as exc:  # espeak-ng, sox or the Asterisk prompts are missing
        print(f"bench.real_speech: {exc}", file=sys.stderr)
        return 2
    partitions = int(environ.get("CALLSCOPE_PARTITIONS") or DEFAULT_PARTITIONS)
    return run_and_print(repeated(calls, args.calls), args, environ, partitions)


if __name__ == "__main__":
    sys.exit(main())
