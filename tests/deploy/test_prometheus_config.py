"""deploy/prometheus/ passes Debian's promtool (config, rules, alert tests) and agrees with the stages."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
COMPOSE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
KUBERNETES_CONFIG = PROMETHEUS_DIR / "prometheus-kubernetes.yml"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool not found: install the Debian package `prometheus` (deploy/run.sh test does)"
    return path


def _promtool(promtool: str, *args: str | Path) -> str:
    done = subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_the_compose_scrape_config_and_its_rules_pass_promtool(promtool: str) -> None:
    out = _promtool(promtool, "check", "config", COMPOSE_CONFIG)
    assert "SUCCESS" in out and all(f.name in out for f in RULE_FILES)  # the rule files were found


def test_every_rule_file_passes_promtool(promtool: str) -> None:
    out = _promtool(promtool, "check", "rules", *RULE_FILES)
    assert out.count("SUCCESS") == len(RULE_FILES)


def test_the_alerts_fire_on_the_series_their_unit_tests_feed_them(promtool: str) -> None:
    out = _promtool(promtool, "test", "rules", PROMETHEUS_DIR / "tests" / "alerts-test.yml")
    assert "SUCCESS" in out


def test_the_kubernetes_form_has_the_same_rules_and_is_valid_but_for_its_discovery(
    promtool: str, tmp_path: Path
) -> None:
    # Debian builds Prometheus without Kubernetes discovery, so its promtool rejects the
    # kubernetes_sd_configs key itself; everything else (relabelling, rules) is checked here.
    config = yaml.safe_load(KUBERNETES_CONFIG.read_text())
    assert config["rule_files"] == yaml.safe_load(COMPOSE_CONFIG.read_text())["rule_files"]
    stages = next(j for j in config["scrape_configs"] if j["job_name"] == "callscope-stages")
    assert stages["kubernetes_sd_configs"] == [{"role": "pod"}]
    (job_rule,) = [r for r in stages["relabel_configs"] if r.get("target_label") == "job"]
    assert job_rule["source_labels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_component"]
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": ["127.0.0.1:9"]}]
        del job["kubernetes_sd_configs"]
    (tmp_path / "rules").symlink_to(PROMETHEUS_DIR / "rules")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    assert "SUCCESS" in _promtool(promtool, "check", "config", tmp_path / "prometheus.yml")


def test_each_static_target_is_the_default_metrics_port_of_the_stage_its_job_names() -> None:
    from analyze.config import AnalyzeConfig
    from console.config import ConsoleConfig
    from ingest.config import GatewayConfig
    from store.config import StoreConfig
    from transcribe.config import TranscribeConfig

    configs = {
        "ingest": GatewayConfig,
        "transcribe": TranscribeConfig,
        "analyze": AnalyzeConfig,
        "store": StoreConfig,
        "console": ConsoleConfig,
    }
    jobs = {j["job_name"]: j for j in yaml.safe_load(COMPOSE_CONFIG.read_text())["scrape_configs"]}
    assert set(configs) <= set(jobs), "every stage that serves /metrics is scraped"
    compose = yaml.safe_load((PROMETHEUS_DIR.parents[1] / "docker-compose.yml").read_text())["services"]
    for stage, config in configs.items():
        default_port = config.model_fields["metrics_address"].default.rpartition(":")[2]
        (target,) = jobs[stage]["static_configs"][0]["targets"]
        host, port = target.rsplit(":", 1)
        assert port == default_port, f"{stage}: scraped on {port}, serves on {default_port}"
        if host in compose:  # a stage compose runs is scraped where compose tells it to listen
            address = compose[host]["environment"][f"CALLSCOPE_{stage.upper()}_METRICS_ADDRESS"]
            assert address == f"0.0.0.0:{port}", stage


def test_alert_expressions_are_a_signal_over_a_threshold_so_each_signal_can_be_evaluated() -> None:
    from tests.deploy.promql import alert_signals

    groups = [g for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"]]
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 4
    for rule in alerts:
        signals = alert_signals(rule["expr"])
        assert signals and all(not re.search(r"[<>]=?\s*[\d.]+\s*$", s) for s in signals), rule["alert"]
