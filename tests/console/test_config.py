"""The console's settings: CALLSCOPE_CONSOLE_* for its own, the shared CALLSCOPE_* names for the rest."""

from __future__ import annotations

import pytest

from console.config import ConsoleConfig
from pipeline.settings import SettingsError, load_settings


def test_settings_come_from_the_console_prefix_and_the_shared_names(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CALLSCOPE_KAFKA_BOOTSTRAP", "broker:9092")
    monkeypatch.setenv("CALLSCOPE_DATABASE_URL", "postgresql+asyncpg://u@db/callscope")
    monkeypatch.setenv("CALLSCOPE_CONSOLE_PORT", "8443")
    monkeypatch.setenv("CALLSCOPE_CONSOLE_SECURE_COOKIES", "true")
    monkeypatch.setenv("CALLSCOPE_CONSOLE_USERS_FILE", "/etc/callscope/users.yaml")
    config = load_settings(ConsoleConfig)
    assert (config.kafka_bootstrap, config.port, config.secure_cookies) == ("broker:9092", 8443, True)
    assert config.database_url == "postgresql+asyncpg://u@db/callscope"
    assert str(config.users_file) == "/etc/callscope/users.yaml"
    assert (config.host, config.metrics_address) == ("127.0.0.1", "127.0.0.1:9405")


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("CALLSCOPE_CONSOLE_SESSION_SECRET", "short", "CALLSCOPE_CONSOLE_SESSION_SECRET"),
        ("CALLSCOPE_DATABASE_URL", "postgresql://db/x", "CALLSCOPE_DATABASE_URL"),
        ("CALLSCOPE_CONSOLE_PORT", "70000", "CALLSCOPE_CONSOLE_PORT"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch, name, value, named):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as exc:
        load_settings(ConsoleConfig)
    assert named in str(exc.value) and "\n" not in str(exc.value)
    assert value not in str(exc.value) or name != "CALLSCOPE_CONSOLE_SESSION_SECRET"
