"""The README's configuration tables name every setting each stage reads from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from analyze.config import AnalyzeConfig
from console.config import ConsoleConfig
from ingest.config import GatewayConfig
from pipeline.settings import StageSettings
from store.config import StoreConfig
from transcribe.config import TranscribeConfig

README = (Path(__file__).parent.parent / "README.md").read_text()


def _environment_names(cls: type[BaseSettings]) -> list[tuple[str, str]]:
    """(full variable name, the name without its stage prefix) of every field of `cls`."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names = []
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        full = alias if isinstance(alias, str) else prefix + field_name.upper()
        names.append((full, field_name.upper()))
    return names


@pytest.mark.parametrize(
    "cls", [StageSettings, GatewayConfig, TranscribeConfig, AnalyzeConfig, StoreConfig, ConsoleConfig]
)
def test_every_setting_is_in_the_readme(cls: type[BaseSettings]):
    # A table row names the whole variable; a list under a prefix may name `NAME` or `_NAME`.
    missing = [
        full
        for full, short in _environment_names(cls)
        if f"`{full}`" not in README and f"`{short}`" not in README and f"`_{short}`" not in README
    ]
    assert not missing, f"README.md's Configuration does not name: {', '.join(missing)}"
