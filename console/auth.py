"""Signed, expiring tokens: the session cookie, its CSRF token and the agent-panel token.

A token is `base64url(json payload).base64url(hmac_sha256(key_of_kind, payload))`. Each kind has
its own key derived from the one secret, so a panel token can never pass as a session cookie.
Tokens are stateless: several console replicas with the same secret accept each other's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Literal

Kind = Literal["session", "agent-panel", "csrf"]
MAX_TOKEN_CHARS = 2048


class TokenError(Exception):
    """A token that is malformed, forged or expired; `reason` is a short fixed code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Session:
    username: str
    expires_at: int
    nonce: str  # ties the CSRF token to this session


@dataclass(frozen=True)
class PanelGrant:
    agent_id: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Issues and checks the console's tokens with one secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the signing secret needs at least 32 bytes")
        self._keys = {
            kind: hmac.new(secret, f"callscope-console:{kind}".encode(), hashlib.sha256).digest()
            for kind in ("session", "agent-panel", "csrf")
        }

    def _sign(self, kind: Kind, payload: dict[str, object]) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        mac = hmac.new(self._keys[kind], body.encode(), hashlib.sha256).digest()
        return f"{body}.{_b64(mac)}"

    def _open(self, kind: Kind, token: str, now: float) -> dict[str, object]:
        if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            raise TokenError("malformed")
        body, mac = token.split(".")
        expected = hmac.new(self._keys[kind], body.encode(), hashlib.sha256).digest()
        try:
            given = _unb64(mac)
            payload = json.loads(_unb64(body))
        except (ValueError, UnicodeDecodeError):
            raise TokenError("malformed") from None
        if not hmac.compare_digest(expected, given):
            raise TokenError("bad_signature")
        if not isinstance(payload, dict) or not isinstance(payload.get("exp"), int):
            raise TokenError("malformed")
        if payload["exp"] <= now:
            raise TokenError("expired")
        return payload

    def issue_session(self, username: str, *, now: float, ttl_s: int) -> str:
        return self._sign("session", {"u": username, "exp": int(now) + ttl_s, "n": secrets.token_urlsafe(12)})

    def open_session(self, token: str, *, now: float) -> Session:
        payload = self._open("session", token, now)
        username, nonce = payload.get("u"), payload.get("n")
        if not isinstance(username, str) or not isinstance(nonce, str):
            raise TokenError("malformed")
        return Session(username=username, expires_at=int(payload["exp"]), nonce=nonce)  # type: ignore[arg-type]

    def csrf_token(self, session: Session) -> str:
        return _b64(hmac.new(self._keys["csrf"], session.nonce.encode(), hashlib.sha256).digest())

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), token or "")

    def issue_panel(self, agent_id: str, *, now: float, ttl_s: int) -> str:
        return self._sign("agent-panel", {"a": agent_id, "exp": int(now) + ttl_s})

    def open_panel(self, token: str, *, now: float) -> PanelGrant:
        payload = self._open("agent-panel", token, now)
        agent_id = payload.get("a")
        if not isinstance(agent_id, str) or not agent_id:
            raise TokenError("malformed")
        return PanelGrant(agent_id=agent_id, expires_at=int(payload["exp"]))  # type: ignore[arg-type]
