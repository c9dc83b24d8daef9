"""The `callscope` command line: every subcommand explains itself and refuses to run unconfigured."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from deploy.cli import build_parser, main

SUBCOMMANDS = [
    ["ingest"],
    ["ingest", "replay"],
    ["ingest", "gateway"],
    ["transcribe"],
    ["transcribe", "serve"],
    ["analyze"],
    ["analyze", "replay"],
    ["store"],
    ["console"],
    ["console", "add-user"],
    ["demo"],
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
    assert "CALLSCOPE_KAFKA_BOOTSTRAP" in out and "reads:" in out and "writes:" in out
    assert f"CALLSCOPE_{stage.upper()}_METRICS_ADDRESS" in out
    assert "callscope." in out  # topic names


def test_console_script_runs_and_lists_the_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "--help"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    for name in ("ingest", "transcribe", "analyze", "store", "console", "demo"):
        assert name in out


@pytest.mark.parametrize("argv", [["bench"], ["ingest", "loadtest"]], ids=" ".join)
def test_benchmarks_are_not_commands_of_the_installed_product(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No CALLSCOPE_* variable from the caller's shell: each test sets what it needs."""
    import os

    for name in [n for n in os.environ if n.startswith("CALLSCOPE_")]:
        monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("command", ["transcribe", "analyze", "store", "ingest replay", "ingest gateway"])
def test_stage_without_kafka_bootstrap_exits_with_a_clear_message(
    command: str, environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = command.split() + (["x.wav"] if command == "ingest replay" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "CALLSCOPE_KAFKA_BOOTSTRAP is not set" in err and len(err.splitlines()) == 1


def test_store_without_database_url_exits_with_a_clear_message(
    environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environ.setenv("CALLSCOPE_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    assert main(["store"]) == 2
    assert "CALLSCOPE_DATABASE_URL is not set" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "variable", "value"),
    [
        (["analyze"], "CALLSCOPE_PARTITIONS", "eight"),
        (["ingest", "gateway"], "CALLSCOPE_PARTITIONS", "0"),
        (["store"], "CALLSCOPE_STORE_METRICS_ADDRESS", "9404"),
        (["ingest", "gateway"], "CALLSCOPE_INGEST_PORT", "http"),
        (["ingest", "replay", "x.wav"], "CALLSCOPE_KAFKA_BOOTSTRAP", "kafka://broker:9092"),
    ],
)
def test_a_bad_setting_ends_in_one_line_naming_it(
    argv: list[str],
    variable: str,
    value: str,
    environ: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    environ.setenv("CALLSCOPE_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    environ.setenv("CALLSCOPE_DATABASE_URL", "postgresql+asyncpg://u@127.0.0.1:1/db")
    environ.setenv(variable, value)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert variable in err and len(err.splitlines()) == 1


def test_a_metrics_address_in_use_ends_in_one_line(
    environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        environ.setenv("CALLSCOPE_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # /metrics binds before the broker is used
        environ.setenv("CALLSCOPE_INGEST_METRICS_ADDRESS", f"127.0.0.1:{port}")
        environ.setenv("CALLSCOPE_INGEST_PORT", "0")
        assert main(["ingest", "gateway"]) == 2
    err = capsys.readouterr().err
    assert f"cannot serve /metrics on 127.0.0.1:{port}" in err and len(err.splitlines()) == 1


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
    monkeypatch.setenv("CALLSCOPE_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    assert main(argv) == 2
    assert message in capsys.readouterr().err
