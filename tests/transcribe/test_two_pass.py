"""Whisper base on the real models: two-pass finals (partials on tiny.en, finals on base), and a
call language over the realtime protocol to `transcribe serve`.

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
            if i % 8_000 == 0:  # every 250 ms of audio, let decoding catch up: partials come
                await session.wait_idle()
        await session.end_input()
        events = [e async for e in session.events()]

    finals = [e.text.lower() for e in events if isinstance(e, FinalText) and e.text]
    assert len(finals) == 1 and {"quiero", "cancelar", "cuenta"} <= set(finals[0].replace(",", "").split())
    partials = [e.text.lower() for e in events if isinstance(e, PartialText) and e.text]
    assert partials and not {"quiero", "cancelar", "cuenta"} & set(partials[0].split())  # tiny.en: English


async def test_a_realtime_session_in_spanish_gets_spanish_from_transcribe_serve_on_base():
    """The language travels over the wire: VllmSession sends it in session.update, serve decodes in it."""
    from dataclasses import replace

    from transcribe.models import whisper_base_path
    from transcribe.serve import RealtimeServer, ServeConfig
    from transcribe.vllm_session import VllmSession
    from transcribe.whisper_engine import WhisperConfig, WhisperEngine

    engine = WhisperEngine(WhisperConfig(model_path=whisper_base_path()))
    speech = speak("Hola, quiero cancelar mi cuenta, por favor.", 16_000, "es")
    silence = np.zeros(16_000, dtype=np.int16)
    pcm = np.concatenate([silence, speech, silence, silence]).astype("<i2").tobytes()
    async with RealtimeServer(engine, ServeConfig(port=0, model_name="base")) as server:
        url = f"ws://127.0.0.1:{server.port}/v1/realtime"
        config = TranscribeConfig(engine="vllm", vllm_url=url, vllm_model="base")
        texts = {}
        for language in ("es", "en"):
            session = VllmSession(replace(config.vllm_session(), language=language))
            async with session:
                for i in range(0, len(pcm), 640):
                    await session.send_audio(pcm[i : i + 640])
                await session.end_input()
                texts[language] = " ".join(
                    e.text.lower() for e in [e async for e in session.events()] if isinstance(e, FinalText)
                )
    assert {"quiero", "cancelar", "cuenta"} <= set(texts["es"].replace(",", "").split()), texts
    assert not {"quiero", "cancelar", "cuenta"} & set(texts["en"].replace(",", "").split()), texts
