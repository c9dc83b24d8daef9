"""Said -> hint arithmetic of bench.hint_latency, on hand-made words and events (no broker, no clock)."""

from __future__ import annotations

import numpy as np
import pytest

from analyze.events import AgentHint, Sentiment
from bench.hint_latency import script_turns
from bench.said_to_hint import (
    MAX_BASE_SPREAD_S,
    PhraseTiming,
    capture_bases,
    find_phrase,
    hint_timings,
    quiet_onset_s,
)
from transcribe.events import FinalSegment, PartialSegment, StageTimes, TranscriptCallStarted
from transcribe.whisper_engine import Word

WORDS = (
    Word(0.10, 0.40, " Hi"),
    Word(0.40, 0.90, ","),
    Word(1.00, 1.20, " I"),
    Word(1.20, 1.50, " want"),
    Word(1.50, 1.70, " to"),
    Word(1.70, 2.00, " Cancel"),
    Word(2.00, 2.30, " my"),
    Word(2.30, 2.80, " account"),
    Word(2.80, 3.30, "."),
)


def test_a_phrase_is_found_in_the_words_whatever_their_case_and_punctuation():
    timing = find_phrase(WORDS, "cancel my account", clip_start_s=13.0)
    assert timing == PhraseTiming("cancel my account", 13.0 + 1.70, 13.0 + 2.80)


def test_a_phrase_the_words_do_not_spell_is_not_found():
    assert find_phrase(WORDS, "close my account", clip_start_s=0.0) is None
    assert find_phrase(WORDS[:7], "cancel my account", clip_start_s=0.0) is None  # cut before "account"


def test_a_word_carrying_two_tokens_still_matches():
    words = (Word(0.0, 0.5, " can't"), Word(0.5, 1.0, " cancel-my"), Word(1.0, 1.6, " account."))
    assert find_phrase(words, "cancel my account", 2.0) == PhraseTiming("cancel my account", 2.5, 3.6)


def _partial(call: str, leg: str, end_ms: int, captured: float, emitted: float) -> PartialSegment:
    times = StageTimes(audio_captured_at=captured, audio_received_at=captured, emitted_at=emitted)
    return PartialSegment(
        call_id=call,
        leg=leg,
        segment_id=f"s-{leg}",
        start_ms=0,
        end_ms=end_ms,
        text="x",
        revision=0,
        times=times,
    )


def _hint(call: str, emitted: float, *, leg: str = "customer", rule: str = "retention-cancel", final=False):
    return AgentHint(
        event_id=f"e-{call}-{emitted}",
        call_id=call,
        leg=leg,
        segment_id="s-customer",
        on_final=final,
        rule_id=rule,
        rule_version="1",
        matched="cancel my account",
        segment_emitted_at=emitted - 0.01,
        emitted_at=emitted,
        hint="retain",
    )


def test_the_capture_base_of_a_leg_is_its_wall_time_of_sample_zero():
    # Leg sample 0 was captured at 1000.0: the audio at 15.2 s at 1015.2, at 16.0 s at 1016.0.
    bases = capture_bases(
        [
            _partial("c", "customer", 15_200, 1015.2, 1015.5),
            _partial("c", "customer", 16_000, 1016.001, 1016.3),
        ]
    )
    base = bases[("c", "customer")]
    assert base.base_at == pytest.approx(1000.0005)
    assert base.spread_s == pytest.approx(0.001)
    assert base.partials == 2


def test_hint_latency_is_the_first_hint_less_the_wall_time_the_phrase_ended():
    phrase = PhraseTiming("cancel my account", 14.9, 16.1)
    transcripts = [
        TranscriptCallStarted(call_id="a", started_at=1000.002),
        _partial("a", "customer", 15_000, 1015.0, 1015.3),
        _partial("a", "customer", 16_500, 1016.5, 1016.69),
        _partial("a", "agent", 4_000, 2004.0, 2004.2),  # the agent leg's base plays no part
        FinalSegment(
            call_id="a",
            leg="customer",
            segment_id="f",
            start_ms=0,
            end_ms=99_000,
            text="x",
            times=StageTimes(audio_captured_at=0.0, audio_received_at=0.0, emitted_at=0.0),
        ),  # finals are not used for the base
    ]
    assist = [
        _hint("a", 1016.9, final=True),
        _hint("a", 1016.7),  # the first one counts, whatever order it was read in
        _hint("a", 1016.2, rule="other-rule"),
        _hint("a", 1016.3, leg="agent"),
        Sentiment(
            call_id="a",
            leg="customer",
            segment_id="s",
            final=False,
            compound=0.0,
            positive=0.0,
            negative=0.0,
            neutral=1.0,
            segment_emitted_at=1016.0,
            emitted_at=1016.1,
        ),
    ]
    outcome = hint_timings(["a"], transcripts, assist, phrase, rule_id="retention-cancel", leg="customer")
    (timing,) = outcome.timings
    assert timing.from_end_s == pytest.approx(0.6)  # 1016.7 - (1000 + 16.1)
    assert timing.from_start_s == pytest.approx(1.8)
    assert not timing.hint.on_final
    assert timing.heard_up_to_s == pytest.approx(16.5)  # the revision the hint names (emitted 1016.69)
    assert outcome.no_hint == () and outcome.unmapped == ()
    assert outcome.max_spread_s == pytest.approx(0.0)
    assert outcome.max_start_offset_s == pytest.approx(0.002)  # the legs' clock starts with the call


def test_at_twice_real_time_call_time_maps_to_wall_time_at_half_its_length():
    # Replayed at speed 2 from 1000.0: the audio at 15 s was captured at 1007.5, at 16.5 s at 1008.25.
    phrase = PhraseTiming("cancel my account", 14.9, 16.1)
    transcripts = [
        _partial("a", "customer", 15_000, 1007.5, 1007.7),
        _partial("a", "customer", 16_500, 1008.25, 1008.4),
    ]
    outcome = hint_timings(
        ["a"], transcripts, [_hint("a", 1008.55)], phrase, rule_id="retention-cancel", leg="customer", speed=2
    )
    (timing,) = outcome.timings
    assert timing.from_end_s == pytest.approx(0.5)  # 1008.55 - (1000 + 16.1 / 2)
    assert outcome.max_spread_s == pytest.approx(0.0)
    assert capture_bases(transcripts, speed=0) == {}  # as fast as possible: no mapping at all


def test_a_call_without_the_hint_or_without_a_consistent_mapping_is_named_not_dropped():
    phrase = PhraseTiming("cancel my account", 14.9, 16.1)
    transcripts = [
        _partial("quiet", "customer", 15_000, 1015.0, 1015.3),
        _partial("drift", "customer", 15_000, 1015.0, 1015.3),
        _partial("drift", "customer", 20_000, 1020.0 + 2 * MAX_BASE_SPREAD_S, 1020.3),
    ]
    assist = [_hint("drift", 1016.5), _hint("no-partials", 1016.5)]
    outcome = hint_timings(
        ["quiet", "drift", "no-partials"],
        transcripts,
        assist,
        phrase,
        rule_id="retention-cancel",
        leg="customer",
    )
    assert outcome.timings == ()
    assert outcome.no_hint == ("quiet",)
    assert outcome.unmapped == ("drift", "no-partials")


def test_the_quiet_after_a_word_is_where_its_energy_drops():
    rate = 8000
    t = np.arange(int(1.0 * rate)) / rate
    tone = (3000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    tone[int(0.50 * rate) : int(0.52 * rate)] = 0  # a 20 ms dip inside the word: not its end
    tone[int(0.70 * rate) :] = 0  # the word ends at 0.70 s
    assert quiet_onset_s(tone, rate, near_s=0.75) == pytest.approx(0.70)
    assert quiet_onset_s(np.zeros(0), rate, near_s=0.5) is None


def test_the_demo_script_gives_each_turn_its_start_and_leg(tmp_path):
    script = tmp_path / "call.txt"
    script.write_text(
        "# header\n  0.50  AGENT     Hello.\n 13.29  CUSTOMER  Hi. I want to cancel my account.\n"
    )
    assert script_turns(script) == [
        (0.5, "agent", "Hello."),
        (13.29, "customer", "Hi. I want to cancel my account."),
    ]
