"""Streaming finals are as good as the same model decoding each utterance whole: the ratio of their
word error rates, measured in this run on real speech (bench/fidelity.py's path, a small set).

A regression in the streaming path (clipped onsets, invented tails, words lost at cuts) raises
the streaming WER and not the batch one, so the ratio catches it whatever the machine's speed.
"""

from __future__ import annotations

import pytest

from bench.fidelity import batch_wer, load_set, stream_step
from bench.scoring import canonical
from tests.speech import asterisk_available

pytestmark = pytest.mark.skipif(not asterisk_available(), reason="Asterisk prompts not installed")

MAX_RATIO = 1.3  # the goal is 1.15 on the full sets (README, bench.fidelity)
# Plus two words: which clips share a batched decode depends on timing, and batching numerics flip
# a decode either way (the LibriVox "ill disposed" -> "old sposed": two words wrong); with only 3
# batch errors on these 353 words (canonical scoring) one such flip is a ratio of 1.67, so without
# it the bound would test the scheduler's luck, not the path. Measured: 5 words wrong against 3,
# before compound scoring 9 against 7.
SLACK_WORDS = 2


def small_set() -> list:
    short = load_set("asterisk", None)[::4]  # 19 prompts of 2-9 s, spread over a-l
    # 17 s, 9.7 s and 25 s: turns past the 10 s window, whose finals are one 30 s-window decode
    names = ("demo-echotest", "demo-moreinfo", "basic-pbx-ivr-main")
    long_ = [u for u in load_set("asterisk-long", None) if u[0].name in names]
    return short + long_ + load_set("librivox", None)[1:4]


async def test_streaming_wer_stays_within_the_margin_of_whole_utterance_decoding(whisper_engine):
    utterances = small_set()
    result = await stream_step(whisper_engine, utterances, legs=2, speed=4.0)
    batch, _, _ = batch_wer(whisper_engine, utterances)  # the benchmark's reference
    ratio = result["wer"] / batch
    words = sum(len(canonical(u.text).split()) for u, _ in utterances)
    onset = result["onset_p50"]
    print(
        f"\nstream WER {result['wer']:.3f} ({result['wer'] * words:.0f} of {words} words), batch WER"
        f" {batch:.3f} ({batch * words:.0f}), ratio {ratio:.2f}, onset {onset:.0f} ms"
    )
    assert result["errors"] == 0
    assert result["onset_within_150"] == 1.0
    assert result["wer"] <= MAX_RATIO * batch + SLACK_WORDS / words
