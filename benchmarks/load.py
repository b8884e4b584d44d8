"""Load test: many clients against the service for a fixed time, with ``finassist serve``'s protections.

``clients`` concurrent clients on loopback each send chat completions (short answers) one after the
other for ``seconds``; a server that cannot serve a request in time must refuse it (429/503 with
Retry-After) rather than let it wait past ``--timeout``. Reported: answers by status code, latency
of successful and refused answers (p50/p95/p99/max), requests per second, the server process's
memory (resident set before, peak during, after; the clients run in a process of their own) and the
server's health afterwards. Bounded: every client stops at the deadline and every request has a
client-side timeout.

Run: ``finassist bench load [--clients 200 --seconds 60 --max-tokens 16 --timeout 10 --out DIR]``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from datetime import datetime, timezone
from pathlib import Path

from assistant.machine import machine_info
from assistant.settings import BatchSettings, ServiceSettings

from .common import BackgroundServer, command_line, free_port, percentile
from .reports import load_markdown
from .workload import QUESTIONS


def _rss_mb() -> float:
    """Resident memory of this process (the server) and of the processes it started (the ONNX backend
    decodes in one of its own), the clients' process left out."""
    import psutil

    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            if "multiprocessing" not in " ".join(child.cmdline()):  # the clients' pool and its helper
                total += child.memory_info().rss
        except psutil.Error:  # ended meanwhile
            pass
    return total / 1e6


class _MemoryWatch:
    """The process's peak resident memory, sampled every 0.2 s in a thread."""

    def __init__(self) -> None:
        self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, _rss_mb())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


async def _client(base_url: str, index: int, deadline: float, max_tokens: int, timeout: float,
                  results: list[tuple[int | str, float]]) -> None:
    import httpx

    question = QUESTIONS[index % len(QUESTIONS)]
    body = {"messages": [{"role": "user", "content": question}], "max_tokens": max_tokens, "temperature": 0}
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as client:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                r = await client.post("/v1/chat/completions", json=body)
                status: int | str = r.status_code
                if status in (429, 503):  # a refusal says when to come back: honour it, within the deadline
                    wait = float(r.headers.get("retry-after", "1"))
                    results.append((status, time.monotonic() - started))
                    await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))
                    continue
            except httpx.TimeoutException:
                status = "client timeout"
            except httpx.HTTPError as exc:
                status = f"connection error ({type(exc).__name__})"
            results.append((status, time.monotonic() - started))


async def _run_load(base_url: str, clients: int, seconds: float, max_tokens: int, timeout: float) -> list:
    results: list[tuple[int | str, float]] = []
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(_client(base_url, i, deadline, max_tokens, timeout, results) for i in range(clients)))
    return results


def _load_in_process(base_url: str, clients: int, seconds: float, max_tokens: int, timeout: float) -> list:
    """``_run_load`` in a process of its own (``ProcessPoolExecutor``): the clients' event loop then
    neither waits for the server's Python work nor slows it, and the memory measured is the server's."""
    return asyncio.run(_run_load(base_url, clients, seconds, max_tokens, timeout))


def _latency(values: list[float]) -> dict:
    return {name: (round(v, 3) if (v := percentile(values, q)) is not None else None)
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))}


def run_load_benchmark(
    generator: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    clients: int = 200,
    seconds: float = 60,
    max_tokens: int = 16,
    timeout: float = 10,
    max_batch_size: int = BatchSettings.max_batch_size,
    max_queue: int = BatchSettings.max_queue,
    out_dir: str | Path | None = "docs/benchmarks",
    encoder: str | None = None,
    rounds: int = 1,
) -> dict:
    """Run the load test; write ``load.json`` and ``load.md`` under ``out_dir`` (None: write nothing).
    ``rounds``: the load repeated against the same server, its memory taken after each (a server that
    keeps growing round after round leaks; one that grows once and stays has warmed up). The status
    counts and latencies are those of every round together."""
    import httpx

    from assistant.api import Assistant
    from assistant.guards import uvicorn_config
    from assistant.server import create_app

    if clients < 1 or seconds <= 0 or seconds > 3600 or rounds < 1:
        raise ValueError("clients and rounds must be positive and seconds in (0, 3600]")
    batch = BatchSettings(max_batch_size=max_batch_size, max_queue=max_queue)
    assistant = Assistant(generator=generator, encoder=encoder, device=device, dtype=dtype, audit=None,
                          batch_settings=batch)
    engine = assistant.engine
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    limits = ServiceSettings(request_timeout_s=timeout, max_tokens_limit=max(max_tokens, 16),
                             max_connections=max(ServiceSettings.max_connections, 2 * clients))
    app = create_app(assistant, settings=limits)
    config = uvicorn_config(app, "127.0.0.1", port, log_level="warning", max_connections=limits.max_connections)
    with BackgroundServer(config) as server:
        server.wait_until_healthy(f"{base_url}/healthz")
        model_name = engine.describe()[0]["name"]
        before = _rss_mb()
        started = time.monotonic()
        results: list = []
        per_round = []
        with _MemoryWatch() as watch, ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            for _ in range(rounds):
                found = pool.submit(_load_in_process, base_url, clients, seconds, max_tokens, timeout + 5).result()
                results += found
                per_round.append({"status_counts": dict(sorted(Counter(str(s) for s, _ in found).items())),
                                  "memory_after_mb": round(_rss_mb(), 1)})
        elapsed = time.monotonic() - started
        healthy = httpx.get(f"{base_url}/healthz", timeout=30).status_code == 200
        after = _rss_mb()
    counts = Counter(str(status) for status, _ in results)
    ok = [t for s, t in results if s == 200]
    refused = [t for s, t in results if s in (429, 503)]
    result = {
        "benchmark": "load",
        "command": command_line(),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(engine.runtime.device),
        "model": model_name,
        "settings": {"clients": clients, "seconds": seconds, "max_tokens": max_tokens, "timeout": timeout,
                     "max_batch_size": max_batch_size, "max_queue": max_queue, "dtype": engine.runtime.dtype_name,
                     "rounds": rounds},
        "rounds": per_round,
        "status_counts": dict(sorted(counts.items())),
        "requests": len(results),
        "requests_per_s": round(len(results) / elapsed, 2),
        "ok_per_s": round(len(ok) / elapsed, 2),
        "latency_s": {"ok": _latency(ok), "refused": _latency(refused)},
        "memory_mb": {"before": round(before, 1), "peak": round(watch.peak, 1), "after": round(after, 1)},
        "healthy_after": healthy,
        "no_5xx": not any(isinstance(s, int) and s >= 500 and s != 503 for s, _ in results),
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "load.json").write_text(json.dumps(result, indent=2))
        (out / "load.md").write_text(load_markdown(result))
        print(f"wrote {out / 'load.json'}, {out / 'load.md'}")
    print(load_markdown(result))
    return result
