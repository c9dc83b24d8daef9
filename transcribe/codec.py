"""Audio decoding for the transcriber: G.711 mu-law and PCM16 in, 16 kHz mono out.

Pure numpy. The resampler is stateful per leg and carries its filter history across frames, so
20 ms frames joined give exactly the samples one block would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ingest.events import AudioFrame, Codec

TARGET_RATE_HZ = 16_000


def _mulaw_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32)
    u = ~codes & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


MULAW_TO_PCM16: np.ndarray = _mulaw_table()  # index: mu-law byte, value: linear int16 (G.711)


def decode_mulaw(payload: bytes) -> np.ndarray:
    """G.711 mu-law bytes to int16 samples."""
    return MULAW_TO_PCM16[np.frombuffer(payload, dtype=np.uint8)]


def encode_mulaw(samples: np.ndarray) -> bytes:
    """int16 samples to G.711 mu-law bytes (nearest code); for tests and replay tools."""
    x = samples.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0x00)
    magnitude = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    code = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return code.astype(np.uint8).tobytes()


def decode_pcm16(payload: bytes) -> np.ndarray:
    """Signed 16-bit little-endian bytes to int16 samples (native order)."""
    return np.frombuffer(payload, dtype="<i2").astype(np.int16)


def _half_band_filter(num_taps: int = 64, cutoff_hz: float = 3_800.0) -> np.ndarray:
    # Windowed-sinc low-pass at the 16 kHz output rate, gain 2 to make up for zero insertion.
    n = np.arange(num_taps) - (num_taps - 1) / 2
    fc = cutoff_hz / TARGET_RATE_HZ
    taps = 2 * fc * np.sinc(2 * fc * n) * np.blackman(num_taps)
    return (2 * taps / taps.sum()).astype(np.float64)


_FILTER = _half_band_filter()
_PHASES = (_FILTER[0::2], _FILTER[1::2])  # polyphase split: even and odd output samples


@dataclass
class Upsampler2x:
    """Streaming 8 kHz -> 16 kHz interpolator; output has exactly twice the input's samples.

    Adds a fixed group delay of about 2 ms, the same for every frame, so positions stay exact.
    """

    _history: np.ndarray = field(default_factory=lambda: np.zeros(len(_PHASES[0]) - 1))

    def process(self, samples: np.ndarray) -> np.ndarray:
        if len(samples) == 0:
            return np.zeros(0, dtype=np.float64)
        x = np.concatenate([self._history, samples.astype(np.float64)])
        self._history = x[-(len(_PHASES[0]) - 1) :]
        out = np.empty(2 * len(samples), dtype=np.float64)
        # np.convolve flips the kernel: phase p gives output sample 2k + p.
        out[0::2] = np.convolve(x, _PHASES[0], mode="valid")
        out[1::2] = np.convolve(x, _PHASES[1], mode="valid")
        return out


def to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(samples), -32768, 32767).astype(np.int16)


@dataclass
class LegDecoder:
    """Decodes one leg's frames to PCM16 at 16 kHz; one instance per leg and format."""

    codec: Codec
    sample_rate_hz: int
    _upsampler: Upsampler2x | None = None

    def __post_init__(self) -> None:
        if self.sample_rate_hz not in (8_000, TARGET_RATE_HZ):
            raise ValueError(f"unsupported sample rate {self.sample_rate_hz}")
        if self.sample_rate_hz == 8_000:
            self._upsampler = Upsampler2x()

    def decode(self, payload: bytes) -> np.ndarray:
        """Payload in the source codec to int16 samples at 16 kHz."""
        linear = decode_mulaw(payload) if self.codec == Codec.MULAW else decode_pcm16(payload)
        if self._upsampler is None:
            return linear
        return to_int16(self._upsampler.process(linear))

    def to_pcm16_16k(self, frame: AudioFrame) -> bytes:
        return self.decode(frame.payload).astype("<i2").tobytes()


def samples_at_16k(samples: int, sample_rate_hz: int) -> int:
    """A position at the source rate expressed in 16 kHz samples."""
    return samples * TARGET_RATE_HZ // sample_rate_hz
