"""Settings of the analysis worker: one frozen object, built once per process (the CLI's load_settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pipeline.settings import StageSettings


class AnalyzeConfig(StageSettings):
    """`CALLSCOPE_ANALYZE_*` variables, beside the shared broker, partition and topic settings.

    `partitions` must equal the transcript topic's partition count: faust crashes the agent on a
    mismatch (the worker checks it before it starts).
    """

    model_config = SettingsConfigDict(env_prefix="CALLSCOPE_ANALYZE_")

    metrics_address: str = "127.0.0.1:9403"
    app_id: str = Field(default="callscope-analyze", min_length=1)  # also the consumer group id
    rules_path: Path | None = None  # None: the example rules shipped in the package
    # How often the rule file is checked for a new version (hot reload); 0 turns reloading off.
    rules_reload_interval_s: float = Field(default=5.0, ge=0, le=3600)
    # Semantic intents and knowledge retrieval with the MiniLM embedding model (~5-10 ms per
    # embedded utterance); off: exact and fuzzy phrases only.
    embeddings: bool = True
    semantic_on_partials: bool = False  # embed partials too, not only finals (costs CPU per partial)
    knowledge_path: Path | None = None  # folder of markdown articles; None: the shipped examples
    # Sentiment engine: vader (default, ~50 µs), embedding (MiniLM + the project's trained head,
    # ~5-10 ms), transformers (the operator's own model in sentiment_model_dir; the models extra).
    sentiment_engine: Literal["vader", "embedding", "transformers"] = "vader"
    sentiment_model_dir: Path | None = None
    partial_sentiment_interval_s: float = Field(default=0.5, ge=0, le=60)  # per turn, latest wins
    metrics_interval_ms: int = Field(default=15_000, ge=1_000)  # conversation metrics and trends
    trend_window_ms: int = Field(default=60_000, ge=1_000)  # rolling sentiment window
    # faust's consumer waits up to 1.5 s on an empty fetch; Tansu never answers one early
    # (analyze/faust_fetch.py). Short: a final reaches the worker in milliseconds.
    fetch_max_wait_ms: int = Field(default=10, ge=1, le=1500)
    # Where per-call assist state lives: "table" (a faust table with a changelog co-partitioned with
    # the transcript topic, recovered by whichever worker owns the call next; analyze/state_table.py,
    # README "Per-call state") or "memory" (this worker only; lost on a restart or rebalance).
    state_store: Literal["memory", "table"] = "table"
    # How long the table remembers that a call ended, so that its records delivered again (after a
    # rebalance or a restart) are ignored instead of opening it anew.
    ended_call_grace_s: float = Field(default=3600.0, ge=0)
    # Tansu answers ListOffsets LATEST with the last batch's base offset + 1, so faust's changelog
    # recovery stops short of any multi-record last batch: one record per produce batch avoids it.
    # On Apache Kafka set it off (batching is safe there).
    one_record_per_batch: bool = True
    datadir: Path | None = None  # None: a temporary folder removed when the worker stops
    # Tansu answers the first JoinGroup only after about half the session timeout (faust's 60 s
    # default would delay the first assignment by ~30 s), and a restarted worker rejoins after
    # ~1.7x it: no hints meanwhile. A worker whose loop is blocked longer than this is evicted.
    session_timeout_s: float = Field(default=6.0, ge=6, le=300)
    # An unreachable broker at start-up is waited for this long, then one line and exit 2.
    broker_wait_s: float = Field(default=30.0, ge=0, le=600)
    commit_interval_s: float = Field(default=1.0, gt=0, le=60)
    max_calls: int = Field(default=20_000, ge=1)  # per worker; the oldest open call is forgotten first
    stream_buffer_maxsize: int = Field(default=4096, ge=1)  # per partition, then faust pauses it
