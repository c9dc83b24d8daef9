"""G.711 decoding and the streaming 8 -> 16 kHz resampler."""

from __future__ import annotations

import numpy as np

from ingest.events import AudioFrame, Codec
from transcribe.codec import MULAW_TO_PCM16, LegDecoder, Upsampler2x, decode_mulaw, decode_pcm16, encode_mulaw


def test_mulaw_table_matches_g711_reference_values():
    assert MULAW_TO_PCM16[0xFF] == 0 and MULAW_TO_PCM16[0x7F] == 0
    assert MULAW_TO_PCM16[0x00] == -32124 and MULAW_TO_PCM16[0x80] == 32124
    assert MULAW_TO_PCM16[0x0F] == -16764 and MULAW_TO_PCM16[0x8F] == 16764
    assert MULAW_TO_PCM16[0xFE] == 8 and MULAW_TO_PCM16[0x7E] == -8  # Sun g711.c ulaw2linear
    assert list(decode_mulaw(bytes([0x00, 0xFF, 0x80]))) == [-32124, 0, 32124]


def test_mulaw_round_trip_keeps_every_code():
    codes = np.arange(256, dtype=np.uint8)
    decoded = MULAW_TO_PCM16[codes]
    again = np.frombuffer(encode_mulaw(decoded), dtype=np.uint8)
    assert (MULAW_TO_PCM16[again] == decoded).all()


def test_pcm16_is_little_endian():
    assert list(decode_pcm16(b"\x01\x00\xff\xff")) == [1, -1]


def test_resampler_gives_the_same_samples_in_20ms_frames_as_in_one_block():
    rng = np.random.default_rng(1)
    signal = rng.integers(-20_000, 20_000, 8_000).astype(np.int16)
    whole = Upsampler2x().process(signal)
    streaming = Upsampler2x()
    pieces = np.concatenate([streaming.process(signal[i : i + 160]) for i in range(0, len(signal), 160)])
    assert len(whole) == 2 * len(signal)
    np.testing.assert_allclose(pieces, whole, atol=1e-6)


def _dominant_frequency(samples: np.ndarray, rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate_hz)[np.argmax(spectrum)])


def test_sine_keeps_its_frequency_and_level_through_mulaw_and_resampling():
    t = np.arange(8_000) / 8_000
    tone = (10_000 * np.sin(2 * np.pi * 1_000 * t)).astype(np.int16)
    decoder = LegDecoder(Codec.MULAW, 8_000)
    payload = encode_mulaw(tone)
    out = np.concatenate([decoder.decode(payload[i : i + 160]) for i in range(0, len(payload), 160)])
    assert len(out) == 16_000
    assert abs(_dominant_frequency(out.astype(np.float64), 16_000) - 1_000) <= 2
    steady = out[1_000:-1_000].astype(np.float64)
    assert 9_000 < np.sqrt(2 * np.mean(steady**2)) < 11_000
    # No image of the tone at 8 kHz - 1 kHz: the interpolator's low-pass removed it.
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(len(steady))))
    freqs = np.fft.rfftfreq(len(steady), 1 / 16_000)
    image = spectrum[(freqs > 6_900) & (freqs < 7_100)].max()
    assert image < spectrum.max() / 100


def test_pcm16_at_16k_passes_through_unchanged():
    samples = np.arange(-160, 160, dtype=np.int16)
    frame = AudioFrame("c", "agent", Codec.PCM16, 16_000, 0, 0, 0.0, samples.astype("<i2").tobytes())
    assert LegDecoder(Codec.PCM16, 16_000).to_pcm16_16k(frame) == frame.payload
