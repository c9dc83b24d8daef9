"""Turn segmentation from speech probabilities (32 ms windows at 16 kHz)."""

from __future__ import annotations

import pytest

from transcribe.segmenter import Segmenter, SegmenterConfig, TurnEnded, TurnStarted

W = 512  # samples per window
CFG = SegmenterConfig(min_speech_ms=250, max_silence_ms=600, pre_roll_ms=200, post_roll_ms=150)


def run(probabilities, config=CFG, flush=True):
    seg = Segmenter(config)
    events = []
    for i, p in enumerate(probabilities):
        events += [(i, e) for e in seg.push(p)]
    if flush:
        events += [(len(probabilities), e) for e in seg.flush()]
    return events


def windows(ms: int) -> int:
    return -(-ms * 16 // W)


def test_speech_opens_a_turn_with_pre_roll_and_silence_ends_it():
    probs = [0.05] * 50 + [0.9] * 60 + [0.05] * 40
    events = run(probs, flush=False)
    (i1, started), (i2, ended) = events
    assert started == TurnStarted(50 * W - 200 * 16)
    assert i1 == 50 + windows(250) - 1  # opens once min_speech_ms of speech is in
    assert isinstance(ended, TurnEnded) and ended.reason == "silence"
    assert ended.start_sample == started.start_sample
    assert ended.end_sample == 110 * W + 150 * 16
    assert i2 == 110 + windows(600) - 1


def test_a_blip_shorter_than_min_speech_never_opens_a_turn():
    assert run([0.0] * 10 + [0.95] * 5 + [0.0] * 50) == []


def test_hysteresis_keeps_a_turn_open_between_end_and_start_thresholds():
    probs = [0.9] * 20 + [0.4] * 40 + [0.9] * 10 + [0.0] * 30
    events = [e for _, e in run(probs, flush=False)]
    assert [type(e) for e in events] == [TurnStarted, TurnEnded]
    assert events[1].end_sample == 70 * W + 150 * 16


def test_end_of_input_closes_an_open_turn():
    events = [e for _, e in run([0.9] * 30)]
    assert events[-1] == TurnEnded(0, 30 * W, "end_of_input")


def test_long_speech_is_cut_before_the_decode_window_at_its_least_speechy_point():
    probs = [0.9] * 400
    probs[250] = 0.6  # a dip in the second half
    events = [e for _, e in run(probs)]
    first_end = events[1]
    assert isinstance(first_end, TurnEnded) and first_end.reason == "max_length"
    assert first_end.end_sample == 250 * W
    assert first_end.end_sample - first_end.start_sample <= 9_500 * 16
    assert events[2] == TurnStarted(250 * W)
    for e in events:
        if isinstance(e, TurnEnded):
            assert e.end_sample - e.start_sample <= 9_500 * 16


def test_pre_roll_never_reaches_back_into_the_previous_turn():
    probs = [0.9] * 20 + [0.0] * 19 + [0.9] * 20 + [0.0] * 40
    events = [e for _, e in run(probs, flush=False)]
    first_end, second_start = events[1], events[2]
    assert second_start.start_sample >= first_end.end_sample


def test_segmentation_is_deterministic():
    probs = [0.1, 0.7, 0.9, 0.2, 0.95] * 300
    assert run(probs) == run(probs)


def test_config_rejects_inverted_thresholds():
    with pytest.raises(ValueError):
        SegmenterConfig(start_threshold=0.3, end_threshold=0.5)
