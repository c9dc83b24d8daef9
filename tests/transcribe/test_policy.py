"""Commit watermark, call table and leg timeline: the worker's pure policies."""

from __future__ import annotations

from ingest.events import AudioFrame, Codec
from transcribe.calls import CallTable, Rejected
from transcribe.timeline import LegTimeline, Placement
from transcribe.watermark import BUCKET_FRAMES, EXACT_FRAMES_MAX, CommitWatermark


def test_without_a_read_back_the_commit_holds_at_the_oldest_open_calls_start():
    wm = CommitWatermark(pin_call_starts=True)
    wm.call_started(0, "a", 10)
    wm.consumed(0, 11)
    wm.call_started(0, "b", 12)
    wm.consumed(0, 40)
    assert wm.to_commit() == {0: 10}
    wm.call_closed(0, "a")
    assert wm.to_commit() == {0: 12}
    wm.call_closed(0, "b")
    assert wm.to_commit() == {0: 41}


def test_the_commit_holds_at_each_streams_first_frame_no_final_covers():
    wm = CommitWatermark()
    wm.call_started(0, "a", 10)
    agent, customer = object(), object()  # two legs' streams; 8 kHz, 160 samples (20 ms) a frame
    for i in range(50):  # offsets 11..60: the legs' frames alternate, frame n of a leg at n*160
        wm.frame_fed(agent if i % 2 == 0 else customer, 0, 11 + i, (i // 2) * 160, 8_000)
        wm.consumed(0, 11 + i)
    assert wm.to_commit() == {0: 11}  # no final yet: the leg's first frame, not the call.started

    wm.final_out(agent, 200)  # agent frames 0..9 (0-200 ms) covered: agent's next is frame 10, offset 31
    assert wm.safe_offset(0) == 12  # the customer leg's first frame still needed
    wm.final_out(customer, 310)  # frames starting before 310 ms (0..15) covered: frame 16, offset 44
    assert wm.safe_offset(0) == 31
    wm.final_out(agent, 500)  # every agent frame fed (0..24, up to 500 ms) covered
    assert wm.safe_offset(0) == 44
    wm.call_ending(0, "a", 61)
    wm.consumed(0, 61)
    wm.stream_done(customer)  # its session ended and its last final went out
    assert wm.to_commit() == {0: 61}  # the call.ended is needed until the call is closed
    wm.committed({0: 61})
    wm.call_closed(0, "a")
    assert wm.to_commit() == {0: 62}


def test_a_partition_s_uncovered_frames_do_not_hold_another_partition():
    wm = CommitWatermark()
    stream = object()
    wm.frame_fed(stream, 1, 5, 0, 8_000)
    wm.consumed(1, 5)
    wm.consumed(0, 7)
    assert wm.to_commit() == {0: 8, 1: 5}
    wm.forget(1)
    assert wm.to_commit() == {0: 8}
    wm.final_out(stream, 1_000)  # a stream of a forgotten partition: nothing to do
    assert wm.to_commit() == {0: 8}


def test_commit_reports_only_offsets_that_moved():
    wm = CommitWatermark()
    wm.consumed(1, 5)
    wm.committed(wm.to_commit())
    assert wm.to_commit() == {}
    wm.consumed(1, 6)
    assert wm.to_commit() == {1: 7}


def test_partitions_are_independent_and_forgotten_on_revoke():
    wm = CommitWatermark(pin_call_starts=True)
    wm.call_started(0, "a", 3)
    wm.consumed(1, 8)
    assert wm.to_commit() == {0: 3, 1: 9}
    wm.forget(0)
    assert wm.to_commit() == {1: 9}
    assert wm.open_calls(0) == frozenset()


def _frame(call_id="c1", leg="agent", codec=Codec.MULAW, rate=8_000):
    return AudioFrame(call_id, leg, codec, rate, 0, 0, 0.0, b"\xff" * 160)


def test_frames_are_accepted_only_between_start_and_end():
    calls = CallTable()
    assert calls.check_frame(_frame()) == Rejected("call_not_started")
    calls.start("c1", 0, 1)
    assert calls.check_frame(_frame()) is None
    calls.end("c1")
    assert calls.check_frame(_frame()) == Rejected("call_already_ended")
    assert calls.end("c1") == Rejected("call_already_ended")
    assert calls.end("never") == Rejected("call_not_started")


def test_a_leg_changing_format_mid_call_is_rejected():
    calls = CallTable()
    calls.start("c1", 0, 1)
    assert calls.check_frame(_frame()) is None
    assert calls.check_frame(_frame(leg="customer", codec=Codec.PCM16, rate=16_000)) is None
    rejected = calls.check_frame(_frame(codec=Codec.PCM16, rate=16_000))
    assert rejected is not None and rejected.reason == "leg_format_changed"


def test_duplicate_call_started_is_ignored():
    calls = CallTable()
    assert calls.start("c1", 0, 1) is not None
    assert calls.start("c1", 0, 5) is None


def test_timeline_pads_gaps_and_skips_overlaps():
    timeline = LegTimeline()
    assert timeline.place(0, 320) == Placement(0, 0)
    timeline.advance(0, 320, captured_at=100.0, received_at=100.5)
    assert timeline.place(640, 320) == Placement(320, 0)  # one frame missing
    assert timeline.place(160, 320) == Placement(0, 160)  # overlaps what was sent
    timeline.advance(640, 320, captured_at=100.04, received_at=100.6)
    captured, received = timeline.times_at(800)
    assert abs(captured - 100.05) < 1e-9 and received == 100.6
    assert timeline.times_at(100)[0] == 100.0 + 100 / 16_000


def test_a_leg_silent_for_an_hour_keeps_a_bounded_list_and_a_safe_commit():
    wm = CommitWatermark()
    wm.call_started(0, "a", 0)
    stream = object()
    frames = 180_000  # an hour of 20 ms frames at 8 kHz, no final among them
    for n in range(frames):
        wm.frame_fed(stream, 0, 1 + n, n * 160, 8_000)
    wm.consumed(0, frames)
    kept = len(wm._uncovered[stream].frames)
    assert kept < EXACT_FRAMES_MAX + frames // BUCKET_FRAMES  # about 1/50 of a frame a frame
    assert wm.safe_offset(0) == 1  # nothing covered: the first frame

    half_hour_ms = 30 * 60 * 1000
    wm.final_out(stream, half_hour_ms)  # frames starting before 30:00 are covered
    first_uncovered = 1 + half_hour_ms // 20
    # Never past the first uncovered frame; at most one bucket (1 s) before it.
    assert first_uncovered - BUCKET_FRAMES <= wm.safe_offset(0) <= first_uncovered

    wm.final_out(stream, frames * 20 - 10)  # the last frame starts 20 ms before the end: covered
    assert wm.safe_offset(0) == frames + 1  # every frame covered: the next record
