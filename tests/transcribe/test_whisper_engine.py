"""The embedded Whisper engine's guards against invented text, and its word timestamps (real model)."""

from __future__ import annotations

from types import SimpleNamespace

import jiwer
import numpy as np
import pytest

from tests.speech import asterisk_available, asterisk_prompts, librivox_utterances, normalise_text
from transcribe.whisper_engine import SAMPLE_RATE_HZ, collapse_repeats, compression_ratio

R = SAMPLE_RATE_HZ


def tone(freqs: tuple[float, ...], seconds: float, level: float = 0.2) -> np.ndarray:
    t = np.arange(int(seconds * R)) / R
    return (level * sum(np.sin(2 * np.pi * f * t) for f in freqs)).astype(np.float32)


def dtmf(digits: str) -> np.ndarray:
    rows, cols = (697, 770, 852, 941), (1209, 1336, 1477)
    keys = "123456789*0#"
    out = []
    for d in digits:
        k = keys.index(d)
        out += [tone((rows[k // 3], cols[k % 3]), 0.1), np.zeros(int(0.1 * R), np.float32)]
    return np.concatenate(out)


def line_noise(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * R)) * 10 ** (dbfs / 20)).astype(np.float32)


NOT_SPEECH = {
    "digital silence": lambda: np.zeros(3 * R, np.float32),
    "line noise -50 dBFS": lambda: line_noise(3, -50),
    "line noise -30 dBFS": lambda: line_noise(3, -30),
    "dial tone 350+440 Hz": lambda: tone((350, 440), 3),
    "busy tone 480+620 Hz, 0.5 s on/off": lambda: np.concatenate(
        [tone((480, 620), 0.5), np.zeros(R // 2)] * 3
    ),
    "DTMF digits": lambda: dtmf("4111111111111111"),
    "mains hum 60 Hz": lambda: tone((60,), 3, 0.05),
}


@pytest.mark.parametrize("name", list(NOT_SPEECH))
def test_no_words_come_out_of_audio_that_is_not_speech(whisper_engine, name):
    result = whisper_engine.decode(NOT_SPEECH[name]())
    assert result.text == "", f"{name}: {result.text!r} ({result.dropped})"


def test_not_speech_gives_no_words_in_a_batch_with_speech_either(whisper_engine):
    speech = librivox_utterances()[1]
    clips = [f() for f in NOT_SPEECH.values()] + [speech.samples.astype(np.float32) / 32768]
    results = whisper_engine.decode_batch(clips)
    assert [r.text for r in results[:-1]] == [""] * len(NOT_SPEECH)
    assert results[-1].text == whisper_engine.decode(clips[-1]).text != ""


def test_a_decode_is_never_conditioned_on_earlier_text(whisper_engine):
    a, b = librivox_utterances()[1], librivox_utterances()[4]
    clip = b.samples.astype(np.float32) / 32768
    alone = whisper_engine.decode(clip).text
    whisper_engine.decode(a.samples.astype(np.float32) / 32768)
    assert whisper_engine.decode(clip).text == alone


def test_repeated_phrases_are_collapsed_only_beyond_what_the_audio_can_hold():
    said = (
        "Press 4 for the previous message. Press 4 For the previous Message. "
        "Press, 4 For The previous Message"
    )
    assert collapse_repeats(said) == "Press 4 for the previous message."
    assert (
        collapse_repeats(said, max_words=12)
        == "Press 4 for the previous message. Press 4 For the previous Message."
    )
    assert (
        collapse_repeats("press 1 to record press 1. To") == "press 1 to record press 1. To"
    )  # no immediate repeat
    assert collapse_repeats("I said no no no") == "I said no no no"  # one-word repeats are speech
    assert compression_ratio("press zero " * 30) > 2.4 > compression_ratio(said)


def _fake_result(engine, segments, *, score=-0.2, no_speech=0.01):
    """A generate() result: (start s, end s | None, text) segments as the model's token stream."""
    tok = engine._tokenizer
    ids = []
    for start, end, text in segments:
        ids.append(tok.timestamp_begin + round(start / 0.02))
        ids += tok.encode(" " + text)
        if end is not None:
            ids.append(tok.timestamp_begin + round(end / 0.02))
    return SimpleNamespace(sequences_ids=[ids + [tok.eot]], scores=[score], no_speech_prob=no_speech)


def test_text_the_model_places_after_the_end_of_the_audio_is_dropped(whisper_engine):
    result = _fake_result(
        whisper_engine,
        [(0.0, 1.6, "Press 5 to repeat."), (2.0, 2.8, "Press 5 to repeat."), (3.0, None, "Press")],
    )
    out = whisper_engine._transcription(result, 200, duration_s=2.0)
    assert out.text == "Press 5 to repeat."
    assert out.dropped == "tail"


def test_no_speech_and_low_confidence_text_is_dropped(whisper_engine):
    speechless = whisper_engine._transcription(
        _fake_result(whisper_engine, [(0.0, 1.0, "you")], score=-1.2, no_speech=0.7), 200, 2.0
    )
    assert (speechless.text, speechless.dropped) == ("", "no_speech")
    unsure = whisper_engine._transcription(
        _fake_result(whisper_engine, [(0.0, 1.0, "Thank you.")], score=-2.0), 200, 2.0
    )
    assert (unsure.text, unsure.dropped) == ("", "low_logprob")


@pytest.mark.skipif(not asterisk_available(), reason="Asterisk prompts not installed")
def test_a_final_repeats_its_last_phrase_only_when_the_audio_does(whisper_engine):
    prompts = [u for u in asterisk_prompts() if u.duration_s < 4.5][:6]
    for utt in prompts:
        once = utt.samples.astype(np.float32) / 32768
        once16 = np.repeat(once, 2)  # 8 kHz to 16 kHz; good enough for the model on phone prompts
        text = normalise_text(whisper_engine.decode(once16).text)
        words = text.split()
        tail = words[-3:]
        assert " ".join(tail) not in " ".join(words[:-3]), f"{utt.name}: {text!r}"
    utt = prompts[0]
    twice = np.concatenate([np.repeat(utt.samples, 2), np.zeros(R // 2, np.int16), np.repeat(utt.samples, 2)])
    text = normalise_text(whisper_engine.decode(twice.astype(np.float32) / 32768).text)
    assert jiwer.wer(f"{utt.text} {utt.text}", text) <= 0.2, text


def test_word_timestamps_split_a_cut_inside_speech_without_losing_or_doubling_a_word(whisper_engine):
    utt = max(librivox_utterances(), key=lambda u: u.duration_s)
    clip = utt.samples[: 9 * R].astype(np.float32) / 32768
    whole = whisper_engine.decode(clip, words=True)
    words = whole.words
    assert len(words) > 10 and all(a.start_s <= b.start_s for a, b in zip(words, words[1:], strict=False))
    # Cut in the middle of a word, as a fixed boundary would.
    middle = words[len(words) // 2]
    cut = int((middle.start_s + middle.end_s) / 2 * R)
    overlap = R  # as SegmenterConfig.cut_overlap_ms
    split = cut - overlap // 2
    first = whisper_engine.decode(clip[:cut], words=True).keep_words(None, split / R)
    second = whisper_engine.decode(clip[cut - overlap :], words=True).keep_words(overlap / 2 / R, None)
    joined = normalise_text(f"{first.text} {second.text}")
    reference = normalise_text(whole.text)
    naive = normalise_text(
        f"{whisper_engine.decode(clip[:cut]).text} {whisper_engine.decode(clip[cut:]).text}"
    )
    print(f"\nwhole : {reference}\njoined: {joined}\nnaive : {naive}")
    assert jiwer.wer(reference, joined) <= 0.05
    assert len(joined.split()) == len(reference.split())


# -- the call's language ---------------------------------------------------------------------------


def test_an_english_only_model_decodes_another_language_as_english_warning_once(whisper_engine, caplog):
    (utt,) = [u for u in librivox_utterances()[1:2]]
    x = utt.samples.astype(np.float32) / 32768.0
    english = whisper_engine.decode(x).text
    with caplog.at_level("WARNING", logger="transcribe.whisper_engine"):
        asked = [whisper_engine.decode(x, language="es").text for _ in range(2)]
    assert asked == [english, english] and english
    assert len([r for r in caplog.records if "English-only" in r.getMessage()]) == 1


SPOKEN = {  # espeak-ng voice: (text, its words; a synthetic voice: one may come out wrong)
    "es": ("Hola, quiero cancelar mi cuenta, por favor.", {"hola", "quiero", "cancelar", "cuenta", "favor"}),
    "de": ("Guten Tag, ich möchte meinen Vertrag kündigen.", {"guten", "tag", "ich", "möchte", "kündigen"}),
}


@pytest.fixture(scope="module")
def base_engine():
    from transcribe.models import whisper_base_path
    from transcribe.whisper_engine import WhisperConfig, WhisperEngine

    return WhisperEngine(WhisperConfig(model_path=whisper_base_path()))  # callscope[multilingual]


def test_a_multilingual_model_decodes_each_clip_in_its_own_language(base_engine):
    from tests.calls import speak

    clips = {lang: speak(text, R, lang).astype(np.float32) / 32768.0 for lang, (text, _) in SPOKEN.items()}
    # Spanish and German in one batch, each told its language; the same Spanish clip told English.
    es, de, es_as_en = base_engine.decode_batch(
        [clips["es"], clips["de"], clips["es"]], languages=["es", "de", "en"]
    )
    for lang, got in (("es", es), ("de", de)):
        words = set(jiwer.RemovePunctuation()(got.text.lower()).split())
        assert len(SPOKEN[lang][1] & words) >= 4, (lang, got.text)
    translated = set(jiwer.RemovePunctuation()(es_as_en.text.lower()).split())
    assert not {"hola", "quiero", "cancelar", "cuenta"} & translated, es_as_en.text
