"""Sign-in throttle: after repeated wrong passwords for one user from one address, refuse for a while."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_KEYS = 10_000


class SignInThrottle:
    def __init__(
        self, *, max_failures: int = 5, window_s: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_failures
        self._window_s = window_s
        self._clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def retry_after_s(self, address: str, username: str) -> float:
        """0 when a sign-in may be tried now, else the seconds until it may."""
        failures = self._recent((address, username.lower()))
        if len(failures) < self._max:
            return 0.0
        return max(0.0, failures[0] + self._window_s - self._clock())

    def failed(self, address: str, username: str) -> None:
        key = (address, username.lower())
        failures = self._recent(key)
        failures.append(self._clock())
        while len(failures) > self._max:
            failures.popleft()
        self._failures[key] = failures
        self._failures.move_to_end(key)
        while len(self._failures) > MAX_KEYS:
            self._failures.popitem(last=False)

    def succeeded(self, address: str, username: str) -> None:
        self._failures.pop((address, username.lower()), None)

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        failures = self._failures.get(key, deque())
        cutoff = self._clock() - self._window_s
        while failures and failures[0] <= cutoff:
            failures.popleft()
        return failures
