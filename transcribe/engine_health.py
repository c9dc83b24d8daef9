"""Whether the model server answers, for the whole process: one line when it stops, one when it is back.

Every realtime session of a worker talks to the same server (vLLM, `callscope transcribe serve`,
or vLLM behind SageMaker). When it drops, each session reconnects on its own (with backoff, the
turn in flight replayed); this says so once for all of them: a warning when a first connection is
lost or refused, and an info line with the outage's length when a connection opens again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class EngineHealth:
    """Connection outcomes in, one line per change of state out."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._down_since: float | None = None
        self._failures = 0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def lost(self, code: str) -> None:
        """A connection was lost or refused (`code`: the SpeechError's, e.g. engine_unavailable)."""
        self._failures += 1
        if self._down_since is None:
            self._down_since = self._clock()
            log.warning("model server connection lost", extra={"code": code})

    def connected(self) -> None:
        """A connection opened: if the server was down, it is back."""
        if self._down_since is None:
            return
        outage_s = round(self._clock() - self._down_since, 1)
        log.info(
            "model server connection recovered",
            extra={"outage_s": outage_s, "failed_attempts": self._failures},
        )
        self._down_since, self._failures = None, 0


ENGINE_HEALTH = EngineHealth()  # one per process: the worker's sessions share the server
