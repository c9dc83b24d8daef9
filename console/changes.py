"""A version counter streams wait on: each waiter keeps the version it last sent, so nothing queues."""

from __future__ import annotations

import asyncio


class Changes:
    def __init__(self) -> None:
        self.version = 0
        self._changed = asyncio.Event()

    def publish(self, version: int) -> None:
        if version > self.version:
            self.version = version
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait_after(self, version: int, timeout_s: float) -> int:
        """Return the current version once it passes `version`, or after `timeout_s` anyway."""
        if self.version > version:
            return self.version
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout_s)
        except TimeoutError:
            pass
        return self.version
