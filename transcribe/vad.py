"""Streaming Silero VAD v6 (the ONNX file that ships inside faster-whisper), one state per leg."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

WINDOW_SAMPLES = 512  # 32 ms at 16 kHz: the window the model was trained on
CONTEXT_SAMPLES = 64  # the model sees the previous window's last 64 samples in front of each window
SAMPLE_RATE_HZ = 16_000


def default_model_path() -> str:
    from faster_whisper.utils import get_assets_path

    return os.path.join(get_assets_path(), "silero_vad_v6.onnx")


@functools.cache
def load_vad_model(path: str | None = None) -> Any:
    """One onnxruntime session per process; `run` is safe to call from several threads."""
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.enable_cpu_mem_arena = False
    opts.log_severity_level = 4
    return onnxruntime.InferenceSession(
        path or default_model_path(), providers=["CPUExecutionProvider"], sess_options=opts
    )


@dataclass
class VadStream:
    """Speech probability per 512-sample window of one leg's 16 kHz audio, carried across calls.

    Not thread-safe: one leg's audio goes through one stream, in order.
    """

    model: Any = field(default_factory=load_vad_model)
    _h: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 128), dtype=np.float32))
    _c: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 128), dtype=np.float32))
    _context: np.ndarray = field(default_factory=lambda: np.zeros(CONTEXT_SAMPLES, dtype=np.float32))
    _pending: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def process(self, samples: np.ndarray) -> list[float]:
        """Feed float32 samples in [-1, 1]; returns one probability per window completed."""
        audio = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        complete = len(audio) // WINDOW_SAMPLES * WINDOW_SAMPLES
        self._pending = audio[complete:].copy()
        probabilities: list[float] = []
        for start in range(0, complete, WINDOW_SAMPLES):
            window = audio[start : start + WINDOW_SAMPLES]
            model_input = np.concatenate([self._context, window])[np.newaxis, :]
            out, self._h, self._c = self.model.run(None, {"input": model_input, "h": self._h, "c": self._c})
            self._context = window[-CONTEXT_SAMPLES:].copy()
            probabilities.append(float(np.asarray(out).reshape(-1)[0]))
        return probabilities

    @property
    def pending_samples(self) -> int:
        return len(self._pending)
