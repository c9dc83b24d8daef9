"""Build a tiny Voxtral-Realtime-shaped model folder (mistral format: params.json + tekken.json).

vLLM serves it with `--load-format dummy` (random weights), which is enough for a protocol
conformance peer: the token arithmetic (12.5 tokens/s, 39-token prompt, padding, max_model_len)
is the real model's. Nothing is downloaded. Run with the peer venv's Python (needs mistral_common):
    .venv-vllm/bin/python tests/conformance/build_tiny_voxtral.py OUT_DIR
head_dim is 32 because vLLM's CPU attention kernel rejects 16.
"""

import base64
import json
import sys
from pathlib import Path

from mistral_common.tokens.tokenizers.base import SpecialTokens

out = Path(sys.argv[1] if len(sys.argv) > 1 else "voxtral-rt-tiny")
out.mkdir(parents=True, exist_ok=True)

NUM_SPECIAL = 128
NUM_BYTES = 256
VOCAB = NUM_SPECIAL + NUM_BYTES  # 384

# ---- tekken.json -----------------------------------------------------------
# Special tokens: keep the real Voxtral-Realtime ids for the important ones
# (<s>=1, </s>=2, [AUDIO]=24, [BEGIN_AUDIO]=25, [STREAMING_PAD]=32,
# [STREAMING_WORD]=33, [REPEAT_AUDIO_TEXT]=34); others fill the free slots.
fixed = {
    "<unk>": 0,
    "<s>": 1,
    "</s>": 2,
    "[AUDIO]": 24,
    "[BEGIN_AUDIO]": 25,
    "[STREAMING_PAD]": 32,
    "[STREAMING_WORD]": 33,
    "[REPEAT_AUDIO_TEXT]": 34,
}
ranks = dict(fixed)
free = (i for i in range(NUM_SPECIAL) if i not in fixed.values())
for st in SpecialTokens:
    if st.value not in ranks:
        ranks[st.value] = next(free)
special_tokens = [
    {"rank": r, "token_str": s, "is_control": True} for s, r in sorted(ranks.items(), key=lambda kv: kv[1])
]
used = set(ranks.values())
for i in range(NUM_SPECIAL):
    if i not in used:
        special_tokens.append({"rank": i, "token_str": f"<SPECIAL_{i}>", "is_control": True})
special_tokens.sort(key=lambda t: t["rank"])

vocab = [
    {"rank": i, "token_bytes": base64.b64encode(bytes([i])).decode(), "token_str": None}
    for i in range(NUM_BYTES)
]

tekken = {
    "config": {
        "pattern": r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",  # noqa: E501
        "num_vocab_tokens": NUM_BYTES,
        "default_vocab_size": VOCAB,
        "default_num_special_tokens": NUM_SPECIAL,
        "version": "v13",
    },
    "vocab": vocab,
    "special_tokens": special_tokens,
    # Same streaming audio settings as the real Voxtral-Mini-4B-Realtime-2602
    "audio": {
        "sampling_rate": 16000,
        "frame_rate": 12.5,
        "audio_encoding_config": {"num_mel_bins": 128, "hop_length": 160, "window_size": 400},
        "chunk_length_s": None,
        "transcription_format": "streaming",
        "transcription_delay_ms": 480,
        "streaming_look_ahead_ms": 2.5,
        "streaming_look_back_ms": 52.5,
        "streaming_n_left_pad_tokens": 32,
    },
}
(out / "tekken.json").write_text(json.dumps(tekken))

# ---- params.json (mistral format, tiny) -------------------------------------
params = {
    "dim": 128,
    "n_layers": 2,
    "head_dim": 32,
    "hidden_dim": 256,
    "n_heads": 4,
    "n_kv_heads": 2,
    "use_biases": False,
    "causal": True,
    "rope_theta": 1000000.0,
    "norm_eps": 1e-05,
    "vocab_size": VOCAB,
    "model_max_length": 4096,
    "max_position_embeddings": 4096,
    "sliding_window": 8192,
    "tied_embeddings": True,
    "ada_rms_norm_t_cond": True,
    "ada_rms_norm_t_cond_dim": 32,
    "multimodal": {
        "whisper_model_args": {
            "encoder_args": {
                "audio_encoding_args": {
                    "sampling_rate": 16000,
                    "frame_rate": 12.5,
                    "num_mel_bins": 128,
                    "hop_length": 160,
                    "window_size": 400,
                    "chunk_length_s": None,
                    "global_log_mel_max": 1.5,
                    "transcription_format": "streaming",
                },
                "dim": 128,
                "n_layers": 2,
                "head_dim": 32,
                "hidden_dim": 256,
                "n_heads": 4,
                "vocab_size": VOCAB,
                "n_kv_heads": 4,
                "use_biases": True,
                "use_cache": False,
                "rope_theta": 1000000.0,
                "causal": True,
                "norm_eps": 1e-05,
                "pos_embed": "rope",
                "max_source_positions": None,
                "ffn_type": "swiglu",
                "norm_type": "rms_norm",
                "sliding_window": 750,
            },
            "downsample_args": {"downsample_factor": 4},
        }
    },
}
(out / "params.json").write_text(json.dumps(params, indent=2))
print("wrote", out)

# sanity: load the tokenizer the way vLLM will
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer  # noqa: E402

tok = MistralTokenizer.from_file(str(out / "tekken.json"))
enc = tok.instruct_tokenizer.audio_encoder
prompt = tok.instruct_tokenizer.start() + enc.encode_streaming_tokens()
print("prompt tokens:", len(prompt), prompt[:5], "...")
print(
    "raw_audio_length_per_tok:",
    enc.audio_config.raw_audio_length_per_tok,
    "delay tokens:",
    enc.audio_config.get_num_delay_tokens(),
)
left, right = enc.get_padding_audio()
print("left pad samples:", len(left.audio_array), "right pad samples:", len(right.audio_array))
print("decode test:", repr(tok.instruct_tokenizer.tokenizer.decode([NUM_SPECIAL + ord(c) for c in "hi"])))
