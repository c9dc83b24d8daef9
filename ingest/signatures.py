"""Request signatures the telephony sources put on the WebSocket upgrade: pure functions.

- Twilio: `X-Twilio-Signature` = base64(HMAC-SHA1(auth token, URL + sorted POST parameters)); a
  WebSocket upgrade is a GET, so the signed data is the full URL, query included.
- Genesys AudioHook: HTTP Message Signatures (RFC 9421) with hmac-sha256 keyed by the client
  secret (base64), `keyid` = the API key, over @request-target, @authority and the Audiohook-*
  and X-API-KEY headers; plus `created`/`expires` and a `nonce` checked against replays.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


class AuthError(Exception):
    """The upgrade request is not authentic; `reason` is a short fixed code."""

    retryable = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- Twilio ---


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    data = url + "".join(k + v for k, v in sorted((params or {}).items()))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _port_variants(url: str) -> list[str]:
    """The URL as given, and with the default port added or removed (Twilio's own validator does this)."""
    parts = urlsplit(url)
    default = {"https": 443, "wss": 443, "http": 80, "ws": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if parts.port is None and default is not None:
        other = parts._replace(netloc=f"{host}:{default}")
    elif parts.port == default:
        other = parts._replace(netloc=host)
    else:
        return [url]
    return [url, urlunsplit(other)]


def verify_twilio(auth_token: str, url: str, signature: str | None) -> None:
    if not signature:
        raise AuthError("missing_signature")
    for candidate in _port_variants(url):
        if hmac.compare_digest(twilio_signature(auth_token, candidate), signature):
            return
    raise AuthError("bad_signature")


# --- RFC 9421 HTTP Message Signatures (the subset AudioHook uses) ---

AUDIOHOOK_COMPONENTS = (
    "@request-target",
    "@authority",
    "audiohook-organization-id",
    "audiohook-session-id",
    "audiohook-correlation-id",
    "x-api-key",
)
_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_INT = re.compile(r"-?\d{1,15}")
_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9:/!#$%&'*+\-.^_`|~]*")
_BYTES = re.compile(r":([A-Za-z0-9+/=]*):")

ParamValue = str | int | bool


@dataclass(frozen=True)
class SignatureInput:
    """One member of Signature-Input: the covered components and the signature parameters."""

    components: tuple[str, ...]
    params: tuple[tuple[str, ParamValue], ...]

    def param(self, name: str) -> ParamValue | None:
        return dict(self.params).get(name)

    def serialize(self) -> str:
        """The structured-field serialisation that the @signature-params line carries."""
        items = " ".join(_quote(c) for c in self.components)
        out = f"({items})"
        for name, value in self.params:
            if value is True:
                out += f";{name}"
            elif isinstance(value, int) and not isinstance(value, bool):
                out += f";{name}={value}"
            else:
                out += f";{name}={_quote(str(value))}"
        return out


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Reader:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def take(self, char: str) -> None:
        if self.peek() != char:
            raise AuthError("malformed_signature")
        self.pos += 1

    def skip_spaces(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.pos += 1

    def match(self, pattern: re.Pattern[str]) -> str:
        found = pattern.match(self.text, self.pos)
        if found is None:
            raise AuthError("malformed_signature")
        self.pos = found.end()
        return found.group(0)

    def string(self) -> str:
        self.take('"')
        out = []
        while True:
            char = self.peek()
            if not char:
                raise AuthError("malformed_signature")
            self.pos += 1
            if char == '"':
                return "".join(out)
            if char == "\\":
                char = self.peek()
                if char not in ('"', "\\"):
                    raise AuthError("malformed_signature")
                self.pos += 1
            elif not " " <= char <= "~":
                raise AuthError("malformed_signature")
            out.append(char)

    def bare_item(self) -> ParamValue:
        char = self.peek()
        if char == '"':
            return self.string()
        if char == "-" or char.isdigit():
            return int(self.match(_INT))
        if char == "?":
            self.pos += 1
            return self.match(re.compile("[01]")) == "1"
        return self.match(_TOKEN)

    def params(self) -> tuple[tuple[str, ParamValue], ...]:
        out: list[tuple[str, ParamValue]] = []
        while self.peek() == ";":
            self.pos += 1
            self.skip_spaces()
            name = self.match(_KEY)
            value: ParamValue = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            out.append((name, value))
        return tuple(out)

    def members(self, parse_value) -> dict[str, object]:  # noqa: ANN001 - a small local callback
        out: dict[str, object] = {}
        self.skip_spaces()
        while True:
            name = self.match(_KEY)
            self.take("=")
            out[name] = parse_value(self)
            self.skip_spaces()
            if not self.peek():
                return out
            self.take(",")
            self.skip_spaces()


def _inner_list(reader: _Reader) -> SignatureInput:
    reader.take("(")
    components: list[str] = []
    while True:
        reader.skip_spaces()
        if reader.peek() == ")":
            reader.pos += 1
            break
        components.append(reader.string())
        if reader.peek() == ";":  # component parameters (;sf, ;key, ;req) are not used by AudioHook
            raise AuthError("unsupported_signature")
    return SignatureInput(tuple(components), reader.params())


def parse_signature_input(value: str) -> dict[str, SignatureInput]:
    if len(value) > 4096:
        raise AuthError("malformed_signature")
    return _Reader(value).members(_inner_list)  # type: ignore[return-value]


def parse_signature(value: str) -> dict[str, bytes]:
    if len(value) > 4096:
        raise AuthError("malformed_signature")

    def byte_sequence(reader: _Reader) -> bytes:
        encoded = reader.match(_BYTES)[1:-1]
        reader.params()
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise AuthError("malformed_signature") from None

    return _Reader(value).members(byte_sequence)  # type: ignore[return-value]


def signature_base(sig: SignatureInput, request_target: str, headers: Mapping[str, str]) -> bytes:
    """The RFC 9421 signature base of a request; `headers` keys are lower-case."""
    lines = []
    for component in sig.components:
        if component == "@request-target":
            value = request_target
        elif component == "@authority":
            value = headers.get("host", "").lower()
        elif component.startswith("@"):
            raise AuthError("unsupported_signature")
        elif component in headers:
            value = headers[component].strip()
        else:
            raise AuthError("missing_header")
        lines.append(f'"{component}": {value}')
    lines.append(f'"@signature-params": {sig.serialize()}')
    return "\n".join(lines).encode()


class NonceCache:
    """Nonces seen within their validity window: a replayed request is refused. Bounded."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max = max_entries

    def add(self, nonce: str, expires_at: float, now: float) -> bool:
        """Record a nonce; False if it was already seen and has not expired."""
        while self._seen and (next(iter(self._seen.values())) < now or len(self._seen) >= self._max):
            self._seen.popitem(last=False)
        if nonce in self._seen:
            return False
        self._seen[nonce] = expires_at
        return True


@dataclass(frozen=True)
class SignaturePolicy:
    max_age_s: float = 300.0
    clock_skew_s: float = 30.0


def verify_audiohook(
    *,
    request_target: str,
    headers: Mapping[str, str],
    client_secret_b64: str,
    nonces: NonceCache,
    now: float | None = None,
    policy: SignaturePolicy = SignaturePolicy(),  # noqa: B008 - frozen value
) -> None:
    """Check the AudioHook request signature; raise AuthError with a reason code."""
    now = time.time() if now is None else now
    if "signature-input" not in headers or "signature" not in headers:
        raise AuthError("missing_signature")
    inputs = parse_signature_input(headers["signature-input"])
    signatures = parse_signature(headers["signature"])
    label, sig = next(iter(inputs.items()))
    if label not in signatures:
        raise AuthError("malformed_signature")
    if not set(AUDIOHOOK_COMPONENTS) <= set(sig.components):
        raise AuthError("uncovered_components")
    if sig.param("keyid") != headers.get("x-api-key"):
        raise AuthError("wrong_keyid")
    if sig.param("alg") not in (None, "hmac-sha256"):
        raise AuthError("unsupported_signature")
    created, expires = sig.param("created"), sig.param("expires")
    if (
        not isinstance(created, int)
        or created > now + policy.clock_skew_s
        or created < now - policy.max_age_s
    ):
        raise AuthError("signature_expired")
    if expires is not None and (not isinstance(expires, int) or expires < now - policy.clock_skew_s):
        raise AuthError("signature_expired")
    try:
        key = base64.b64decode(client_secret_b64, validate=True)
    except binascii.Error:
        raise AuthError("bad_client_secret") from None
    expected = hmac.new(key, signature_base(sig, request_target, headers), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signatures[label]):
        raise AuthError("bad_signature")
    nonce = sig.param("nonce")
    if isinstance(nonce, str):
        valid_until = float(expires) if isinstance(expires, int) else created + policy.max_age_s
        if not nonces.add(nonce, valid_until + policy.clock_skew_s, now):
            raise AuthError("nonce_reused")


def sign_audiohook(
    *,
    request_target: str,
    headers: Mapping[str, str],
    api_key: str,
    client_secret_b64: str,
    now: float | None = None,
    lifetime_s: int = 30,
) -> dict[str, str]:
    """Signature-Input and Signature headers for an AudioHook request (what Genesys sends)."""
    created = int(time.time() if now is None else now)
    sig = SignatureInput(
        AUDIOHOOK_COMPONENTS,
        (
            ("keyid", api_key),
            ("nonce", secrets.token_urlsafe(16)),
            ("alg", "hmac-sha256"),
            ("created", created),
            ("expires", created + lifetime_s),
        ),
    )
    lowered = {k.lower(): v for k, v in headers.items()} | {"x-api-key": api_key}
    base = signature_base(sig, request_target, lowered)
    digest = hmac.new(base64.b64decode(client_secret_b64), base, hashlib.sha256).digest()
    return {
        "Signature-Input": f"sig1={sig.serialize()}",
        "Signature": f"sig1=:{base64.b64encode(digest).decode()}:",
    }
