"""Where a figure was measured: one description of the machine, embedded in every run file,
evaluation report and benchmark result, so a number can be traced to the hardware it ran on."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    for line in _cpuinfo_lines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> set[str]:
    """The CPU's instruction-set flags (empty where ``/proc/cpuinfo`` is not there)."""
    for line in _cpuinfo_lines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def usable_cores() -> int:
    """Cores this process may run on (its affinity), which a container may set below the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def machine_info(device: Any = None) -> dict:
    """Python, torch and transformers versions, CPU model, cores and bf16 instructions, torch
    threads, the load average, and the CUDA device when there is one. ``device`` (a torch device
    or its name) is the one the measurement ran on: its GPU is described; default the first GPU."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_available": usable_cores(),
        "cpu_bf16_instructions": sorted(cpu_flags() & {"avx512_bf16", "amx_bf16"}),
        "load_average": load_average(),
        "cuda_device": None,
    }
    try:
        import torch
    except ImportError:
        return info
    info["torch_threads"] = torch.get_num_threads()
    device = torch.device(device) if device is not None else None
    if device is not None:
        info["device"] = str(device)
    if (device is None or device.type == "cuda") and torch.cuda.is_available():
        index = device if device is not None and device.index is not None else 0
        info["cuda_device"] = torch.cuda.get_device_name(index)
        info["cuda_capability"] = ".".join(map(str, torch.cuda.get_device_capability(index)))
        info["cuda"] = torch.version.cuda
    return info


def _cpuinfo_lines() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
