"""bench.fidelity --pipeline: how the benchmark's legs become two-leg calls for the replay."""

from __future__ import annotations

import numpy as np

from bench.fidelity import build_legs, pipeline_calls
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
    # The replayed agent leg is the bench leg's 16 kHz audio at 8 kHz: same length in time, same samples.
    first = np.frombuffer(built[0].audio, dtype="<i2")
    assert np.array_equal(calls[0].recording.legs["agent"][: len(first) // 2], first[::2])
    assert not calls[1].recording.legs["customer"].any()  # nobody speaks on the lone leg's other side
