"""Which speech engine a worker's sessions run on: the embedded CPU engine, or a /v1/realtime server
reached over a WebSocket or through a SageMaker endpoint. Heavy imports stay in the functions."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ingest.events import Leg
from pipeline.settings import SettingsError
from transcribe.config import TranscribeConfig
from transcribe.session import SessionFactory

if TYPE_CHECKING:
    from transcribe.connector import Connect
    from transcribe.sagemaker_stream import StreamOpener


def local_session_factory(config: TranscribeConfig) -> SessionFactory:
    """Sessions on the embedded CPU engine; the model is loaded once per process.

    Each session decodes in its call's language (`language`, from call.started; None: the
    configured default). An English-only model with a non-English default is refused here, at
    start-up; a call in another language on it is decoded as English (the engine warns once).
    """
    from transcribe.decode_scheduler import shared_scheduler
    from transcribe.local_session import LocalSession
    from transcribe.models import ModelMissing, resolve_model
    from transcribe.whisper_engine import EnglishOnlyModel, shared_engine

    try:
        whisper = config.whisper()  # model_path: a folder, or a model that ships in a package ("base")
        engine = shared_engine(replace(whisper, model_path=resolve_model(whisper.model_path)))
        final_engine = None
        if config.final_model_path:  # two-pass: finals on a larger model, partials on `engine`
            final = replace(whisper, model_path=resolve_model(config.final_model_path))
            final_engine = shared_engine(final)
    except (EnglishOnlyModel, ModelMissing) as exc:
        raise SettingsError(str(exc)) from None
    scheduler = shared_scheduler(engine, final_engine)
    session_config = replace(config.local_session(), two_pass=final_engine is not None)

    def open_session(*, call_id: str, leg: Leg, language: str | None = None) -> LocalSession:
        config_ = replace(session_config, language=language or config.language)
        return LocalSession(engine, config_, scheduler=scheduler)

    return open_session


def vllm_session_factory(config: TranscribeConfig, connect: Connect | None = None) -> SessionFactory:
    """Sessions on a /v1/realtime server (vLLM, or `callscope transcribe serve`), or through `connect`."""
    from transcribe.vllm_session import VllmSession

    session_config = config.vllm_session(connect)

    def open_session(*, call_id: str, leg: Leg, language: str | None = None) -> VllmSession:
        return VllmSession(replace(session_config, language=language or config.language))

    return open_session


def sagemaker_session_factory(config: TranscribeConfig, opener: StreamOpener | None = None) -> SessionFactory:
    """Sessions on vLLM behind a SageMaker endpoint. The HTTP/2 client is resolved here, so a
    worker without it fails at start (SageMakerClientMissing names the extra), not on every leg."""
    from transcribe.sagemaker_transport import sdk_stream_opener

    return vllm_session_factory(config, config.realtime_connect(opener=opener or sdk_stream_opener()))


def session_factory_for(config: TranscribeConfig) -> SessionFactory:
    """The engine the config selects (`engine`: local, vllm or sagemaker)."""
    match config.engine:
        case "vllm":
            return vllm_session_factory(config)
        case "sagemaker":
            return sagemaker_session_factory(config)
        case "local":
            return local_session_factory(config)
