"""How busy other processes keep the machine while a benchmark runs: CPU figures taken beside other
work are not reliable, so the decode benchmark measures it and says so. (What the machine is:
``assistant.machine.machine_info``.)"""

from __future__ import annotations

import os
import time
from pathlib import Path

#: Cores kept busy by other processes above which CPU figures are flagged as unreliable.
OTHER_LOAD_WARN_CORES = 0.25


def _cpu_busy_seconds() -> float | None:
    """CPU seconds all processes have been busy since boot (Linux ``/proc/stat``), or None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:9]] + [0] * max(0, 9 - len(fields))
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _self_cpu_seconds() -> float:
    """CPU seconds of this process and of the processes it started (the ONNX backend decodes in one of
    its own): those still running, and those ended and reaped."""
    import resource

    import psutil

    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:  # ended meanwhile: counted once reaped
            continue
        total += times.user + times.system
    return total


class OtherLoad:
    """How many cores other processes kept busy: over one idle second now, and over a span of work."""

    def __init__(self) -> None:
        self.start_busy = self.start_self = self.start_wall = None

    def sample_idle(self, seconds: float = 1.0) -> float | None:
        busy0, self0, wall0 = _cpu_busy_seconds(), _self_cpu_seconds(), time.perf_counter()
        time.sleep(seconds)
        return self._cores(busy0, self0, wall0)

    def start(self) -> None:
        self.start_busy, self.start_self = _cpu_busy_seconds(), _self_cpu_seconds()
        self.start_wall = time.perf_counter()

    def since_start(self) -> float | None:
        return self._cores(self.start_busy, self.start_self, self.start_wall)

    @staticmethod
    def _cores(busy0, self0, wall0) -> float | None:
        busy1 = _cpu_busy_seconds()
        if busy0 is None or busy1 is None:
            return None
        wall = time.perf_counter() - wall0
        others = (busy1 - busy0) - (_self_cpu_seconds() - self0)
        return round(max(others, 0.0) / wall, 2) if wall > 0 else None
