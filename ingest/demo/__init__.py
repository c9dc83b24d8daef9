"""The bundled demo call: a scripted two-leg conversation (espeak-ng voices), stereo 8 kHz PCM16."""

from __future__ import annotations

from pathlib import Path

DEMO_DIR = Path(__file__).parent
DEMO_CALL_WAV = DEMO_DIR / "demo_call.wav"
DEMO_CALL_SCRIPT = DEMO_DIR / "demo_call.txt"
