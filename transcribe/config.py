"""Settings of the transcription worker: one frozen object, read from the environment by main()."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from deploy.topics import TOPICS
from transcribe.local_session import LocalSessionConfig
from transcribe.segmenter import SegmenterConfig
from transcribe.whisper_engine import WhisperConfig


class TranscribeConfig(BaseSettings):
    """Env vars: CALLSCOPE_TRANSCRIBE_<FIELD> (KAFKA_BOOTSTRAP also accepted for the broker)."""

    model_config = SettingsConfigDict(env_prefix="CALLSCOPE_TRANSCRIBE_", frozen=True, extra="ignore")

    kafka_bootstrap: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices(
            "CALLSCOPE_TRANSCRIBE_KAFKA_BOOTSTRAP", "KAFKA_BOOTSTRAP", "kafka_bootstrap"
        ),
    )
    group_id: str = "callscope-transcribe"
    client_id: str = "callscope-transcribe"
    audio_topic: str = TOPICS.audio
    transcript_topic: str = TOPICS.transcripts
    deadletter_topic: str = TOPICS.deadletter

    # Engine (embedded CPU default)
    model_path: str | None = None  # an operator's own CTranslate2 Whisper folder
    cpu_threads: int = Field(1, ge=1, le=64)
    decode_workers: int = Field(1, ge=1, le=64)

    # Turn segmentation
    vad_start_threshold: float = Field(0.5, gt=0, lt=1)
    vad_end_threshold: float = Field(0.35, gt=0, lt=1)
    min_speech_ms: int = Field(250, ge=32)
    max_silence_ms: int = Field(600, ge=100)
    pre_roll_ms: int = Field(200, ge=0)
    post_roll_ms: int = Field(150, ge=0)
    max_turn_ms: int = Field(9_500, ge=1_000, le=9_800)
    partial_interval_ms: int = Field(1_000, ge=200)

    # Buffers, backpressure and housekeeping
    session_queue_chunks: int = Field(50, ge=1)
    partition_high_records: int = Field(1_000, ge=10)  # pause a partition above this backlog
    partition_low_records: int = Field(200, ge=0)  # resume below this
    fetch_max_records: int = Field(500, ge=1)
    max_gap_fill_ms: int = Field(5_000, ge=0)  # longer gaps in a leg start a new session
    idle_leg_timeout_s: float = Field(30.0, gt=0)
    commit_interval_s: float = Field(1.0, gt=0)
    shutdown_drain_s: float = Field(5.0, ge=0)
    metrics_port: int | None = None  # serve Prometheus metrics here when set

    def whisper(self) -> WhisperConfig:
        return WhisperConfig(
            model_path=self.model_path, cpu_threads=self.cpu_threads, num_workers=self.decode_workers
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
            ),
            partial_interval_ms=self.partial_interval_ms,
            max_queued_chunks=self.session_queue_chunks,
        )
