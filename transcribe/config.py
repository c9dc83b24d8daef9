"""Settings of the transcription worker: one frozen object, read from the environment at start."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from pipeline.retry import RetryPolicy
from pipeline.settings import StageSettings
from transcribe.local_session import LocalSessionConfig
from transcribe.segmenter import SegmenterConfig
from transcribe.whisper_engine import WhisperConfig

if TYPE_CHECKING:
    from transcribe.connector import Connect
    from transcribe.sagemaker_stream import StreamOpener
    from transcribe.vllm_session import VllmSessionConfig


class TranscribeConfig(StageSettings):
    """Env vars: CALLSCOPE_TRANSCRIBE_<FIELD>, and the shared CALLSCOPE_* ones of StageSettings
    (broker, partitions, topics)."""

    model_config = SettingsConfigDict(env_prefix="CALLSCOPE_TRANSCRIBE_")

    metrics_address: str = "127.0.0.1:9402"
    group_id: str = "callscope-transcribe"
    client_id: str = "callscope-transcribe"

    # Engine: "local" runs Whisper in this process; "vllm" streams to a /v1/realtime server
    # (vLLM serving Voxtral Realtime, or `callscope transcribe serve`); "sagemaker" streams the same
    # protocol to vLLM behind a SageMaker endpoint (extra `callscope[sagemaker-stream]`, Python 3.12+).
    # The vllm_* settings below but vllm_url and vllm_api_key apply to both remote engines.
    engine: Literal["local", "vllm", "sagemaker"] = "local"
    vllm_url: str = "ws://127.0.0.1:8000/v1/realtime"
    vllm_model: str = "mistralai/Voxtral-Mini-4B-Realtime-2602"  # the served model name
    sagemaker_endpoint_name: str | None = None
    sagemaker_region: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "CALLSCOPE_TRANSCRIBE_SAGEMAKER_REGION", "AWS_REGION", "AWS_DEFAULT_REGION", "sagemaker_region"
        ),
    )
    sagemaker_target_variant: str | None = None
    vllm_api_key: SecretStr | None = None
    vllm_max_turn_ms: int = Field(30_000, ge=1_000)  # far below the server's utterance capacity
    vllm_retry_attempts: int = Field(5, ge=0, le=100)
    vllm_retry_base_delay_s: float = Field(0.25, gt=0)
    vllm_retry_max_delay_s: float = Field(8.0, gt=0)
    vllm_idle_close_s: float = Field(20.0, gt=0)
    vllm_stall_timeout_s: float = Field(30.0, gt=0)
    vllm_max_held_ms: int = Field(90_000, ge=2_000)

    # Engine (embedded CPU default)
    model_path: str | None = None  # a CTranslate2 Whisper folder, or "base" (callscope[multilingual])
    # Two-pass: finals decoded by this model (a folder, or "base"), partials by model_path's. Unset:
    # one model for both.
    final_model_path: str | None = None
    cpu_threads: int = Field(1, ge=1, le=64)
    decode_workers: int = Field(1, ge=1, le=64)  # decode threads taking any request
    # Decode threads beside them taking only finals and a turn's first text (0: none).
    urgent_decode_workers: int = Field(1, ge=0, le=64)
    decode_batch: int = Field(2, ge=1, le=64)  # requests of different calls decoded in one call
    # A call's language comes from its call.started metadata (transcribe/language.py); this is the
    # language of a call whose metadata names none (Whisper's code: en, es, de, ...). English-only
    # models (tiny.en, the default) accept only "en" here: anything else stops the start-up.
    language: str = "en"

    # Turn segmentation
    vad_start_threshold: float = Field(0.5, gt=0, lt=1)
    vad_end_threshold: float = Field(0.35, gt=0, lt=1)
    min_speech_ms: int = Field(250, ge=32)
    max_silence_ms: int = Field(600, ge=100)
    pre_roll_ms: int = Field(200, ge=0)
    post_roll_ms: int = Field(150, ge=0)
    # A turn's final is one decode of the whole turn (Whisper's 30 s window past 10 s); a turn
    # reaching this is cut at the quietest point of its last cut_search_ms. At most the window.
    max_turn_ms: int = Field(28_000, ge=1_000, le=29_500)
    partial_interval_ms: int = Field(1_000, ge=200)
    first_partial_ms: int = Field(250, ge=100)  # speech before a turn's first partial
    cut_search_ms: int = Field(3_000, ge=100)  # a too-long turn is cut at the quietest point of its last ms
    cut_overlap_ms: int = Field(1_000, ge=0)  # a cut inside speech is re-decoded this much, words split

    # Buffers, backpressure and housekeeping
    session_queue_chunks: int = Field(50, ge=1)
    partition_high_records: int = Field(1_000, ge=10)  # pause a partition above this backlog
    partition_low_records: int = Field(200, ge=0)  # resume below this
    fetch_max_records: int = Field(500, ge=1)
    max_gap_fill_ms: int = Field(5_000, ge=0)  # longer gaps in a leg start a new session
    idle_leg_timeout_s: float = Field(30.0, gt=0)
    leg_stall_timeout_s: float = Field(15.0, gt=0)  # a session taking no audio this long fails its leg
    commit_interval_s: float = Field(1.0, gt=0)

    # Failure detection: the group declares a worker dead once it has not heartbeated for
    # session_timeout_ms, and its partitions move. Shorter notices a killed worker sooner (with
    # Tansu, ~1x the timeout to notice plus ~0.5x for the first JoinGroup answer: 3 s -> the
    # partitions move ~5 s after a kill -9); but an event loop blocked for longer than this (CPU
    # starvation, a long GC, a stalled disk) gets a healthy worker evicted and its calls moved.
    # Heartbeat at a third of the timeout, as Kafka advises, so one lost heartbeat is survivable.
    session_timeout_ms: int = Field(3_000, ge=1_000, le=300_000)
    heartbeat_interval_ms: int = Field(1_000, ge=100, le=60_000)
    # How long the broker may hold a fetch that finds nothing new. Tansu never answers one early,
    # so audio arriving mid-wait waits for the rest: with aiokafka's 500 ms default a frame sent
    # every 20 ms was read p50 133 ms / p95 241 ms late, with 10 ms 3 / 7 ms. Shorter costs the
    # broker more fetches: 50 ms kept most of the gain at a third of 10 ms's extra broker CPU
    # (README, Known limits of the embedded broker).
    fetch_max_wait_ms: int = Field(50, ge=1, le=1500)
    # Overload and zombies: above max_live_calls open calls, a partition whose next record starts
    # a call is held there (its backlog then pauses it at the consumer) until a call ends; the
    # other calls of that partition wait with it. A call with no audio on any leg for
    # idle_call_timeout_s, or open longer than max_call_duration_s, is ended here with that reason.
    max_live_calls: int = Field(100, ge=1)
    idle_call_timeout_s: float = Field(120.0, gt=0)
    max_call_duration_s: float = Field(4 * 3600.0, gt=0)
    # Resume: a worker taking a partition over reads this much of the transcript topic's partition
    # for the finals already out, and decodes each leg from where they end (transcribe/resume.py).
    # A call open longer than this is decoded again from the start of the window.
    resume_lookback_s: float = Field(3600.0, ge=0)
    resume_read_deadline_s: float = Field(5.0, gt=0)
    # At start-up, how long to wait for the broker (it may be starting too) before exiting.
    broker_wait_s: float = Field(30.0, ge=0, le=600)

    @model_validator(mode="after")
    def _sagemaker_needs_an_endpoint(self) -> TranscribeConfig:
        if self.engine == "sagemaker" and not (self.sagemaker_endpoint_name and self.sagemaker_region):
            raise ValueError(
                "engine=sagemaker needs CALLSCOPE_TRANSCRIBE_SAGEMAKER_ENDPOINT_NAME and "
                "CALLSCOPE_TRANSCRIBE_SAGEMAKER_REGION (or AWS_REGION)"
            )
        return self

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        from transcribe.language import normalise_language

        code = normalise_language(value)
        if code is None:
            raise ValueError(f"unknown language {value[:16]!r} (Whisper's codes: en, es, de, ...)")
        return code

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> TranscribeConfig:
        if self.heartbeat_interval_ms * 2 > self.session_timeout_ms:
            raise ValueError(
                "CALLSCOPE_TRANSCRIBE_HEARTBEAT_INTERVAL_MS must be at most half of "
                "CALLSCOPE_TRANSCRIBE_SESSION_TIMEOUT_MS"
            )
        return self

    @model_validator(mode="after")
    def _retry_delays_grow(self) -> TranscribeConfig:
        if self.vllm_retry_max_delay_s < self.vllm_retry_base_delay_s:
            raise ValueError(
                "CALLSCOPE_TRANSCRIBE_VLLM_RETRY_MAX_DELAY_S must be at least "
                "CALLSCOPE_TRANSCRIBE_VLLM_RETRY_BASE_DELAY_S"
            )
        return self

    def whisper(self) -> WhisperConfig:
        return WhisperConfig(
            model_path=self.model_path,
            cpu_threads=self.cpu_threads,
            num_workers=self.decode_workers,
            urgent_workers=self.urgent_decode_workers,
            max_batch_size=self.decode_batch,
            language=self.language,
        )

    def local_session(self) -> LocalSessionConfig:
        return LocalSessionConfig(
            segmenter=SegmenterConfig(
                start_threshold=self.vad_start_threshold,
                end_threshold=self.vad_end_threshold,
                min_speech_ms=self.min_speech_ms,
                max_silence_ms=self.max_silence_ms,
                pre_roll_ms=self.pre_roll_ms,
                post_roll_ms=self.post_roll_ms,
                max_turn_ms=self.max_turn_ms,
                cut_search_ms=self.cut_search_ms,
                cut_overlap_ms=self.cut_overlap_ms,
            ),
            partial_interval_ms=self.partial_interval_ms,
            first_partial_ms=self.first_partial_ms,
            max_queued_chunks=self.session_queue_chunks,
        )

    def realtime_connect(self, *, opener: StreamOpener | None = None) -> Connect:
        """How a remote session connects: a WebSocket (`vllm`) or a SageMaker stream (`sagemaker`)."""
        from transcribe import connector

        match self.engine:
            case "sagemaker":
                from transcribe.sagemaker_stream import SageMakerEndpoint

                assert self.sagemaker_endpoint_name and self.sagemaker_region  # checked at validation
                endpoint = SageMakerEndpoint(
                    self.sagemaker_endpoint_name,
                    self.sagemaker_region,
                    self.vllm_model,
                    self.sagemaker_target_variant,
                )
                return connector.sagemaker(endpoint, opener)
            case _:
                from transcribe.realtime_client import Endpoint

                api_key = self.vllm_api_key.get_secret_value() if self.vllm_api_key else None
                return connector.websocket(Endpoint(self.vllm_url, self.vllm_model, api_key))

    def vllm_session(self, connect: Connect | None = None) -> VllmSessionConfig:
        """Settings of a session on a remote engine; `connect` defaults to `realtime_connect()`."""
        from transcribe.vllm_session import VllmSessionConfig

        segmenter = replace(self.local_session().segmenter, max_turn_ms=10**9)  # cut by the session
        return VllmSessionConfig(
            connect=connect or self.realtime_connect(),
            max_turn_ms=self.vllm_max_turn_ms,
            segmenter=segmenter,
            retry=RetryPolicy(
                base_delay_s=self.vllm_retry_base_delay_s,
                max_delay_s=self.vllm_retry_max_delay_s,
                attempts=self.vllm_retry_attempts,
            ),
            max_queued_chunks=self.session_queue_chunks,
            max_held_ms=max(self.vllm_max_held_ms, 2 * self.vllm_max_turn_ms),
            idle_close_s=self.vllm_idle_close_s,
            stall_timeout_s=self.vllm_stall_timeout_s,
            model=self.vllm_model,
            language=self.language,
        )
