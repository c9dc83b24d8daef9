"""No stage's log carries what a caller said, even at DEBUG: a call with a name, a card number and
a phone number goes through the whole pipeline (real Whisper, faust, PostgreSQL) with every stage
at CALLSCOPE_LOG_LEVEL=DEBUG, and no log line holds any of them nor any transcribed word.

DEBUG is the harder case: it logs every line INFO (the default) logs, and the client libraries'
own lines besides (aiokafka's producer prints each record's value at DEBUG).
"""

from __future__ import annotations

import re

import pytest

from ingest.replay import replay_call
from tests.calls import build_call
from tests.e2e.running import running_pipeline
from tests.speech import librivox_utterances, normalise_text

pytestmark = pytest.mark.e2e

NAME = "my name is Margaret Thornton"
CARD = "my card number is 4111 1111 1111 1111"
PHONE = "call me back on 415 555 0132"
SECRETS = ("margaret", "thornton", "4111111111111111", "4155550132")
# Words of the log vocabulary that a transcript may hold too (message texts, field names).
LOG_VOCABULARY = {"number", "started", "stopped", "partition", "partitions", "segment", "topics"}


def _flatten_digits(text: str) -> str:
    """ "4111 1111-1111" -> "411111111111": a digit run however it was spaced."""
    return re.sub(r"(?<=\d)[\s,.-]+(?=\d)", "", text.lower())


async def test_no_log_line_of_any_stage_carries_transcript_text_at_debug(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLSCOPE_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("CALLSCOPE_LOG_FORMAT", "json")
    monkeypatch.delenv("CALLSCOPE_LOG_UNSAFE_TRANSCRIPTS_AND_RECORD_VALUES", raising=False)
    call = build_call("e2e-private", [librivox_utterances()[0]], [NAME, CARD, PHONE])
    async with running_pipeline(tmp_path) as pipeline:
        await replay_call(pipeline.bootstrap, call.replay(), speed=2)
        await pipeline.wait_until_stored(call.call_id)
        finals = pipeline.tap.calls[call.call_id].finals.values()
        logs = {path.name: path.read_text(errors="replace") for path in tmp_path.glob("*.log")}

    heard = " ".join(f.text for f in finals)
    words = {w for w in normalise_text(heard).split() if len(w) >= 5} - LOG_VOCABULARY
    assert {"thornton", "number"} & set(normalise_text(heard).split()), f"the call was not heard: {heard!r}"
    digit_runs = set(re.findall(r"\d{7,}", _flatten_digits(heard)))
    assert len(logs) == 3 and all(logs.values()), sorted(logs)
    # aiokafka's INFO lines reach the log only at DEBUG (at INFO it is capped at WARNING).
    assert all('"logger":"aiokafka.' in text for text in logs.values()), "the stages did not run at DEBUG"
    for name, text in logs.items():
        lowered, flat = text.lower(), _flatten_digits(text)
        leaked = [s for s in SECRETS if s in flat] + sorted(digit_runs & set(re.findall(r"\d{7,}", flat)))
        leaked += sorted(w for w in words if re.search(rf"\b{re.escape(w)}\b", lowered))
        assert not leaked, f"{name} logs what the caller said: {leaked}"
