"""Settings of the console: one frozen object, built once by the process's main()."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from pipeline.settings import StageSettings, shared


class ConsoleConfig(StageSettings):
    """Environment: the shared CALLSCOPE_* names, CALLSCOPE_CONSOLE_* for the rest."""

    model_config = SettingsConfigDict(
        env_prefix="CALLSCOPE_CONSOLE_", frozen=True, extra="ignore", populate_by_name=True
    )

    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(8080, ge=0, le=65535)  # 0: any free port (tests)
    users_file: Path = Path("console-users.yaml")
    # HMAC key of session cookies and agent-panel tokens. Every replica behind one load balancer
    # needs the same one; unset, a random key per process is used (sessions end with the process).
    session_secret: SecretStr | None = None
    session_ttl_s: int = Field(8 * 3600, ge=60, le=7 * 24 * 3600)
    # Secure cookies: set when browsers reach the console over TLS (a proxy in front of it).
    secure_cookies: bool = False
    agent_token_max_ttl_s: int = Field(3600, ge=60, le=24 * 3600)
    database_url: str = shared("DATABASE_URL", "")  # empty: no history or search, live only
    metrics_address: str = "127.0.0.1:9405"
    client_id: str = "callscope-console"
    # On start the live feed reads the topics back this far (seconds; 0 = from the beginning), so a
    # console started mid-call shows that call so far.
    readback_s: float = Field(4 * 3600, ge=0)
    max_live_calls: int = Field(5000, ge=1, le=1_000_000)
    # A call with no event for this long and no end is dropped from the wall (a lost call.ended).
    stale_call_s: float = Field(3600, gt=0)
    # An ended call stays in memory this long, so its live view stays open until the store has it.
    ended_call_linger_s: float = Field(120, ge=0)
    # Alerts of these categories also reach the agent's panel (the rest are for supervisors).
    agent_alert_categories: tuple[str, ...] = ("compliance",)
    poll_timeout_ms: int = Field(200, ge=10, le=10_000)

    @field_validator("session_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("give at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("database_url")
    @classmethod
    def _asyncpg(cls, value: str) -> str:
        if value and not value.startswith("postgresql+asyncpg://"):
            raise ValueError("must be a postgresql+asyncpg:// URL (or empty for no history)")
        return value
