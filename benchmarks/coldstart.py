"""Cold start: seconds from launching ``python app.py`` (the web UI and the API in one process) to the
first streamed token of a chat answer, with the caches warm (the GGUF conversion and the ONNX export
already done, as they are after the first run).

The clock starts when the process is spawned. The client polls ``/healthz`` until the port answers,
then at once sends one streaming ``/v1/chat/completions`` request, as a user's first request would be
sent (a request that arrives while the models load waits for the one it needs); the figure is the
time to its first content chunk. Also timed: when the port first answers, and when ``/healthz`` is
200 (every model loaded and the web UI built: the page a browser opens). Each run is a fresh process;
the median of ``repeats`` counts. The caches are warmed by one untimed run first.

Run: ``finassist bench coldstart [--repeats 3 --backend auto --out DIR]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from assistant.machine import machine_info

from .common import REPO_ROOT, command_line, free_port, git_commit
from .timing import median

#: The question of the timed request (a short answer is enough: only the first token counts).
QUESTION = "What is EBITDA?"


def _first_token(port: int, started: float, timeout_s: float) -> dict:
    """Wait for the port, stream one chat answer, then wait for ``/healthz`` to be 200; the phases'
    seconds from ``started``."""
    import httpx

    base = f"http://127.0.0.1:{port}"
    listening = first = healthy = None
    deadline = started + timeout_s
    with httpx.Client(timeout=httpx.Timeout(timeout_s)) as client:
        while listening is None:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"the server did not answer within {timeout_s:g} s")
            try:
                client.get(f"{base}/healthz")
            except httpx.TransportError:
                time.sleep(0.02)
                continue
            listening = time.perf_counter() - started
        body = {"model": "default", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 16,
                "temperature": 0, "stream": True}
        with client.stream("POST", f"{base}/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if first is None and any(c.get("delta", {}).get("content") for c in chunk.get("choices", [])):
                    first = time.perf_counter() - started
        if first is None:
            raise RuntimeError("the answer ended without a token")
        while healthy is None:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"the server did not become healthy within {timeout_s:g} s")
            if client.get(f"{base}/healthz").status_code == 200:
                healthy = time.perf_counter() - started
            else:
                time.sleep(0.05)
    return {"listening_s": listening, "first_token_s": first, "healthy_s": healthy}


def _one_run(extra: list[str], timeout_s: float) -> dict:
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    # The app's log goes to a file, not a pipe nobody reads (a full pipe would stall the app); its tail
    # explains a start that fails.
    log = tempfile.TemporaryFile(mode="w+")
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--no-audit", *extra], cwd=REPO_ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        return _first_token(port, started, timeout_s)
    except (TimeoutError, RuntimeError) as exc:
        log.seek(0)
        raise RuntimeError(f"{exc}; the app's log ends:\n{log.read()[-2000:]}") from exc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def run_coldstart_benchmark(repeats: int = 3, backend: str | None = None, generator: str | None = None,
                            encoder: str | None = None, out_dir: str | os.PathLike = "docs/benchmarks",
                            timeout_s: float = 300.0, echo=print) -> dict:
    """Run the cold-start benchmark; print the figures and write ``coldstart.{json,md}`` to ``out_dir``.
    ``generator``/``encoder``: the app's models (default: its defaults)."""
    extra = ["--backend", backend] if backend else []
    for flag, value in (("--generator", generator), ("--encoder", encoder)):
        if value:
            extra += [flag, str(value)]
    echo("warming the caches (one untimed start)")
    _one_run(extra, timeout_s)
    runs = []
    for i in range(repeats):
        runs.append(_one_run(extra, timeout_s))
        echo(f"run {i + 1}/{repeats}: first token at {runs[-1]['first_token_s']:.2f} s")
    summary = {key: median([r[key] for r in runs]) for key in runs[0]}
    result = {
        "benchmark": "coldstart",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
        "commit": git_commit(),
        "machine": machine_info(None),
        "settings": {"repeats": repeats, "backend": backend or "auto", "generator": generator or "default",
                     "encoder": encoder or "default", "question": QUESTION},
        "runs": runs,
        "median": summary,
    }
    m = result["machine"]
    lines = [
        "# Cold start",
        "",
        "Generated by `benchmarks/coldstart.py`. Do not edit by hand.",
        "",
        f"- command: `{result['command']}`",
        f"- when: {result['created']}, commit {result['commit'] or 'unknown'}",
        f"- machine: {m['platform']}, CPU {m['cpu']} ({m['cpu_cores_available']} usable cores)",
        f"- `python app.py {' '.join(extra) or '(defaults: --backend auto)'}`, caches warm (one untimed start first); median of {repeats} "
        "fresh processes",
        "",
        "| phase (seconds from spawning the process) | median | runs |",
        "|---|---|---|",
    ]
    names = {"listening_s": "the port answers", "first_token_s": "first streamed token of a chat answer",
             "healthy_s": "/healthz is 200 (every model loaded, the web UI built)"}
    for key, label in names.items():
        lines.append(f"| {label} | {summary[key]:.2f} | {', '.join(f'{r[key]:.2f}' for r in runs)} |")
    lines.append("")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "coldstart.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "coldstart.md").write_text("\n".join(lines), encoding="utf-8")
    echo("\n".join(lines))
    echo(f"wrote {out / 'coldstart.json'}, {out / 'coldstart.md'}")
    return result
