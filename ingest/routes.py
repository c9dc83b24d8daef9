"""Which protocol a WebSocket path speaks, who may connect to it, and the session it gets."""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping

from ingest.audiohook import AudioHookSession
from ingest.config import GatewayConfig
from ingest.generic import GenericSession
from ingest.protocol import Session
from ingest.signatures import AuthError, NonceCache, verify_audiohook, verify_twilio
from ingest.twilio import TwilioSession

PATHS = {"/twilio": "twilio", "/audiohook": "audiohook", "/v1/stream": "generic"}
AUDIOHOOK_HEADERS = (
    "audiohook-organization-id",
    "audiohook-correlation-id",
    "audiohook-session-id",
    "x-api-key",
)


def source_for(request_target: str) -> str | None:
    return PATHS.get(request_target.split("?", 1)[0].rstrip("/") or "/")


def authenticate(
    source: str,
    request_target: str,
    headers: Mapping[str, str],
    config: GatewayConfig,
    nonces: NonceCache,
    now: float | None = None,
) -> None:
    """Raise AuthError (reason code) unless the upgrade request may open a `source` session.

    `headers` has lower-case names.
    """
    now = time.time() if now is None else now
    match source:
        case "twilio":
            if config.twilio_auth_token is None:
                _unconfigured(config)
                return
            base = config.twilio_public_url.rstrip("/") or f"wss://{headers.get('host', '')}"
            verify_twilio(
                config.twilio_auth_token.get_secret_value(),
                base + request_target,
                headers.get("x-twilio-signature"),
            )
        case "audiohook":
            missing = [h for h in AUDIOHOOK_HEADERS if not headers.get(h)]
            if missing:
                raise AuthError("missing_header")
            if not config.audiohook_api_keys:
                _unconfigured(config)
                return
            secret = _lookup(config.audiohook_api_keys, headers["x-api-key"])
            if secret is None:
                raise AuthError("unknown_api_key")
            if secret.get_secret_value():  # an API key with no client secret: key check only
                verify_audiohook(
                    request_target=request_target,
                    headers=headers,
                    client_secret_b64=secret.get_secret_value(),
                    nonces=nonces,
                    now=now,
                )
        case "generic":
            if not config.generic_tokens:
                _unconfigured(config)
                return
            scheme, _, token = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise AuthError("missing_token")
            if not any(
                hmac.compare_digest(token.encode(), t.get_secret_value().encode())
                for t in config.generic_tokens
            ):
                raise AuthError("bad_token")
        case _:
            raise AuthError("unknown_path")


def _unconfigured(config: GatewayConfig) -> None:
    if not config.allow_unauthenticated:
        raise AuthError("no_credentials_configured")


def _lookup(keys: Mapping[str, object], api_key: str):  # noqa: ANN202 - SecretStr | None
    for known, secret in keys.items():
        if hmac.compare_digest(known.encode(), api_key.encode()):
            return secret
    return None


def new_session(source: str, headers: Mapping[str, str], config: GatewayConfig) -> Session:
    match source:
        case "twilio":
            return TwilioSession()
        case "audiohook":
            return AudioHookSession(
                session_id=headers.get("audiohook-session-id", ""),
                organization_id=headers.get("audiohook-organization-id", ""),
                close_wait_s=config.close_wait_s,
            )
        case _:
            return GenericSession()
