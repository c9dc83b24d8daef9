"""WebSocket clients that speak each protocol as its published specification describes.

They play the telephony side (Twilio, Genesys, a PBX media fork) for the tests, the load
benchmark and as the example client of the generic protocol. Built on the `websockets` library.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Mapping
from typing import Any, Self
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ingest.audiohook import format_duration
from ingest.events import Leg
from ingest.generic import audio_message
from ingest.signatures import sign_audiohook, twilio_signature
from ingest.twilio import twilio_call_id

_CONNECT_OPTIONS: dict[str, Any] = {"compression": None, "open_timeout": 10, "max_size": 2**20, "proxy": None}


def interleave(external: bytes, internal: bytes) -> bytes:
    """Two mono PCMU channels into AudioHook's stereo frame layout (external first)."""
    out = bytearray(2 * len(external))
    out[0::2], out[1::2] = external, internal
    return bytes(out)


class _Client:
    ws: ClientConnection

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def receive_json(self, timeout_s: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            message = await self.ws.recv()
        return json.loads(message)

    async def wait_closed(self, timeout_s: float = 10.0) -> tuple[int | None, str | None]:
        """Drain until the server closes; its close code and reason."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    await self.ws.recv()
        except ConnectionClosed:
            pass
        return self.ws.close_code, self.ws.close_reason


class TwilioClient(_Client):
    """Twilio Media Streams: connected, start, media per track, mark, dtmf, stop; signed upgrade."""

    def __init__(
        self,
        url: str,
        auth_token: str,
        call_sid: str,
        *,
        tracks: tuple[str, ...] = ("inbound", "outbound"),
        custom_parameters: Mapping[str, str] | None = None,
        signed_url: str | None = None,
    ) -> None:
        self.url = url
        self.call_sid = call_sid
        self.stream_sid = "MZ" + uuid.uuid4().hex
        self.call_id = twilio_call_id(call_sid, self.stream_sid)  # what the gateway names the call
        self._token = auth_token
        self._signed_url = signed_url or url
        self._tracks = tracks
        self._custom = dict(custom_parameters or {})
        self._sequence = 0
        self._chunks: dict[str, int] = {}

    async def __aenter__(self) -> Self:
        signature = twilio_signature(self._token, self._signed_url)
        self.ws = await connect(
            self.url, additional_headers={"X-Twilio-Signature": signature}, **_CONNECT_OPTIONS
        )
        return self

    def _next(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def start(self) -> None:
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self.send(
            {
                "event": "start",
                "sequenceNumber": self._next(),
                "start": {
                    "accountSid": "AC" + "0" * 32,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": list(self._tracks),
                    "customParameters": self._custom,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
                "streamSid": self.stream_sid,
            }
        )

    async def media(self, track: str, mulaw: bytes, timestamp_ms: int) -> None:
        chunk = self._chunks[track] = self._chunks.get(track, 0) + 1
        await self.send(
            {
                "event": "media",
                "sequenceNumber": self._next(),
                "media": {
                    "track": track,
                    "chunk": str(chunk),
                    "timestamp": str(timestamp_ms),
                    "payload": base64.b64encode(mulaw).decode(),
                },
                "streamSid": self.stream_sid,
            }
        )

    async def dtmf(self, digit: str) -> None:
        await self.send(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "sequenceNumber": self._next(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    async def mark(self, name: str) -> None:
        await self.send(
            {
                "event": "mark",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )

    async def stop(self) -> None:
        await self.send(
            {
                "event": "stop",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": "AC" + "0" * 32, "callSid": self.call_sid},
            }
        )


class AudioHookClient(_Client):
    """Genesys AudioHook v2: signed upgrade, open/opened, stereo PCMU frames, ping, pause, close."""

    def __init__(
        self,
        url: str,
        api_key: str,
        client_secret_b64: str,
        *,
        organization_id: str | None = None,
        session_id: str | None = None,
        signed: bool = True,
    ) -> None:
        self.url = url
        self.api_key = api_key
        self.organization_id = organization_id or str(uuid.uuid4())
        self.session_id = session_id or str(uuid.uuid4())
        self._secret = client_secret_b64
        self._signed = signed
        self.seq = 0
        self.server_seq = 0
        self.samples_sent = 0

    def upgrade_headers(self) -> dict[str, str]:
        parts = urlsplit(self.url)
        headers = {
            "Host": parts.netloc,
            "Audiohook-Organization-Id": self.organization_id,
            "Audiohook-Correlation-Id": str(uuid.uuid4()),
            "Audiohook-Session-Id": self.session_id,
            "X-API-KEY": self.api_key,
        }
        if self._signed:
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            headers |= sign_audiohook(
                request_target=target, headers=headers, api_key=self.api_key, client_secret_b64=self._secret
            )
        del headers["Host"]  # websockets sends the same value itself
        return headers

    async def __aenter__(self) -> Self:
        self.ws = await connect(self.url, additional_headers=self.upgrade_headers(), **_CONNECT_OPTIONS)
        return self

    def message(self, kind: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        self.seq += 1
        return {
            "version": "2",
            "id": self.session_id,
            "type": kind,
            "seq": self.seq,
            "serverseq": self.server_seq,
            "position": format_duration(self.samples_sent / 8000),
            "parameters": parameters or {},
        }

    async def send(self, kind: str, parameters: dict[str, Any] | None = None) -> None:
        await self.ws.send(json.dumps(self.message(kind, parameters)))

    async def receive(self, timeout_s: float = 10.0) -> dict[str, Any]:
        reply = await self.receive_json(timeout_s)
        self.server_seq = reply.get("seq", self.server_seq)
        return reply

    async def open(
        self,
        conversation_id: str | None = None,
        *,
        channels: tuple[str, ...] = ("external", "internal"),
        participant: Mapping[str, str] | None = None,
        custom_config: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send open (offering stereo, then each mono channel) and return the server's opened."""
        offers = [{"type": "audio", "format": "PCMU", "channels": list(channels), "rate": 8000}]
        offers += [
            {"type": "audio", "format": "PCMU", "channels": [c], "rate": 8000}
            for c in channels
            if len(channels) > 1
        ]
        await self.send(
            "open",
            {
                "organizationId": self.organization_id,
                "conversationId": conversation_id or str(uuid.uuid4()),
                "participant": dict(
                    participant or {"id": str(uuid.uuid4()), "ani": "", "aniName": "", "dnis": ""}
                ),
                "media": offers,
                "language": "en-US",
                "customConfig": dict(custom_config or {}),
            },
        )
        return await self.receive()

    async def audio(self, frame: bytes, channels: int = 2) -> None:
        await self.ws.send(frame)
        self.samples_sent += len(frame) // channels

    async def close(self, reason: str = "end") -> dict[str, Any]:
        """Send close and return the server's closed."""
        await self.send("close", {"reason": reason})
        return await self.receive()


class GenericClient(_Client):
    """The generic protocol: start, binary frames per leg, end."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self._token = token

    async def __aenter__(self) -> Self:
        headers = {"Authorization": f"Bearer {self._token}"}
        self.ws = await connect(self.url, additional_headers=headers, **_CONNECT_OPTIONS)
        return self

    async def start(
        self, call_id: str, codec: str = "mulaw", sample_rate_hz: int = 8000, **fields: Any
    ) -> dict:
        await self.ws.send(
            json.dumps(
                {
                    "type": "start",
                    "call_id": call_id,
                    "codec": codec,
                    "sample_rate_hz": sample_rate_hz,
                    **fields,
                }
            )
        )
        return await self.receive_json()

    async def audio(self, leg: Leg, payload: bytes) -> None:
        await self.ws.send(audio_message(leg, payload))

    async def end(self, reason: str = "hangup") -> dict:
        await self.ws.send(json.dumps({"type": "end", "reason": reason}))
        return await self.receive_json()
