"""The stage toolkit: run until signalled with a drain deadline, a /metrics server, flush-then-commit.

Every long-running stage is `async def main(stop: asyncio.Event)`: it serves until `stop` is set,
then drains (finishes what is in flight, flushes, commits) and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # aiokafka loads in flush_then_commit: the SageMaker bridge image has none
    from aiokafka import TopicPartition
    from aiokafka.structs import OffsetAndMetadata

log = logging.getLogger(__name__)

StageMain = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


async def run_until_signalled(stage_main: StageMain, *, drain_deadline_s: float | None = None) -> None:
    """Run a stage; the first SIGTERM/SIGINT asks it to stop and drain, a second one (or the
    drain deadline passing) cancels it."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    task = asyncio.current_task()
    deadline: asyncio.TimerHandle | None = None

    def cancel(why: str) -> None:
        log.warning("stage cancelled", extra={"cause": why})
        if task is not None:
            task.cancel()

    def on_signal(signame: str) -> None:
        nonlocal deadline
        if stop.is_set():
            cancel("second_signal")
            return
        log.info("stopping", extra={"signal": signame, "drain_deadline_s": drain_deadline_s})
        stop.set()
        if drain_deadline_s is not None:
            deadline = loop.call_later(drain_deadline_s, cancel, "drain_deadline")

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    try:
        await stage_main(stop)
    finally:
        if deadline is not None:
            deadline.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


class MetricsServerError(Exception):
    """The /metrics address cannot be served (in use, not an address of this host)."""


@contextlib.contextmanager
def metrics_server(address: tuple[str, int] | None, *, stage: str) -> Iterator[int | None]:
    """Serve this process's Prometheus metrics at (host, port) while inside; yields the bound port."""
    if address is None:
        yield None
        return
    from prometheus_client import start_http_server

    host, port = address
    try:
        server, thread = start_http_server(port, addr=host)
    except OSError as exc:
        raise MetricsServerError(f"cannot serve /metrics on {host}:{port}: {exc.strerror}") from None
    bound = server.server_address[1]
    log.info("metrics served", extra={"stage": stage, "host": host, "port": bound})
    try:
        yield bound
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Flushable(Protocol):
    async def flush(self) -> None: ...


class Committer(Protocol):
    async def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None: ...


async def flush_then_commit(
    producer: Flushable | None, consumer: Committer, offsets: Mapping[TopicPartition, int]
) -> bool:
    """Make what was produced durable, then commit `offsets` (the next offset to read per partition).

    Returns False, logged, when the broker refuses the commit (e.g. after a rebalance): the
    records are read again by the next owner, which is safe because every durable id is
    deterministic. A flush error propagates: nothing may be committed past an unsent record.
    """
    from aiokafka.errors import CommitFailedError, KafkaError
    from aiokafka.structs import OffsetAndMetadata

    if not offsets:
        return True
    if producer is not None:
        await producer.flush()
    try:
        await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()})
    except (CommitFailedError, KafkaError) as exc:
        log.warning("offset commit failed", extra={"error": type(exc).__name__})
        return False
    return True
