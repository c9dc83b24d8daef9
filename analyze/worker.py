"""Runs the analysis stage: rules, sentiment engine and the faust app, until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from analyze.app import STAGE, build_app
from analyze.assist import AssistPolicy
from analyze.config import AnalyzeConfig
from analyze.embeddings import Embedder
from analyze.faust_fetch import cap_fetch_wait
from analyze.hotreload import RuleReloader
from analyze.knowledge import KnowledgeBase
from analyze.live import LiveSettings
from analyze.reread import RangeReader
from analyze.rules import RuleMatcher, RuleSet, load_rules
from analyze.sentiment import EmbeddingScorer, LinearHead, make_scorer
from analyze.state_table import ensure_changelog_topic
from pipeline.kafka import partition_count, start_client
from pipeline.stage import metrics_server

log = logging.getLogger(__name__)


class _Admin:
    """An admin client with the start()/stop() that pipeline.kafka.start_client expects."""

    def __init__(self, admin: AIOKafkaAdminClient) -> None:
        self.admin = admin

    async def start(self) -> None:
        await self.admin.start()

    async def stop(self) -> None:
        await self.admin.close()


class SourceTopicError(RuntimeError):
    """The transcript topic is missing or laid out differently from the configuration."""


async def check_source_topic(config: AnalyzeConfig) -> None:
    """Fail fast, with a clear message, before faust subscribes to a topic it cannot use.

    faust does not create a source topic, a broker that auto-creates one picks its own layout,
    and a partition count other than the configured one breaks co-partitioning.
    """
    # The first contact with the broker: an unreachable one is waited for (broker_wait_s), then
    # BrokerUnreachable, one line (faust itself would end in a traceback and unclosed clients).
    bootstrap = config.kafka_bootstrap
    started = await start_client(
        lambda: _Admin(AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=f"{config.app_id}-check")),
        bootstrap=bootstrap,
        what="admin client",
        wait_s=config.broker_wait_s,
    )
    try:
        found = await partition_count(started.admin, config.transcripts_topic)
    finally:
        await started.stop()
    if found is None:
        raise SourceTopicError(
            f"topic {config.transcripts_topic!r} does not exist; create the topics first"
            " (pipeline.kafka.create_topics)"
        )
    if found != config.partitions:
        raise SourceTopicError(
            f"topic {config.transcripts_topic!r} has {found} partitions but the worker is configured"
            f" for {config.partitions} (CALLSCOPE_PARTITIONS)"
        )


async def run(config: AnalyzeConfig, *, stop: asyncio.Event) -> None:
    """Process transcripts until `stop` is set, serving this process's /metrics meanwhile.

    The source topic must already exist. Raises RuleError for a bad rule file, SourceTopicError
    for a missing or differently partitioned transcript topic, and the crash reason if the faust
    app crashes.
    """
    with metrics_server(config.metrics_host_port(), stage=STAGE):
        await _serve(config, stop)


async def _serve(config: AnalyzeConfig, stop: asyncio.Event) -> None:
    rule_set = load_rules(config.rules_path)  # fail before touching the broker
    embedder = await asyncio.to_thread(Embedder.load) if config.embeddings else None

    def compile_rules(rules: RuleSet) -> RuleMatcher:
        return RuleMatcher(rules, embedder=embedder)

    matcher, knowledge = await asyncio.to_thread(
        lambda: (compile_rules(rule_set), KnowledgeBase.load(config.knowledge_path, embedder))
    )
    _warn_unknown_articles(rule_set, knowledge)
    if config.sentiment_engine == "embedding" and embedder is not None:
        scorer = EmbeddingScorer(embedder, LinearHead.load())  # shares the rules' embedder
    else:
        scorer = make_scorer(config.sentiment_engine, model_dir=config.sentiment_model_dir)
    live = LiveSettings(
        partial_interval_s=config.partial_sentiment_interval_s,
        rolling_window_ms=config.trend_window_ms,
        metrics_interval_ms=config.metrics_interval_ms,
    )
    policy = AssistPolicy(
        matcher,
        scorer,
        live=live,
        max_calls=config.max_calls,
        knowledge=knowledge,
        semantic_on_partials=config.semantic_on_partials,
    )
    reloader = None
    if config.rules_path is not None and config.rules_reload_interval_s > 0:
        reloader = RuleReloader(config.rules_path, matcher, compile=compile_rules, install=policy.use_rules)
    await check_source_topic(config)
    if config.state_store == "table":
        await ensure_changelog_topic(config)
    cap_fetch_wait(config.fetch_max_wait_ms)

    reader = RangeReader(
        config.kafka_bootstrap, config.transcripts_topic, config.app_id, client_id=f"{config.app_id}-reread"
    )
    await reader.start()
    async with contextlib.AsyncExitStack() as cleanup:
        cleanup.push_async_callback(reader.stop)
        datadir = config.datadir or Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="analyze")))
        app_config = config.model_copy(update={"datadir": datadir})
        app = build_app(app_config, policy, reloader=reloader, reader=reader)
        log.info(
            "analyze worker starting",
            extra={
                "app_id": config.app_id,
                "partitions": config.partitions,
                "rules_version": rule_set.version,
                "rules": len(rule_set.rules),
                "state_store": config.state_store,
            },
        )
        try:
            await app.start()
            await _until_first(stop.wait(), app.wait_until_stopped())
        finally:
            log.info("analyze worker stopping", extra={"app_id": config.app_id})
            await app.stop()
        if app.crash_reason is not None:
            raise app.crash_reason
        log.info("analyze worker stopped", extra={"app_id": config.app_id})


def _warn_unknown_articles(rule_set: RuleSet, knowledge: KnowledgeBase) -> None:
    for rule in rule_set.rules:
        if rule.knowledge not in ("", "auto") and rule.knowledge not in knowledge.article_ids:
            log.warning("rule names an unknown knowledge article", extra={"rule_id": rule.id})


async def _until_first(*aws: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.create_task(aw, name=f"analyze-wait-{i}") for i, aw in enumerate(aws)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
