"""Pure pieces of the realtime path: stable deltas from re-decodes, protocol parsing at the edge."""

from __future__ import annotations

import pytest

from pipeline.retry import RetryPolicy
from transcribe.agreement import LocalAgreement
from transcribe.realtime_protocol import (
    INVALID_AUDIO,
    INVALID_JSON,
    MODEL_NOT_VALIDATED,
    Commit,
    ErrorEvent,
    ParsedAppend,
    ParsedUpdate,
    ProtocolViolation,
    TranscriptionDelta,
    TranscriptionDone,
    Usage,
    encode,
    parse_client_event,
    parse_server_event,
)


def test_only_words_two_decodes_agree_on_become_deltas_and_finish_sends_the_rest() -> None:
    agreement = LocalAgreement()
    assert agreement.update("hello") == []
    assert agreement.update("hello word") == [" hello"]
    assert agreement.update("hello world how") == []
    assert agreement.update("hello world how are") == [" world", " how"]
    assert agreement.finish("hello world how are you") == [" are", " you"]


def test_a_re_decode_that_inserts_a_word_does_not_repeat_what_was_sent() -> None:
    agreement = LocalAgreement()
    agreement.update("to consider how")
    sent = agreement.update("to consider how much")
    assert sent == [" to", " consider", " how"]
    assert agreement.finish("then to consider how much there") == [" much", " there"]


def test_server_events_parse_into_types_and_ignore_unknown_fields() -> None:
    assert parse_server_event(
        '{"type":"transcription.delta","delta":"","language":"en"}'
    ) == TranscriptionDelta("")
    done = parse_server_event(
        '{"type":"transcription.done","text":" hi","usage":{"prompt_tokens":39,"total_tokens":87,'
        '"completion_tokens":48,"prompt_tokens_details":null,"completion_tokens_details":null}}'
    )
    assert done == TranscriptionDone(" hi", Usage(39, 48, 87))
    assert parse_server_event('{"type":"error","error":"Invalid JSON","code":"invalid_json"}') == INVALID_JSON
    with pytest.raises(ProtocolViolation):
        parse_server_event('{"type":"response.done"}')
    with pytest.raises(ProtocolViolation):
        parse_server_event("not json")


def test_client_events_get_vllms_answers() -> None:
    def parse(frame: str, validated: bool = True) -> object:
        return parse_client_event(frame, model_validated=validated, max_audio_samples=100)

    assert parse('{"type":"session.update","model":"m","extra":1}') == ParsedUpdate("m")
    assert parse('{"type":"input_audio_buffer.append","audio":"AAAA"}') == INVALID_AUDIO  # 3 bytes: odd
    assert parse('{"type":"input_audio_buffer.append","audio":"AAAAAA=="}') == ParsedAppend(b"\0\0\0\0")
    assert parse('{"type":"input_audio_buffer.commit"}', validated=False) == MODEL_NOT_VALIDATED
    assert parse('{"type":"input_audio_buffer.commit","final":true}') == Commit(final=True)
    assert parse("{") == INVALID_JSON
    bad = parse('{"type":"input_audio_buffer.commit","final":"maybe"}')
    assert isinstance(bad, ErrorEvent) and bad.code == "processing_error"


def test_encoded_done_has_vllms_usage_shape() -> None:
    text = encode(TranscriptionDone("a", Usage(1, 2, 3)))
    assert '"prompt_tokens_details": null' in text and '"completion_tokens": 2' in text


def test_retry_delays_double_up_to_the_cap() -> None:
    policy = RetryPolicy(attempts=5, base_delay_s=0.25, max_delay_s=1.0)
    assert [policy.delay_s(retry) for retry in range(1, 6)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    assert policy.allows(5) and not policy.allows(6)  # five reconnects per turn, then the leg fails
