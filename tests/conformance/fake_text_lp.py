"""Test-only vLLM v1 logits processor: forces the tiny random model to emit a
fixed, printable text ("hello world ") one byte-token per engine step, so the
realtime endpoint produces non-empty transcription.delta events.
Byte tokens start right after the 128 special tokens of the tiny tekken.json."""

import torch
from vllm.v1.sample.logits_processor import LogitsProcessor

TEXT = "hello world "
OFFSET = 128


class CycleTextLogitsProcessor(LogitsProcessor):
    def __init__(self, vllm_config, device, is_pin_memory):
        self.step = 0

    def is_argmax_invariant(self) -> bool:
        return False

    def update_state(self, batch_update) -> None:
        pass

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[0] == 0:
            return logits
        tok = OFFSET + ord(TEXT[self.step % len(TEXT)])
        self.step += 1
        logits.fill_(-1e9)
        logits[:, tok] = 0.0
        return logits
