"""CPU time of processes and a description of the machine, read from Linux's /proc (benchmark)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Machine:
    cpus: int  # CPUs this process may run on (what nproc prints)
    cpu_model: str
    load_average_1m: float  # at the start of the run: a shared box's noise shows here

    def describe(self) -> str:
        return f"{self.cpus} CPUs ({self.cpu_model}), load average {self.load_average_1m:.2f} at start"


def _stat_fields(pid: int, proc: Path = PROC) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may itself hold spaces)."""
    try:
        raw = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def process_cpu_seconds(pid: int, proc: Path = PROC) -> float | None:
    """User + system CPU seconds of a live process (all its threads); None once it is gone."""
    fields = _stat_fields(pid, proc)
    if fields is None:
        return None
    # Fields 14 and 15 of stat(5) (utime, stime), counted from the state field (3) here.
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def child_pids_named(parent_pid: int, name: str, proc: Path = PROC) -> list[int]:
    """Direct children of `parent_pid` whose command name is `name` (e.g. the embedded broker)."""
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        fields = _stat_fields(int(entry.name), proc) if comm == name else None
        if fields is not None and int(fields[1]) == parent_pid:
            found.append(int(entry.name))
    return found


def machine(proc: Path = PROC) -> Machine:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    model = platform.processor() or platform.machine()
    try:
        for line in (proc / "cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = " ".join(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    try:
        load = float((proc / "loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        load = float("nan")
    return Machine(cpus=cpus, cpu_model=model, load_average_1m=load)
