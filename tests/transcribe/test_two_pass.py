"""Two-pass finals on the real models: partials on tiny.en, finals on Whisper base (final_model_path).

A Spanish call shows which model made what: tiny.en cannot write Spanish, so Spanish finals come
from base, in the call's language, through the worker's own session factory.
"""

from __future__ import annotations

import numpy as np

from tests.calls import speak
from transcribe.config import TranscribeConfig
from transcribe.engines import local_session_factory
from transcribe.session import FinalText, PartialText


async def test_a_spanish_calls_finals_come_from_base_in_spanish_while_partials_stay_on_tiny_en():
    factory = local_session_factory(TranscribeConfig(final_model_path="base"))
    speech = speak("Hola, quiero cancelar mi cuenta, por favor.", 16_000, "es")
    silence = np.zeros(16_000, dtype=np.int16)
    pcm = np.concatenate([silence, speech, silence, silence]).astype("<i2").tobytes()

    session = factory(call_id="c1", leg="customer", language="es")
    events = []
    async with session:
        for i in range(0, len(pcm), 640):
            await session.send_audio(pcm[i : i + 640])
        await session.end_input()
        events = [e async for e in session.events()]

    finals = [e.text.lower() for e in events if isinstance(e, FinalText) and e.text]
    assert len(finals) == 1 and {"quiero", "cancelar", "cuenta"} <= set(finals[0].replace(",", "").split())
    partials = [e.text.lower() for e in events if isinstance(e, PartialText) and e.text]
    assert partials and not {"quiero", "cancelar", "cuenta"} & set(partials[0].split())  # tiny.en: English
