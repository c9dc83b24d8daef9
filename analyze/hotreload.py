"""Hot reload of the rule file: poll, validate, compile, swap whole; keep the old set on a bad file.

`RuleReloader.check()` is synchronous and cheap when nothing changed (one stat); the faust app
calls it from a timer in a thread, because compiling a new set embeds its intent examples. A file
is accepted only if it parses, validates and compiles, and, if its rules differ from the running
set, carries a new version: event ids include the version, so changed rules under an old version
would collide with the events they already produced.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from analyze import metrics
from analyze.rules import RuleError, RuleMatcher, RuleSet, parse_rules_yaml

log = logging.getLogger(__name__)

Outcome = Literal["unchanged", "reloaded", "rejected"]


@dataclass(frozen=True, slots=True)
class ReloadResult:
    outcome: Outcome
    version: str  # the version running after the check
    problems: tuple[str, ...] = ()


class RuleReloader:
    """Watches one rule file by modification time, size and content hash."""

    def __init__(
        self,
        path: str | Path,
        current: RuleMatcher,
        *,
        compile: Callable[[RuleSet], RuleMatcher],
        install: Callable[[RuleMatcher], None],
    ) -> None:
        self._path = Path(path)
        self._current = current
        self._compile = compile
        self._install = install
        self._stat = self._signature()
        self._digest = self._read_digest()

    @property
    def current(self) -> RuleMatcher:
        return self._current

    def check(self) -> ReloadResult:
        """Reload if the file changed; never raises for a bad file (logs and counts it instead)."""
        signature = self._signature()
        if signature == self._stat:
            return ReloadResult("unchanged", self._current.rule_set.version)
        self._stat = signature
        try:
            raw = self._path.read_bytes()
        except OSError as exc:
            return self._reject([f"cannot read file: {exc.strerror or type(exc).__name__}"])
        digest = hashlib.sha256(raw).hexdigest()
        if digest == self._digest:
            return ReloadResult("unchanged", self._current.rule_set.version)  # touched, not changed
        self._digest = digest
        try:
            rule_set = parse_rules_yaml(raw.decode("utf-8"), source=str(self._path))
        except UnicodeDecodeError:
            return self._reject(["not UTF-8 text"])
        except RuleError as exc:
            return self._reject(exc.problems)
        running = self._current.rule_set
        if rule_set == running:
            return ReloadResult("unchanged", running.version)  # comments or layout only
        if rule_set.version == running.version:
            return self._reject([f"rules changed but 'version' is still {running.version!r}: bump it"])
        try:
            compiled = self._compile(rule_set)
        except Exception as exc:  # a model failure must not take the running rules down
            return self._reject([f"cannot compile: {type(exc).__name__}"])
        self._current = compiled
        self._install(compiled)
        metrics.RULE_RELOADS.labels(outcome="reloaded").inc()
        log.info(
            "rule set reloaded",
            extra={
                "path": str(self._path),
                "from_version": running.version,
                "rules_version": rule_set.version,
            },
        )
        return ReloadResult("reloaded", rule_set.version)

    def _reject(self, problems: list[str] | tuple[str, ...]) -> ReloadResult:
        metrics.RULE_RELOADS.labels(outcome="rejected").inc()
        version = self._current.rule_set.version
        # Problems quote the rule file (keys, positions, phrases), never transcript text.
        log.error(
            "rule file rejected; keeping the running rules",
            extra={"path": str(self._path), "rules_version": version, "problems": list(problems)[:20]},
        )
        return ReloadResult("rejected", version, tuple(problems))

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = self._path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read_digest(self) -> str | None:
        try:
            return hashlib.sha256(self._path.read_bytes()).hexdigest()
        except OSError:
            return None
