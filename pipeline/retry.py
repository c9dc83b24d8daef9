"""One retry policy for every stage: a frozen value of attempts and a doubling delay."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Delays double from `base_delay_s` up to `max_delay_s`; `attempts` None retries forever
    (the store never drops a batch), a number gives up after that many retries (a speech session
    then reports an error for its leg)."""

    base_delay_s: float = 0.25
    max_delay_s: float = 8.0
    attempts: int | None = None

    def __post_init__(self) -> None:
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("need 0 <= base_delay_s <= max_delay_s")
        if self.attempts is not None and self.attempts < 0:
            raise ValueError("attempts must be >= 0 (or None: no limit)")

    def delay_s(self, retry: int) -> float:
        """Delay before retry number `retry` (1-based)."""
        return min(self.max_delay_s, self.base_delay_s * 2 ** min(max(retry, 1) - 1, 30))

    def allows(self, retry: int) -> bool:
        """Whether retry number `retry` (1-based) may be made."""
        return self.attempts is None or retry <= self.attempts
