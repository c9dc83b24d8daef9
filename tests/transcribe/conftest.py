"""Fixtures of the transcription tests."""

from __future__ import annotations

import pytest

from transcribe.whisper_engine import WhisperEngine


@pytest.fixture(scope="module")
def whisper_engine() -> WhisperEngine:
    """The embedded Whisper tiny.en engine, loaded once per module."""
    return WhisperEngine()
