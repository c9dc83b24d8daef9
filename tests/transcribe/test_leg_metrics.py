"""Latency histograms of a leg count first emissions only; a taken-over leg's re-sends are counted apart."""

from __future__ import annotations

import asyncio

import numpy as np
from prometheus_client import REGISTRY

from tests.transcribe.calls import frames_of
from tests.transcribe.fakes import FakeSession
from transcribe.codec import LegDecoder
from transcribe.leg import LegStream
from transcribe.session import PartialText


class PartialThenFinalSession(FakeSession):
    """Each turn: a first partial (revision 0), then its final."""

    async def _final(self, end_ms: int) -> None:
        await self._events.put(PartialText(self._turn_start_ms, end_ms, "turn", 0))
        await super()._final(end_ms)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _counts() -> dict[str, float]:
    return {
        "final": _sample("callscope_transcribe_final_latency_seconds_count"),
        "partial": _sample("callscope_transcribe_partial_latency_seconds_count"),
        "first_partial": _sample("callscope_transcribe_first_partial_latency_seconds_count"),
        "final_sum": _sample("callscope_transcribe_final_latency_seconds_sum"),
        "resent_final": _sample("callscope_transcribe_segments_resent_total", type="final"),
        "resent_partial": _sample("callscope_transcribe_segments_resent_total", type="partial"),
        "calls_active": _sample("callscope_transcribe_calls_active"),
    }


async def _run_leg(read_delay_s: float) -> tuple[dict[str, float], float]:
    """Two 1 s turns; every frame is read `read_delay_s` after its capture; returns the metric deltas."""
    frames = frames_of("c-metrics", "agent", np.zeros(8_000 * 2, dtype=np.int16), sample_rate_hz=8_000)
    now = [0.0]

    async def emit(event) -> None:
        return None

    stream = LegStream(
        call_id="c-metrics",
        leg="agent",
        session=PartialThenFinalSession(turn_ms=1_000),
        decoder=LegDecoder(frames[0].codec, frames[0].sample_rate_hz),
        base_position=0,
        emit=emit,
        max_gap_samples=16_000 * 5,
        clock=lambda: now[0],
    )
    before = _counts()
    active_during = 0.0
    async with asyncio.TaskGroup() as tg:
        tg.create_task(stream.run(), name="test-leg-metrics")
        for frame in frames:
            now[0] = frame.captured_at + read_delay_s + 0.25  # emitted 250 ms after it was read
            await stream.feed(frame, received_at=frame.captured_at + read_delay_s)
            active_during = max(active_during, _counts()["calls_active"] - before["calls_active"])
        await stream.end_input()
    after = _counts()
    return {k: after[k] - before[k] for k in after}, active_during


async def test_a_live_leg_observes_speech_end_to_final_and_speech_start_to_first_partial():
    delta, active_during = await _run_leg(read_delay_s=0.01)
    assert delta["final"] == 2 and delta["partial"] == 2 and delta["first_partial"] == 2
    assert delta["resent_final"] == 0 and delta["resent_partial"] == 0
    assert 0 < delta["final_sum"] < 2 * 1.0  # each final well under a second after its speech ended
    assert active_during == 1 and delta["calls_active"] == 0  # the call counted while its session ran


async def test_a_leg_re_read_after_a_takeover_counts_re_sent_segments_not_a_latency():
    delta, _ = await _run_leg(read_delay_s=40.0)  # the previous owner's audio, read again 40 s late
    assert delta["final"] == 0 and delta["partial"] == 0 and delta["first_partial"] == 0
    assert delta["resent_final"] == 2 and delta["resent_partial"] == 2


def test_every_engine_error_code_is_exported_at_zero_before_it_first_happens():
    from transcribe import metrics, session

    codes = {
        cls.code
        for cls in vars(session).values()
        if isinstance(cls, type) and issubclass(cls, session.SpeechError)
    }
    assert codes == set(metrics.KNOWN_ERROR_CODES)
    for code in codes:
        assert _sample("callscope_transcribe_leg_errors_total", code=code) is not None
        assert (
            REGISTRY.get_sample_value("callscope_transcribe_realtime_reconnects_total", {"code": code})
            is not None
        )
