"""Benchmark of the analysis stage: per-utterance cost of each engine, and final -> assist latency.

    .venv/bin/python -m bench.analyze [--legs 200] [--seconds 30] [--skip-kafka]

Part 1, in-process, one thread: p50/p95 per utterance of each sentiment engine, of redaction,
and of the whole assist policy (redaction, sentiment, rules, live figures) on the default path.
Part 2, through Kafka: the analysis worker (`callscope analyze`, faust, default settings)
on the embedded Tansu broker; this process plays `--legs` concurrent legs (a turn every ~4 s
per leg, partials every 0.5 s, then the final) and times final emitted -> its assist sentiment
event received. Targets: <= 2 ms per utterance on the default path, <= 20 ms with embeddings,
<= 50 ms p99 final -> assist. Figures are printed, never asserted: the box is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from analyze.train_sentiment import DATA, read_examples

UTTERANCES, _ = read_examples(DATA)


def percentiles(samples_s: list[float]) -> str:
    ordered = sorted(samples_s)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return f"p50 {pick(0.50):7.3f} ms  p95 {pick(0.95):7.3f} ms  p99 {pick(0.99):7.3f} ms  (n={len(ordered)})"


def time_each(fn: Callable[[str], object], texts: list[str], rounds: int = 3) -> list[float]:
    fn(texts[0])  # warm-up
    out = []
    for _ in range(rounds):
        for text in texts:
            started = time.perf_counter()
            fn(text)
            out.append(time.perf_counter() - started)
    return out


def bench_engines() -> None:
    from analyze.redact import redact
    from analyze.sentiment import EmbeddingScorer, SentimentModelError, VaderScorer

    texts = [
        f"{t} and my card is 4111 1111 1111 1111" if i % 20 == 0 else t for i, t in enumerate(UTTERANCES)
    ]
    print("per-utterance cost, one thread:")
    print(f"  vader (plain)              {percentiles(time_each(VaderScorer(domain=False).score, texts))}")
    print(f"  vader + contact lexicon    {percentiles(time_each(VaderScorer().score, texts))}")
    print(f"  redaction                  {percentiles(time_each(redact, texts))}")
    try:
        embedding = EmbeddingScorer.load()
        # Distinct texts each round: the embedder caches recent texts, which would flatter it.
        fresh = [f"{t} ({i})" for i, t in enumerate(texts * 2)]
        print(f"  embedding (MiniLM + head)  {percentiles(time_each(embedding.score, fresh, rounds=1))}")
    except SentimentModelError as exc:
        print(f"  embedding: skipped ({exc})")
    _bench_transformers(texts)
    _bench_policy(texts)


def _bench_transformers(texts: list[str]) -> None:
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError:
        print("  transformers: skipped (pip install 'callscope[models]' torch)")
        return
    from analyze.sentiment import TransformersScorer
    from tests.analyze.test_sentiment_transformers import _save_tiny_model

    del transformers
    with tempfile.TemporaryDirectory() as tmp:
        path = _save_tiny_model(Path(tmp), {0: "negative", 1: "neutral", 2: "positive"}, favoured=1)
        scorer = TransformersScorer(path)
        print(f"  transformers (tiny BERT)   {percentiles(time_each(scorer.score, texts))}  (overhead only)")


def _bench_policy(texts: list[str]) -> None:
    from analyze.assist import AssistPolicy
    from analyze.rules import RuleMatcher, load_rules
    from analyze.sentiment import VaderScorer
    from transcribe.events import FinalSegment, StageTimes, segment_id

    policy = AssistPolicy(RuleMatcher(load_rules()), VaderScorer())
    finals = [
        FinalSegment(
            call_id=f"b{i % 50}",
            leg="customer",
            segment_id=segment_id(f"b{i % 50}", "customer", i * 5000),
            start_ms=i * 5000,
            end_ms=i * 5000 + 3000,
            text=text,
            times=StageTimes(audio_captured_at=0.0, audio_received_at=0.0, emitted_at=float(i)),
        )
        for i, text in enumerate(texts * 3)
    ]
    samples = []
    for final in finals:
        started = time.perf_counter()
        policy.on_event(final)
        samples.append(time.perf_counter() - started)
    print(f"  assist policy, final, default path (exact+fuzzy, no embeddings) {percentiles(samples)}")


async def bench_kafka(legs: int, seconds: float) -> None:
    from aiokafka import AIOKafkaConsumer

    from analyze.events import Sentiment, parse_assist_event
    from deploy.runtime import embedded_kafka
    from deploy.stages import wait_until_ready
    from pipeline.kafka import create_topics, make_producer
    from pipeline.topics import TOPICS
    from transcribe.events import FinalSegment, PartialSegment, StageTimes, segment_id

    partitions = 8
    with embedded_kafka() as bootstrap:
        await create_topics(bootstrap, partitions)
        env = dict(
            os.environ,
            CALLSCOPE_KAFKA_BOOTSTRAP=bootstrap,
            CALLSCOPE_PARTITIONS=str(partitions),
            CALLSCOPE_ANALYZE_METRICS_ADDRESS="127.0.0.1:0",
            PYTHONUNBUFFERED="1",
        )
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "deploy.cli",
            "analyze",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await wait_until_ready(bootstrap, 120.0, names=("analyze",))
            consumer = AIOKafkaConsumer(
                TOPICS.assist,
                bootstrap_servers=bootstrap,
                auto_offset_reset="earliest",
                # Tansu answers an empty fetch only when the wait runs out (no wake-up on new data):
                # a reader of the assist topic that wants events at once asks with a short wait.
                fetch_max_wait_ms=10,
            )
            await consumer.start()
            producer = make_producer(bootstrap, client_id="bench-analyze", linger_ms=1)
            await producer.start()
            sent: dict[str, float] = {}
            latencies: list[float] = []
            stop = asyncio.Event()

            async def leg_loop(index: int) -> None:
                call_id, leg = f"bench-{index // 2}", ("agent", "customer")[index % 2]
                rng = random.Random(index)
                await asyncio.sleep(rng.uniform(0, 4.0))
                start_ms = 0
                while not stop.is_set():
                    words = rng.choice(UTTERANCES).split()
                    sid = segment_id(call_id, leg, start_ms)  # type: ignore[arg-type]
                    for n in range(1, len(words) + 1, 2):
                        now = time.time()
                        times = StageTimes(audio_captured_at=now, audio_received_at=now, emitted_at=now)
                        part = PartialSegment(call_id=call_id, leg=leg, segment_id=sid, start_ms=start_ms,
                                              end_ms=start_ms + n * 300, text=" ".join(words[:n]), revision=n,
                                              times=times)  # type: ignore[arg-type]  # fmt: skip
                        await producer.send(TOPICS.transcripts, part.to_bytes(), key=call_id.encode())
                        await asyncio.sleep(0.5)
                    now = time.time()
                    times = StageTimes(audio_captured_at=now, audio_received_at=now, emitted_at=now)
                    final = FinalSegment(call_id=call_id, leg=leg, segment_id=sid, start_ms=start_ms,
                                         end_ms=start_ms + len(words) * 300, text=" ".join(words) + ".",
                                         times=times)  # type: ignore[arg-type]  # fmt: skip
                    sent[sid] = now
                    await producer.send(TOPICS.transcripts, final.to_bytes(), key=call_id.encode())
                    start_ms += len(words) * 300 + 1000
                    await asyncio.sleep(rng.uniform(0.5, 1.5))

            async def collect() -> None:
                while True:
                    batch = await consumer.getmany(timeout_ms=200)
                    received = time.time()
                    for records in batch.values():
                        for record in records:
                            event = parse_assist_event(record.value)
                            if isinstance(event, Sentiment) and event.final and event.segment_id in sent:
                                latencies.append(received - sent.pop(event.segment_id))

            async with asyncio.TaskGroup() as group:
                collector = group.create_task(collect(), name="bench-collect")
                players = [group.create_task(leg_loop(i), name=f"bench-leg-{i}") for i in range(legs)]
                await asyncio.sleep(seconds)
                stop.set()
                await asyncio.gather(*players)
                await asyncio.sleep(2.0)  # the last finals' events
                collector.cancel()
            await producer.stop()
            await consumer.stop()
        finally:
            worker.terminate()
            await asyncio.wait_for(worker.wait(), timeout=30)
    if latencies:
        print(f"final -> assist sentiment through Kafka, {legs} concurrent legs, {seconds:.0f} s:")
        print(f"  {percentiles(latencies)}  mean {statistics.fmean(latencies) * 1000:.1f} ms")
    else:
        print("final -> assist: no event came back (worker failed to start?)")


def main() -> None:
    parser = argparse.ArgumentParser(description="analysis-stage benchmark")
    parser.add_argument("--legs", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--skip-kafka", action="store_true")
    args = parser.parse_args()
    bench_engines()
    if not args.skip_kafka:
        asyncio.run(bench_kafka(args.legs, args.seconds))


if __name__ == "__main__":
    main()
