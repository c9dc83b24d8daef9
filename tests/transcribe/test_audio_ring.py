"""The audio window a session keeps for decoding, addressed by absolute sample position."""

from __future__ import annotations

import numpy as np

from transcribe.audio_ring import AudioRing


def test_slices_read_back_what_was_appended_across_growth_and_trims():
    ring = AudioRing(initial_capacity=8)
    signal = np.arange(10_000, dtype=np.float32)
    for i in range(0, len(signal), 320):
        ring.append(signal[i : i + 320])
        ring.trim_before(max(0, ring.end - 3_000))  # keep the last ~3 000 samples
        assert ring.end == min(i + 320, len(signal))
        assert np.array_equal(ring.slice(ring.start, ring.end), signal[ring.start : ring.end])
    assert ring.start == ring.end - 3_000


def test_positions_outside_the_held_window_read_as_silence():
    ring = AudioRing()
    ring.append(np.ones(100, dtype=np.float32))
    ring.trim_before(40)
    out = ring.slice(20, 120)
    assert np.array_equal(out, np.r_[np.zeros(20), np.ones(60), np.zeros(20)].astype(np.float32))


def test_trimming_past_the_end_keeps_positions_consistent():
    ring = AudioRing()
    ring.append(np.ones(50, dtype=np.float32))
    ring.trim_before(80)
    assert (ring.start, ring.end) == (50, 50)
    ring.append(np.full(10, 2.0, dtype=np.float32))
    assert np.array_equal(ring.slice(50, 60), np.full(10, 2.0, dtype=np.float32))


def test_a_clip_is_extended_with_the_audio_held_after_it_up_to_a_position():
    ring = AudioRing()
    signal = np.arange(1_000, dtype=np.float32)
    ring.append(signal[:600])
    clip = ring.slice(100, 400)
    longer, end = ring.extend(clip, 400, until=1_000)
    assert end == 600 and np.array_equal(longer, signal[100:600])
    capped, end = ring.extend(clip, 400, until=550)
    assert end == 550 and np.array_equal(capped, signal[100:550])
    ring.trim_before(500)  # the audio after the clip is gone: the clip comes back as it was
    same, end = ring.extend(clip, 400, until=1_000)
    assert end == 400 and same is clip
