"""Settings of the telephony gateway: one frozen object, built once per process (the CLI's load_settings)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from pipeline.settings import StageSettings


class GatewayConfig(StageSettings):
    """`CALLSCOPE_INGEST_*` variables, beside the shared broker and topic settings.

    Dicts and lists are JSON, e.g. CALLSCOPE_INGEST_AUDIOHOOK_API_KEYS='{"key": "c2VjcmV0..."}'.
    A protocol with no credentials configured refuses every connection unless
    allow_unauthenticated is set (for a lab, never in production).
    """

    model_config = SettingsConfigDict(env_prefix="CALLSCOPE_INGEST_")

    metrics_address: str = "127.0.0.1:9401"
    client_id: str = "callscope-ingest-gateway"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)

    # Credentials per protocol
    twilio_auth_token: SecretStr | None = None
    twilio_public_url: str = ""  # the wss://host Twilio dials, as it signs it (behind a TLS proxy)
    audiohook_api_keys: dict[str, SecretStr] = Field(default_factory=dict)  # API key -> client secret (b64)
    generic_tokens: list[SecretStr] = Field(default_factory=list)  # Authorization: Bearer <token>
    allow_unauthenticated: bool = False

    # Bounds: per message, per connection's receive queue, per call's records in flight to Kafka
    max_message_bytes: int = Field(262_144, ge=1_024, le=16_000_000)
    max_queued_messages: int = Field(16, ge=1, le=1_024)
    max_in_flight_records: int = Field(50, ge=1, le=100_000)  # 0.5 s of a two-leg call
    broker_deadline_s: float = Field(5.0, gt=0)  # no ack for this long: the broker is unreachable
    dead_letter_timeout_s: float = Field(2.0, gt=0)
    dead_letter_spool: str = ""  # JSON lines file for dead letters the broker would not take
    dead_letter_spool_max_bytes: int = Field(50_000_000, ge=0)
    close_wait_s: float = Field(5.0, ge=0)  # AudioHook: wait this long for the client's close
    linger_ms: int = Field(5, ge=0, le=1_000)
