"""Benchmark on the standard real-speech test calls: `python -m bench.real_speech [options]`.

The same run and report as `python -m bench.pipeline`, over tests/calls.py's two-leg calls
(LibriVox reading, Asterisk phone prompts, two scripted phrases). Needs espeak-ng, sox and the
Asterisk prompt packages, as the test suite does (`bash deploy/run.sh test` installs them).
"""

from __future__ import annotations

import argparse
import os
import sys

from bench.pipeline import repeated, run_and_print, run_options
from deploy.cli_common import SERVICES_ENV, formatter, shared_settings
from pipeline.logs import configure_logging
from pipeline.settings import SettingsError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.real_speech",
        description=__doc__.splitlines()[0],
        epilog=SERVICES_ENV,
        formatter_class=formatter,
    )
    p.add_argument("--calls", type=int, default=1, help="replay each standard call N times (default 1)")
    run_options(p, concurrency=2)
    return p


def main(argv: list[str] | None = None) -> int:
    from tests.calls import standard_calls

    args = parser().parse_args(argv)
    environ = dict(os.environ)
    configure_logging("text", environ.get("CALLSCOPE_LOG_LEVEL", "WARNING"))
    try:
        partitions = shared_settings().partitions
        calls = [call.replay() for call in standard_calls()]
    except SettingsError as exc:
        print(f"bench.real_speech: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:  # espeak-ng, sox or the Asterisk prompts are missing
        print(f"bench.real_speech: {exc}", file=sys.stderr)
        return 2
    return run_and_print(repeated(calls, args.calls), args, environ, partitions)


if __name__ == "__main__":
    sys.exit(main())
