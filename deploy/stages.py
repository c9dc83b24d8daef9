"""The pipeline's stages as subprocesses of one parent (demo, end-to-end tests, benchmark)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

STAGES = ("transcribe", "analyze", "store")
# The consumer group each stage joins with its default settings (TranscribeConfig.group_id,
# AnalyzeConfig.app_id, StoreConfig.group_id). A joined, stable group is the readiness signal.
STAGE_GROUPS = {
    "transcribe": "callscope-transcribe",
    "analyze": "callscope-analyze",
    "store": "callscope-store",
}
STOP_GRACE_S = 15.0
# Every process that serves /metrics; its subprocesses each bind a free port instead of the default.
METRICS_STAGES = ("ingest", "transcribe", "analyze", "store")
T = TypeVar("T")


class StageFailed(Exception):
    """A stage exited or did not become ready; the message names it and its log."""


@dataclass
class Stage:
    name: str
    proc: asyncio.subprocess.Process
    log_path: Path


class StageProcesses:
    """The three workers as `python -m deploy.cli <stage>` subprocesses, logs to files."""

    def __init__(self, logdir: Path, env: dict[str, str], names: tuple[str, ...] = STAGES) -> None:
        self._logdir = logdir
        self._env = env
        self._names = names
        self.stages: list[Stage] = []

    async def start(self) -> None:
        for name in self._names:
            await self.start_one(name)

    async def start_one(self, name: str) -> Stage:
        """Start (or restart) one stage; its log file is appended to. `transcribe#2` is a second
        process of the transcribe stage (its own name and log, the same command and group)."""
        log_path = self._logdir / f"{name.replace('#', '-')}.log"
        log_file = await asyncio.to_thread(open, log_path, "ab")
        with log_file:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "deploy.cli",
                name.partition("#")[0],
                env=self._env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,  # a terminal Ctrl-C reaches the parent only; it stops them
            )
        stage = Stage(name, proc, log_path)
        self.stages = [s for s in self.stages if s.name != name] + [stage]
        return stage

    async def watch(self) -> None:
        """Return never; raise StageFailed as soon as any stage exits."""
        waits = {asyncio.create_task(s.proc.wait(), name=f"wait-{s.name}"): s for s in self.stages}
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        stage = waits[next(iter(done))]
        raise StageFailed(f"{stage.name} exited with code {stage.proc.returncode}; see {stage.log_path}")

    async def stop(self) -> list[str]:
        """SIGTERM every stage, wait, kill what is left; return the stages that needed killing."""
        for stage in self.stages:
            if stage.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    stage.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        return [s.name for s in self.stages if not await _reap(s, deadline)]

    async def stop_one(self, name: str, *, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop one stage (SIGKILL simulates a crash) and wait for it to exit."""
        stage = next(s for s in self.stages if s.name == name)
        with contextlib.suppress(ProcessLookupError):
            stage.proc.send_signal(sig)
        await _reap(stage, time.monotonic() + STOP_GRACE_S)


async def _reap(stage: Stage, deadline: float) -> bool:
    """Wait for a signalled stage until the deadline, then kill it; False if it had to be killed."""
    try:
        await asyncio.wait_for(stage.proc.wait(), max(0.1, deadline - time.monotonic()))
        return True
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            stage.proc.kill()
        await stage.proc.wait()
        return False


async def wait_until_ready(bootstrap: str, timeout_s: float, names: tuple[str, ...] = STAGES) -> None:
    """Wait until each named stage's consumer group is Stable with a member (it has its partitions)."""
    from aiokafka.errors import KafkaError

    from pipeline.kafka import admin_client

    wanted = {STAGE_GROUPS[name] for name in names}
    async with admin_client(bootstrap, client_id="callscope-stages") as admin, asyncio.timeout(timeout_s):
        ready: set[str] = set()
        while ready != wanted:
            await asyncio.sleep(0.25)
            # One group per request: Tansu's answer to a multi-group DescribeGroups does not
            # decode, and its ListGroups leaves out groups that have not committed yet.
            for group in wanted - ready:
                try:
                    responses = await admin.describe_consumer_groups([group])
                except (KafkaError, ValueError):
                    continue
                for response in responses:
                    for error_code, _, state, *_, members in response.groups:
                        if error_code == 0 and state == "Stable" and members:
                            ready.add(group)


def stage_env(environ: dict[str, str], bootstrap: str, database_url: str, partitions: int) -> dict[str, str]:
    """The environment of every stage subprocess: these services, and /metrics on a free loopback port
    per process (several processes of one stage, or a stage already running on this box, never
    collide)."""
    env = dict(environ)
    env.update(
        CALLSCOPE_KAFKA_BOOTSTRAP=bootstrap,
        CALLSCOPE_DATABASE_URL=database_url,
        CALLSCOPE_PARTITIONS=str(partitions),
        CALLSCOPE_LOG_FORMAT=environ.get("CALLSCOPE_LOG_FORMAT", "text"),
        PYTHONUNBUFFERED="1",
    )
    env.update({f"CALLSCOPE_{name.upper()}_METRICS_ADDRESS": "127.0.0.1:0" for name in METRICS_STAGES})
    return env


async def cancel_on(stop: asyncio.Event, work: Awaitable[T]) -> T:
    """Await `work`; when `stop` is set first, cancel it and raise CancelledError.

    For the demo and the benchmark under run_until_signalled: a signal there means "stop now",
    and cancelling unwinds through every finally, which stops the stages and services they started
    (the stages themselves drain on the SIGTERM they get).
    """
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return task.result()
