"""Each benchmark runs on its own from the repository root: `python -m bench.<name>`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("name", "option"),
    [
        ("bench.pipeline", "--concurrency"),
        ("bench.gateway", "--protocols"),
        ("bench.real_speech", "--json"),
        ("bench.hint_latency", "--calls"),
        ("bench.engine", "--urgent-workers"),
    ],
)
def test_each_benchmark_has_its_own_command_line(name: str, option: str) -> None:
    done = _bench(name, "--help")
    assert done.returncode == 0, done.stderr
    assert f"python -m {name}" in done.stdout and option in done.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["bench.gateway", "--calls", "0"],
        ["bench.gateway", "--protocols", "sip"],
        ["bench.pipeline", "--concurrency", "0"],
        ["bench.pipeline", "missing.wav"],
        ["bench.hint_latency", "--calls", "0"],
        ["bench.hint_latency", "--speed", "0"],
    ],
    ids=" ".join,
)
def test_a_benchmark_refuses_bad_arguments_before_starting_anything(argv: list[str]) -> None:
    done = _bench(*argv)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
