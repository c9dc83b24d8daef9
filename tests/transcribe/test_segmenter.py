"""Turn segmentation from speech probabilities (32 ms windows at 16 kHz)."""

from __future__ import annotations

import pytest

from transcribe.segmenter import Segmenter, SegmenterConfig, TurnEnded, TurnStarted

W = 512  # samples per window
CFG = SegmenterConfig(
    min_speech_ms=250, max_silence_ms=600, pre_roll_ms=200, post_roll_ms=150, max_turn_ms=9_500
)


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
    assert started == TurnStarted(50 * W - 200 * 16, onset_sample=50 * W - 32 * 16)
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
    assert events[-1] == TurnEnded(0, 30 * W, "end_of_input", onset_sample=0)


def run_with_energy(windows_, config=CFG):
    seg = Segmenter(config)
    events = []
    for p, e in windows_:
        events += seg.push(p, e)
    return events + seg.flush()


def test_a_long_turn_is_cut_in_a_pause_of_its_last_seconds_without_overlap():
    probs = [0.9] * 400
    probs[150:155] = [0.1] * 5  # a short pause (shorter than max_silence_ms) at 4.8 s: too early
    probs[260:264] = [0.2] * 4  # another at ~8.3 s, inside the last 3 s when the turn reaches 9.5 s
    events = [e for _, e in run(probs)]
    first_end, second_start = events[1], events[2]
    assert isinstance(first_end, TurnEnded) and first_end.reason == "max_length"
    assert 260 * W <= first_end.end_sample < 264 * W  # in the pause, not at a fixed boundary
    assert first_end.words_until is None  # a pause splits no word: nothing to de-duplicate
    assert second_start == TurnStarted(first_end.end_sample, first_end.end_sample)
    for e in events:
        if isinstance(e, TurnEnded):
            assert e.end_sample - e.start_sample <= 9_500 * 16


def test_among_pause_windows_the_quietest_by_energy_wins_and_energy_breaks_ties_in_speech():
    windows_ = [(0.9, 0.1)] * 400
    windows_[250] = (0.2, 0.01)
    windows_[270] = (0.1, 0.001)  # the quietest of the pauses in the last 3 s
    first_end = [e for e in run_with_energy(windows_) if isinstance(e, TurnEnded)][0]
    assert 270 * W <= first_end.end_sample < 271 * W


def test_a_cut_inside_speech_overlaps_the_next_turn_and_splits_words_in_the_overlap():
    windows_ = [(0.9, 0.1)] * 400
    windows_[280] = (0.9, 0.02)  # no pause at all: the dip in energy between two words
    events = run_with_energy(windows_)
    first_end, second_start = events[1], events[2]
    cut = first_end.end_sample
    assert 280 * W <= cut < 281 * W
    overlap = CFG.samples(CFG.cut_overlap_ms)
    assert second_start.start_sample == cut - overlap  # re-decoded from before the cut
    assert first_end.words_until == second_start.words_from == cut - overlap // 2
    assert second_start.onset == second_start.words_from  # reported where the first turn stops
    second_end = events[3]
    assert second_end.start_sample == second_start.start_sample


def test_the_reported_onset_is_just_before_the_first_speech_window_and_never_in_the_last_turn():
    probs = [0.05] * 50 + [0.9] * 30 + [0.0] * 20 + [0.9] * 30 + [0.0] * 40
    events = [e for _, e in run(probs, flush=False)]
    first, first_end, second = events[0], events[1], events[2]
    assert first.onset == 50 * W - CFG.samples(CFG.onset_lead_ms)
    assert first.start_sample < first.onset  # pre-roll decoded, not reported
    assert first_end.onset == first.onset
    assert second.start_sample >= first_end.end_sample and second.onset >= second.start_sample


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


def test_the_onset_walks_back_over_a_soft_first_word_the_vad_missed():
    quiet, loud = (0.01, 10 ** (-70 / 20)), (0.1, 10 ** (-18 / 20))  # a word Silero scores 0.1
    gap = (0.02, 10 ** (-50 / 20))  # 96 ms between the first word and the next
    windows_ = [quiet] * 60 + [loud] * 8 + [gap] * 3 + [(0.9, 0.1)] * 30 + [quiet] * 40
    started = run_with_energy(windows_)[0]
    assert started.onset == 60 * W  # the soft word's first window, not the first speech window (71)
    assert started.start_sample == 60 * W - CFG.samples(CFG.pre_roll_ms)


def test_the_onset_walk_back_stops_at_a_long_quiet_gap_and_at_the_lookback():
    quiet, loud = (0.01, 10 ** (-70 / 20)), (0.1, 10 ** (-18 / 20))
    far = [quiet] * 30 + [loud] * 5 + [quiet] * 10 + [(0.9, 0.1)] * 30 + [quiet] * 40  # 320 ms gap
    assert run_with_energy(far)[0].onset == 45 * W - CFG.samples(CFG.onset_lead_ms)
    long_ = [quiet] * 60 + [loud] * 40 + [(0.9, 0.1)] * 30 + [quiet] * 40  # loud for 1.3 s before
    assert run_with_energy(long_)[0].onset == 100 * W - CFG.samples(CFG.onset_lookback_ms) // W * W
    noise = [loud] * 100 + [(0.9, 0.1)] * 30 + [quiet] * 40  # as loud as the floor: no walk-back
    assert run_with_energy(noise)[0].onset == 100 * W - CFG.samples(CFG.onset_lead_ms)


def test_a_short_max_turn_still_cuts_within_its_second_half():
    config = SegmenterConfig(max_turn_ms=2_000)  # shorter than twice the default search of 3 s
    events = [e for _, e in run([0.9] * 200, config)]
    ends = [e for e in events if isinstance(e, TurnEnded)]
    assert len(ends) >= 3
    for e in ends:
        assert e.end_sample - e.start_sample <= 2_000 * 16
    for a, b in zip(ends, ends[1:], strict=False):
        assert b.end_sample > a.end_sample  # every cut moves on
