"""WAV recordings into 20 ms frames: reading, resampling, G.711 mu-law encoding, framing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingest.events import Codec
from ingest.wavsource import (
    OutputFormat,
    Recording,
    WavError,
    call_frames,
    frame_leg,
    load_legs,
    load_stereo,
    mulaw_encode,
    resample,
    write_stereo_wav,
)


def _tone(freq_hz: float, rate_hz: int, seconds: float = 1.0, amplitude: float = 10_000) -> np.ndarray:
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def _mulaw_decode(codes: bytes) -> np.ndarray:
    """ITU G.711 reference decoder, to check the encoder round trip independently."""
    u = ~np.frombuffer(codes, dtype=np.uint8).astype(np.int32) & 0xFF
    magnitude = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)


# Known encodings from the ITU-T G.711 reference (linear2ulaw in Sun's g711.c).
@pytest.mark.parametrize(
    ("linear", "code"),
    [
        (0, 0xFF),
        (-1, 0x7F),
        (1, 0xFF),
        (100, 0xF2),
        (-100, 0x72),
        (1000, 0xCE),
        (-1000, 0x4E),
        (8159, 0x9F),
        (32767, 0x80),
        (-32768, 0x00),
        (-32767, 0x00),
    ],
)
def test_mulaw_encoding_matches_the_g711_reference_values(linear: int, code: int) -> None:
    assert mulaw_encode(np.array([linear], dtype=np.int16)) == bytes([code])


def test_mulaw_round_trip_error_stays_within_the_quantisation_step() -> None:
    samples = np.arange(-32768, 32768, 7, dtype=np.int32).astype(np.int16)
    decoded = _mulaw_decode(mulaw_encode(samples)).astype(np.int32)
    error = np.abs(decoded - samples.astype(np.int32))
    # mu-law steps double per segment: error at most half a step, i.e. ~3 % of the magnitude (+ bias).
    assert np.all(error <= np.abs(samples.astype(np.int32)) * 0.035 + 8)


def test_mulaw_round_trip_agrees_with_the_transcriber_decoder() -> None:
    from transcribe.codec import decode_mulaw as decode

    samples = np.arange(-32768, 32768, 3, dtype=np.int32).astype(np.int16)
    ours = _mulaw_decode(mulaw_encode(samples))
    theirs = np.asarray(decode(mulaw_encode(samples))).astype(np.float64)
    if theirs.dtype.kind == "f" and np.max(np.abs(theirs)) <= 1.0:
        theirs = theirs * 32768
    assert np.max(np.abs(theirs - ours)) <= 1


def test_frames_are_20_ms_with_consecutive_seq_and_offsets() -> None:
    fmt = OutputFormat(Codec.PCM16, 16000)
    samples = np.arange(16000 + 100, dtype=np.int16)  # 1 s plus 100 samples
    frames = frame_leg("agent", samples, fmt)
    assert len(frames) == 51
    assert [f.seq for f in frames] == list(range(51))
    assert [f.offset_samples for f in frames] == [i * 320 for i in range(51)]
    assert all(len(f.payload) == 640 for f in frames[:-1])
    assert len(frames[-1].payload) == 200  # the tail is sent, not padded
    assert np.array_equal(np.frombuffer(frames[1].payload, dtype="<i2"), samples[320:640])


def test_mulaw_frames_carry_one_byte_per_sample_at_8_khz() -> None:
    frames = frame_leg("customer", _tone(440, 8000, 0.1), OutputFormat(Codec.MULAW, 8000))
    assert len(frames) == 5
    assert all(len(f.payload) == 160 for f in frames)


def test_unsupported_output_format_is_refused() -> None:
    with pytest.raises(ValueError, match="not supported"):
        OutputFormat(Codec.MULAW, 16000)


def test_downsampling_keeps_speech_band_and_removes_what_would_alias() -> None:
    passed = resample(_tone(1000, 16000), 16000, 8000)
    assert len(passed) == 8000
    assert _rms(passed[100:-100]) == pytest.approx(_rms(_tone(1000, 16000)), rel=0.01)
    aliased = resample(_tone(6000, 16000), 16000, 8000)  # would fold to 2 kHz without a low-pass
    assert _rms(aliased[100:-100]) < _rms(_tone(6000, 16000)) * 0.01


def test_upsampling_keeps_the_tone() -> None:
    up = resample(_tone(1000, 8000), 8000, 16000)
    assert len(up) == 16000
    assert _rms(up[200:-200]) == pytest.approx(_rms(_tone(1000, 8000)), rel=0.01)


def test_call_frames_interleave_legs_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    write_stereo_wav(path, _tone(300, 16000, 0.1), _tone(500, 16000, 0.06), 16000)
    recording = load_stereo(path)
    assert recording.sample_rate_hz == 16000
    frames = call_frames(recording, OutputFormat(Codec.MULAW, 8000))
    assert [(f.leg, f.seq) for f in frames[:4]] == [
        ("agent", 0),
        ("customer", 0),
        ("agent", 1),
        ("customer", 1),
    ]
    offsets = [f.offset_samples for f in frames]
    assert offsets == sorted(offsets)
    assert sum(f.leg == "agent" for f in frames) == 5  # 100 ms
    assert sum(f.leg == "customer" for f in frames) == 5  # 60 ms stereo-padded to 100 ms
    assert all(f.sample_rate_hz == 8000 for f in frames)


def test_mono_leg_files_may_differ_in_rate_and_length(tmp_path: Path) -> None:
    import wave

    for name, samples, rate in (
        ("a.wav", _tone(300, 8000, 0.2), 8000),
        ("c.wav", _tone(300, 16000, 0.1), 16000),
    ):
        with wave.open(str(tmp_path / name), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(samples.tobytes())
    recording = load_legs(tmp_path / "a.wav", tmp_path / "c.wav")
    assert recording.sample_rate_hz == 16000
    assert len(recording.legs["agent"]) == 3200 and len(recording.legs["customer"]) == 1600
    frames = call_frames(recording, OutputFormat(Codec.PCM16, 8000))
    assert sum(f.leg == "agent" for f in frames) == 10 and sum(f.leg == "customer" for f in frames) == 5


def test_a_mono_file_is_not_accepted_as_a_stereo_call(tmp_path: Path) -> None:
    import wave

    with wave.open(str(tmp_path / "mono.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(_tone(300, 8000, 0.1).tobytes())
    with pytest.raises(WavError, match="stereo"):
        load_stereo(tmp_path / "mono.wav")


def test_the_bundled_demo_call_is_a_short_stereo_8_khz_recording() -> None:
    from ingest.demo import DEMO_CALL_SCRIPT, DEMO_CALL_WAV

    recording: Recording = load_stereo(DEMO_CALL_WAV)
    assert recording.sample_rate_hz == 8000
    assert 40 <= recording.duration_s <= 65
    assert DEMO_CALL_WAV.stat().st_size < 2_000_000
    script = DEMO_CALL_SCRIPT.read_text().lower()
    assert "cancel my account" in script and "speak to a manager" in script
