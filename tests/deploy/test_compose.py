"""docker-compose.yml is production-shaped and agrees with the code (no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.cli import build_parser
from pipeline.topics import TOPICS

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
DOCKERFILE = COMPOSE.parent / "deploy" / "docker" / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def _subcommands(parser) -> dict[str, Any]:
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            return dict(action.choices)
    return {}


def test_the_stack_has_broker_database_model_server_and_every_stage(services: dict[str, Any]) -> None:
    assert {"kafka", "kafka-init", "postgres", "vllm", "transcribe", "analyze", "store"} <= set(services)


def test_depends_on_targets_exist(services: dict[str, Any]) -> None:
    for name, service in services.items():
        deps = service.get("depends_on", {})
        for target in deps if isinstance(deps, list) else deps.keys():
            assert target in services, f"{name} depends on unknown service {target}"


def test_images_are_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name} has no image"
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image} is not pinned"


def test_kafka_runs_in_kraft_mode_without_auto_created_topics(services: dict[str, Any]) -> None:
    env = services["kafka"]["environment"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] and env["CLUSTER_ID"]
    assert "ZOOKEEPER" not in " ".join(env)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_init_creates_exactly_the_pipeline_topics_with_the_configured_partitions(
    services: dict[str, Any],
) -> None:
    script = "\n".join(services["kafka-init"]["command"])
    assert set(TOPICS.all()) == set(re.findall(r"callscope\.[a-z]+\.v\d+", script))
    partitions = re.search(r"--partitions (\d+)", script)
    assert partitions is not None
    for stage in ("transcribe", "analyze", "store"):
        assert services[stage]["environment"]["CALLSCOPE_PARTITIONS"] == partitions.group(1)


def test_vllm_serves_voxtral_realtime_on_a_reserved_gpu(services: dict[str, Any]) -> None:
    vllm = services["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai:")
    args = vllm["command"]
    assert "mistralai/Voxtral-Mini-4B-Realtime-2602" in args
    for flag, value in (
        ("--tokenizer-mode", "mistral"),
        ("--config-format", "mistral"),
        ("--load-format", "mistral"),
    ):
        assert args[args.index(flag) + 1] == value
    assert "--max-model-len" in args and "--max-num-seqs" in args
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)


def test_every_callscope_command_names_a_real_cli_subcommand(services: dict[str, Any]) -> None:
    parser = build_parser()
    commands = _subcommands(parser)
    checked = 0
    for name, service in services.items():
        if service.get("build", {}).get("dockerfile") != "deploy/docker/Dockerfile":
            continue
        command = service["command"]
        assert command[0] in commands, f"{name}: `callscope {command[0]}` does not exist"
        if command[0] == "ingest":
            assert command[1] in _subcommands(commands["ingest"])
        parser.parse_args([c for c in command if c != "--help"])  # options are accepted too
        checked += 1
    assert checked >= 3


def test_stages_get_the_broker_and_the_store_gets_the_database(services: dict[str, Any]) -> None:
    for stage in ("transcribe", "analyze", "store"):
        assert services[stage]["environment"]["CALLSCOPE_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert services["store"]["environment"]["CALLSCOPE_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "postgres" in services["store"]["depends_on"]


def _stage_configs() -> dict[str, Any]:
    from analyze.config import AnalyzeConfig
    from store.config import StoreConfig
    from transcribe.config import TranscribeConfig

    return {"transcribe": TranscribeConfig, "analyze": AnalyzeConfig, "store": StoreConfig}


def test_every_callscope_variable_in_compose_is_a_setting_its_stage_reads(services: dict[str, Any]) -> None:
    logging_vars = {"CALLSCOPE_LOG_FORMAT", "CALLSCOPE_LOG_LEVEL", "CALLSCOPE_LOG_TRANSCRIPTS"}
    for stage, config in _stage_configs().items():
        prefix = config.model_config["env_prefix"]
        aliases = [field.validation_alias for field in config.model_fields.values()]
        shared = {
            alias
            for given in aliases
            for alias in (getattr(given, "choices", None) or [given])
            if isinstance(alias, str) and alias.startswith("CALLSCOPE_")
        }
        for name in services[stage]["environment"]:
            own = name.startswith(prefix) and name.removeprefix(prefix).lower() in config.model_fields
            assert name in shared | logging_vars or own, f"{stage}: {name} is read by nothing"


def test_each_stage_serves_metrics_to_the_compose_network_on_its_default_port(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from pipeline.settings import load_settings

    for name in [n for n in os.environ if n.startswith("CALLSCOPE_")]:
        monkeypatch.delenv(name)
    for stage, config in _stage_configs().items():
        with monkeypatch.context() as env:
            for name, value in services[stage]["environment"].items():
                env.setenv(name, str(value))
            settings = load_settings(config)
        default_port = int(config.model_fields["metrics_address"].default.rpartition(":")[2])
        # 0.0.0.0 inside the container is deliberate (the file says why); the port is the stage's own.
        assert settings.metrics_host_port() == ("0.0.0.0", default_port), stage


def test_dockerfile_runs_the_callscope_entrypoint() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11[\w.-]*", text, re.M)
    assert 'ENTRYPOINT ["callscope"]' in text
    assert "USER " in text  # not root


def test_dockerfile_copies_every_package_the_install_includes() -> None:
    import tomllib

    pyproject = tomllib.loads((COMPOSE.parent / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    text = DOCKERFILE.read_text()
    for package in packages:
        assert f"COPY {package} ./{package}" in text, f"the image would install without {package}/"


def test_transcribe_streams_to_the_vllm_service_with_settings_the_config_knows(
    services: dict[str, Any],
) -> None:
    env = services["transcribe"]["environment"]
    assert env["CALLSCOPE_TRANSCRIBE_ENGINE"] == "vllm"
    port = services["vllm"]["command"][services["vllm"]["command"].index("--port") + 1]
    assert env["CALLSCOPE_TRANSCRIBE_VLLM_URL"] == f"ws://vllm:{port}/v1/realtime"
    assert env["CALLSCOPE_TRANSCRIBE_VLLM_MODEL"] in services["vllm"]["command"]
    assert "vllm" in services["transcribe"]["depends_on"]
