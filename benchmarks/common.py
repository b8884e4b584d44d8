"""Helpers every benchmark uses: the command as typed, the commit, a free port, percentiles, a number
formatter for tables, and a real HTTP server in a background thread."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
#: How long a benchmark waits for its server to start (the models load first).
SERVER_START_TIMEOUT_S = 300.0


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as it was typed (``finassist bench decode ...`` or ``python -m benchmarks.decode ...``)."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return ""
    first = Path(argv[0])
    if first.suffix == ".py" and first.parent.name == "benchmarks":
        prog = f"python -m benchmarks.{first.stem}"
    else:
        prog = first.name or argv[0]
    return " ".join([prog, *(shlex.quote(a) for a in argv[1:])])


def git_commit(repo: Path = REPO_ROOT) -> str | None:
    """``git describe`` of the checkout the benchmark ran from (``-dirty`` with uncommitted changes), or None."""
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=10, check=True,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values``, interpolated linearly between ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def format_number(value: float | None, spec: str = ".2f", none: str = "-") -> str:
    """``value`` formatted for a table cell; ``none`` when there is no value."""
    return none if value is None else format(value, spec)


class BackgroundServer:
    """A ``uvicorn.Config``'s server running in a daemon thread, for the ``with`` block (real HTTP on loopback)."""

    def __init__(self, config) -> None:
        import uvicorn

        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                self.__exit__()
                raise RuntimeError("the benchmark's server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def wait_until_healthy(self, url: str, timeout_s: float = SERVER_START_TIMEOUT_S) -> None:
        """Wait for ``url`` (the service's ``/healthz``) to answer 200: the service starts before its models
        have loaded, and answers 503 until they have."""
        import httpx

        deadline = time.monotonic() + timeout_s
        while httpx.get(url).status_code != 200:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the benchmark's server did not become healthy ({url})")
            time.sleep(0.1)
