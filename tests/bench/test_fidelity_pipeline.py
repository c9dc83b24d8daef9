"""bench.fidelity --pipeline: how the benchmark's legs become two-leg calls for the replay."""

from __future__ import annotations

import numpy as np

from bench.fidelity import at_8k, build_legs, pipeline_calls
from tests.speech import Utterance


def tone(name: str, seconds: float, text: str) -> tuple[Utterance, np.ndarray]:
    t = np.arange(int(seconds * 16_000)) / 16_000
    audio = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    return Utterance(name, audio, 16_000, text), audio


def test_legs_pair_into_calls_a_lone_leg_with_a_silent_customer_at_8_khz() -> None:
    utterances = [tone("a", 1.0, "one"), tone("b", 2.0, "two"), tone("c", 0.5, "three")]
    built = build_legs(utterances, 3)
    calls, where = pipeline_calls(built, "test")

    assert len(calls) == 2 and len({c.call_id for c in calls}) == 2
    assert [(call_id, leg) for call_id, leg, _ in where] == [
        (calls[0].call_id, "agent"),
        (calls[0].call_id, "customer"),
        (calls[1].call_id, "agent"),
    ]
    assert [b.reference for _, _, b in where] == ["one", "two", "three"]
    for call in calls:
        assert call.recording.sample_rate_hz == 8_000
        agent, customer = call.recording.legs["agent"], call.recording.legs["customer"]
        assert len(agent) == len(customer)
    # Each utterance sits where the bench leg has it, as its 8 kHz samples before the codec (the
    # replay encodes mu-law once, as the batch reference's audio had it), same length in time.
    agent = calls[0].recording.legs["agent"]
    assert len(agent) * 4 == max(len(built[0].audio), len(built[1].audio))
    for p in built[0].placed:
        clip = at_8k(p.utt)
        assert np.array_equal(agent[p.start // 2 : p.start // 2 + len(clip)], clip)
    assert not agent[: built[0].placed[0].start // 2].any()  # the leading pause
    assert not calls[1].recording.legs["customer"].any()  # nobody speaks on the lone leg's other side
