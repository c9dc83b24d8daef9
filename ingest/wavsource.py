"""WAV recordings into per-leg 20 ms frames in an outgoing codec: pure functions, no I/O but file reads.

A call is either one stereo file (agent on the left channel, customer on the right) or one mono
file per leg. Samples are resampled to the outgoing rate with a windowed-sinc low-pass and
encoded as PCM16 or G.711 mu-law.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.events import LEGS, SUPPORTED_FORMATS, Codec, Leg

FRAME_MS = 20


class WavError(ValueError):
    """A recording that cannot be replayed (wrong sample width, channel count, rate)."""


@dataclass(frozen=True)
class OutputFormat:
    codec: Codec
    sample_rate_hz: int

    def __post_init__(self) -> None:
        if (self.codec, self.sample_rate_hz) not in SUPPORTED_FORMATS:
            supported = ", ".join(f"{c.name.lower()} {r} Hz" for c, r in sorted(SUPPORTED_FORMATS))
            raise ValueError(
                f"{self.codec.name.lower()} at {self.sample_rate_hz} Hz is not supported ({supported})"
            )

    @property
    def samples_per_frame(self) -> int:
        return self.sample_rate_hz * FRAME_MS // 1000


@dataclass(frozen=True)
class Recording:
    """Both legs of one call as int16 mono samples at one sample rate."""

    legs: dict[Leg, np.ndarray]
    sample_rate_hz: int

    @property
    def duration_s(self) -> float:
        return max(len(s) for s in self.legs.values()) / self.sample_rate_hz


@dataclass(frozen=True, slots=True)
class LegFrame:
    """One leg's 20 ms of encoded audio and its position; call id and capture time come later."""

    leg: Leg
    seq: int
    offset_samples: int
    sample_rate_hz: int
    payload: bytes

    @property
    def offset_s(self) -> float:
        return self.offset_samples / self.sample_rate_hz


def read_wav(path: Path | str) -> tuple[np.ndarray, int]:
    """Read a PCM16 WAV; return samples shaped (frames, channels) and the sample rate."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2:
                raise WavError(f"{path}: expected 16-bit PCM, got {8 * w.getsampwidth()}-bit")
            channels = w.getnchannels()
            rate = w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise WavError(f"{path}: not a PCM WAV file ({exc})") from None
    samples = np.frombuffer(raw, dtype="<i2").reshape(-1, channels)
    return samples, rate


def load_stereo(path: Path | str, sample_rate_hz: int | None = None) -> Recording:
    """Agent on the left channel, customer on the right."""
    samples, rate = read_wav(path)
    if samples.shape[1] != 2:
        raise WavError(f"{path}: expected a stereo file (agent left, customer right), got {samples.shape[1]}")
    legs = {"agent": samples[:, 0].copy(), "customer": samples[:, 1].copy()}
    return _at_rate(legs, rate, sample_rate_hz or rate)


def load_legs(agent: Path | str, customer: Path | str, sample_rate_hz: int | None = None) -> Recording:
    """One mono file per leg; the files may differ in length and sample rate."""
    legs: dict[Leg, np.ndarray] = {}
    rates: dict[Leg, int] = {}
    for leg, path in (("agent", agent), ("customer", customer)):
        samples, rate = read_wav(path)
        if samples.shape[1] != 1:
            raise WavError(f"{path}: expected a mono file for the {leg} leg, got {samples.shape[1]} channels")
        legs[leg], rates[leg] = samples[:, 0].copy(), rate
    target = sample_rate_hz or max(rates.values())
    return Recording(
        legs={leg: resample(s, rates[leg], target) for leg, s in legs.items()}, sample_rate_hz=target
    )


def _at_rate(legs: dict[Leg, np.ndarray], rate: int, target: int) -> Recording:
    return Recording(legs={leg: resample(s, rate, target) for leg, s in legs.items()}, sample_rate_hz=target)


def resample(samples: np.ndarray, src_hz: int, dst_hz: int, *, zero_crossings: int = 16) -> np.ndarray:
    """Band-limited resampling of int16 mono audio by any ratio (Kaiser-windowed sinc).

    The low-pass sits at 90 % of the lower Nyquist frequency (3.6 kHz for 16k -> 8k), so
    downsampling does not fold speech energy above 4 kHz back into the phone band.
    """
    if src_hz <= 0 or dst_hz <= 0:
        raise WavError(f"bad sample rate {src_hz} -> {dst_hz}")
    if src_hz == dst_hz or len(samples) == 0:
        return np.asarray(samples, dtype=np.int16).copy()
    x = np.asarray(samples, dtype=np.float64)
    scale = min(1.0, dst_hz / src_hz) * 0.9  # cutoff in cycles per input sample, times 2
    half_width = int(np.ceil(zero_crossings / scale))  # input samples on each side
    beta = 8.6
    n_out = len(x) * dst_hz // src_hz
    padded = np.concatenate([np.zeros(half_width), x, np.zeros(half_width + 1)])
    taps = np.arange(-half_width + 1, half_width + 1)
    out = np.empty(n_out)
    chunk = 4096
    for start in range(0, n_out, chunk):
        t = np.arange(start, min(start + chunk, n_out)) * (src_hz / dst_hz)  # output times in input samples
        base = np.floor(t).astype(np.int64)
        k = base[:, None] + taps[None, :]  # input sample indices around each output time
        d = t[:, None] - k
        u = np.clip(d / (half_width + 1), -1.0, 1.0)
        window = np.i0(beta * np.sqrt(1.0 - u * u)) / np.i0(beta)
        h = scale * np.sinc(scale * d) * window
        out[start : start + len(t)] = (padded[k + half_width] * h).sum(axis=1)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


_MULAW_BIAS = 0x84
_MULAW_CLIP = 32635


def mulaw_encode(samples: np.ndarray) -> bytes:
    """G.711 mu-law encoding of int16 samples (the ITU reference algorithm, vectorised)."""
    x = np.asarray(samples, dtype=np.int32)
    sign = np.where(x < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(x), _MULAW_CLIP) + _MULAW_BIAS
    exponent = np.floor(np.log2(magnitude >> 7)).astype(np.int32)  # magnitude >> 7 is 1..255
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def encode(samples: np.ndarray, codec: Codec) -> bytes:
    if codec is Codec.MULAW:
        return mulaw_encode(samples)
    return np.asarray(samples, dtype="<i2").tobytes()


def frame_leg(leg: Leg, samples: np.ndarray, fmt: OutputFormat) -> list[LegFrame]:
    """Cut one leg (already at fmt's rate) into 20 ms frames; the last one may be shorter."""
    step = fmt.samples_per_frame
    return [
        LegFrame(
            leg=leg,
            seq=seq,
            offset_samples=offset,
            sample_rate_hz=fmt.sample_rate_hz,
            payload=encode(samples[offset : offset + step], fmt.codec),
        )
        for seq, offset in enumerate(range(0, len(samples), step))
    ]


def call_frames(recording: Recording, fmt: OutputFormat) -> list[LegFrame]:
    """Both legs' frames interleaved in time order (agent before customer within a slot)."""
    frames: list[LegFrame] = []
    for leg in LEGS:
        samples = resample(recording.legs[leg], recording.sample_rate_hz, fmt.sample_rate_hz)
        frames.extend(frame_leg(leg, samples, fmt))
    leg_rank = {leg: i for i, leg in enumerate(LEGS)}
    frames.sort(key=lambda f: (f.offset_samples, leg_rank[f.leg]))
    return frames


def write_stereo_wav(path: Path | str, agent: np.ndarray, customer: np.ndarray, sample_rate_hz: int) -> None:
    """Write two int16 mono legs as a stereo PCM16 WAV (shorter leg padded with silence)."""
    n = max(len(agent), len(customer))
    stereo = np.zeros((n, 2), dtype="<i2")
    stereo[: len(agent), 0] = agent
    stereo[: len(customer), 1] = customer
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(sample_rate_hz)
        w.writeframes(stereo.tobytes())
