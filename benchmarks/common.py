"""Helpers every benchmark uses: the command as typed, the commit measured, percentiles, a free port.
(The machine description is ``assistant.machine.machine_info``.)"""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as it was typed (``finassist bench decode ...`` or ``python -m benchmarks.decode ...``)."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return ""
    first = argv[0]
    if Path(first).name == "decode.py" and Path(first).parent.name == "benchmarks":
        prog = "python -m benchmarks.decode"
    else:
        prog = Path(first).name or first
    return " ".join([prog, *(shlex.quote(a) for a in argv[1:])])


def git_commit() -> str | None:
    """The repository's commit (``--dirty`` when it has changes), or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=10, check=True,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values``, linearly interpolated; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def free_port() -> int:
    """A TCP port on loopback nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
