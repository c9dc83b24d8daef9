"""The `callscope` command line: every subcommand explains itself and refuses to run unconfigured."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deploy.cli import build_parser, main

SUBCOMMANDS = [
    ["ingest"],
    ["ingest", "replay"],
    ["transcribe"],
    ["analyze"],
    ["store"],
    ["demo"],
    ["bench"],
]


@pytest.mark.parametrize("argv", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*argv, "--help"])
    assert exit_info.value.code == 0
    assert len(capsys.readouterr().out) > 200


@pytest.mark.parametrize("stage", ["transcribe", "analyze", "store"])
def test_stage_help_names_its_topics_and_environment(stage: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([stage, "--help"])
    out = capsys.readouterr().out
    assert "KAFKA_BOOTSTRAP" in out and "reads:" in out and "writes:" in out
    assert "callscope." in out  # topic names


def test_console_script_runs_and_lists_the_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "--help"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    for name in ("ingest", "transcribe", "analyze", "store", "demo", "bench"):
        assert name in out


@pytest.mark.parametrize("stage", ["transcribe", "analyze", "store", "ingest"])
def test_stage_without_kafka_bootstrap_exits_with_a_clear_message(
    stage: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    argv = ["ingest", "replay", "x.wav"] if stage == "ingest" else [stage]
    assert main(argv) == 2
    assert "KAFKA_BOOTSTRAP is not set" in capsys.readouterr().err


def test_store_without_database_url_exits_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["store"]) == 2
    assert "DATABASE_URL is not set" in capsys.readouterr().err


def test_bad_partition_count_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("CALLSCOPE_PARTITIONS", "eight")
    assert main(["analyze"]) == 2
    assert "CALLSCOPE_PARTITIONS" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ingest", "replay"], "nothing to replay"),
        (["ingest", "replay", "--agent", "a.wav"], "go together"),
        (["ingest", "replay", "a.wav", "b.wav", "--call-id", "x"], "one call"),
        (["ingest", "replay", "a.wav", "--codec", "mulaw", "--rate", "16000"], "not supported"),
        (["ingest", "replay", "missing.wav"], "missing.wav"),
    ],
)
def test_replay_refuses_bad_arguments_before_touching_the_broker(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:1")
    assert main(argv) == 2
    assert message in capsys.readouterr().err
