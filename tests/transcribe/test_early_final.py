"""Decoding a turn before the segmenter confirms its end: the guess must be exactly that turn."""

from __future__ import annotations

from transcribe.early_final import EarlyFinal
from transcribe.segmenter import Segmenter, SegmenterConfig, TurnEnded

CONFIG = SegmenterConfig()
WINDOW = CONFIG.window_samples


def _run(probabilities: list[float]) -> tuple[list[tuple[int, int]], list[TurnEnded]]:
    segmenter, early = Segmenter(CONFIG), EarlyFinal(CONFIG)
    guesses, ends = [], []
    for p in probabilities:
        ends += [e for e in segmenter.push(p) if isinstance(e, TurnEnded)]
        guess = early.push(p, segmenter.turn_start, segmenter.position)
        if guess:
            guesses.append(guess)
    return guesses, ends


def _windows(ms: int) -> int:
    return CONFIG.samples(ms) // WINDOW + 1


def test_the_guess_made_after_post_roll_of_silence_is_the_turn_the_segmenter_ends():
    guesses, ends = _run([0.0] * 10 + [0.9] * _windows(1_000) + [0.0] * _windows(1_000))
    assert len(ends) == 1
    assert guesses == [(ends[0].start_sample, ends[0].end_sample)]


def test_the_guess_comes_well_before_the_segmenter_ends_the_turn():
    speech = [0.0] * 10 + [0.9] * _windows(1_000)
    early, segmenter = EarlyFinal(CONFIG), Segmenter(CONFIG)
    guessed_at = ended_at = None
    for i, p in enumerate([*speech, *[0.0] * _windows(1_000)]):
        if segmenter.push(p) and ended_at is None and i >= len(speech):
            ended_at = i
        if early.push(p, segmenter.turn_start, segmenter.position) and guessed_at is None:
            guessed_at = i
    assert guessed_at is not None and ended_at is not None
    gap_ms = (ended_at - guessed_at) * WINDOW * 1000 // CONFIG.sample_rate_hz
    assert gap_ms >= CONFIG.max_silence_ms - CONFIG.post_roll_ms - 64


def test_a_short_pause_gives_a_guess_that_the_longer_turn_does_not_match():
    pause = [0.0] * _windows(300)  # longer than post-roll, shorter than max silence
    guesses, ends = _run([0.0] * 10 + [0.9] * _windows(800) + pause + [0.9] * _windows(800) + [0.0] * 40)
    assert len(ends) == 1 and len(guesses) == 2
    assert guesses[0][1] < ends[0].end_sample
    assert guesses[-1] == (ends[0].start_sample, ends[0].end_sample)


def test_no_guess_outside_a_turn():
    guesses, ends = _run([0.0] * 100 + [0.9] * 3 + [0.0] * 100)  # too short to open a turn
    assert guesses == [] and ends == []
