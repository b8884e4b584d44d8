"""Serving benchmark: the HTTP service under concurrent load, beside naive sequential ``generate``.

A load generator on loopback sends streaming ``/v1/chat/completions`` requests to
a real server (uvicorn, in this process, on a free port) at each concurrency
level, and measures aggregate tokens/s, requests/s, time to first token and
inter-token latency (p50/p95). The same prompts then go through naive
one-at-a-time ``model.generate`` on the same loaded model, in the same run, so
the ratio batched / naive is printed. Naive sequential throughput does not
depend on how many clients wait, so it is measured once and compared with every
level.

Run: ``finassist bench serve [--concurrency 1,4,16,64 --max-tokens 128 --out DIR]``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import torch

from assistant.machine import machine_info
from assistant.settings import BatchSettings

from .charts import serve_chart
from .common import BackgroundServer, command_line, free_port, percentile
from .reports import serve_markdown
from .workload import QUESTIONS

async def _one_request(client, url: str, model: str, question: str, max_tokens: int) -> dict:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    arrivals: list[float] = []
    usage = None
    async with client.stream("POST", url, json=body) as response:
        if response.status_code != 200:
            return {"error": f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"}
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            if any(c.get("delta", {}).get("content") for c in chunk.get("choices", [])):
                arrivals.append(time.perf_counter())
    ended = time.perf_counter()
    tokens = usage["completion_tokens"] if usage else len(arrivals)
    return {
        "ttft_s": arrivals[0] - started if arrivals else None,
        "gaps_s": [b - a for a, b in zip(arrivals, arrivals[1:])],
        "tokens": tokens,
        "latency_s": ended - started,
    }


async def _load_level(base_url: str, model: str, concurrency: int, requests: int, max_tokens: int) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0), limits=limits) as client:

        async def worker(i: int) -> dict:
            async with semaphore:
                return await _one_request(
                    client, f"{base_url}/v1/chat/completions", model, QUESTIONS[i % len(QUESTIONS)], max_tokens
                )

        started = time.perf_counter()
        results = await asyncio.gather(*(worker(i) for i in range(requests)))
        wall = time.perf_counter() - started
    errors = [r["error"] for r in results if "error" in r]
    ok = [r for r in results if "error" not in r]
    tokens = sum(r["tokens"] for r in ok)
    ttfts = [r["ttft_s"] for r in ok if r["ttft_s"] is not None]
    gaps = [g for r in ok for g in r["gaps_s"]]
    return {
        "concurrency": concurrency,
        "requests": requests,
        "errors": len(errors),
        "error_examples": errors[:3],
        "wall_s": round(wall, 3),
        "completion_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 2),
        "requests_per_s": round(len(ok) / wall, 3),
        "ttft_p50_s": percentile(ttfts, 0.5),
        "ttft_p95_s": percentile(ttfts, 0.95),
        "itl_p50_ms": None if not gaps else 1000 * percentile(gaps, 0.5),
        "itl_p95_ms": None if not gaps else 1000 * percentile(gaps, 0.95),
    }


def _naive_sequential(engine, requests: int, max_tokens: int) -> dict:
    """The same prompts, one at a time, through plain ``model.generate`` (greedy)."""
    gen = engine.generator
    tokens = 0
    started = time.perf_counter()
    for i in range(requests):
        messages = [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]
        ids = gen.tokenizer(engine.render_chat(messages), return_tensors="pt", add_special_tokens=False)["input_ids"]
        ids = ids.to(gen.runtime.device)
        with torch.inference_mode():
            out = gen.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=gen.tokenizer.pad_token_id or gen.tokenizer.eos_token_id,
            )
        tokens += out.shape[1] - ids.shape[1]
    wall = time.perf_counter() - started
    return {"requests": requests, "completion_tokens": int(tokens), "wall_s": round(wall, 3),
            "tokens_per_s": round(tokens / wall, 2), "requests_per_s": round(requests / wall, 3)}


def run_serve_benchmark(
    generator: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    concurrency: Sequence[int] = (1, 4, 16, 64),
    max_tokens: int = 128,
    naive_requests: int = 8,
    max_batch_size: int = BatchSettings.max_batch_size,
    out_dir: str | Path = "docs/benchmarks",
    progress: bool = True,
    batching: str = BatchSettings.backend,
    onnx_precision: str = BatchSettings.onnx_precision,
) -> dict:
    """Run the serving benchmark; print its table and write ``serve.{json,md,png}`` to ``out_dir``."""
    import uvicorn
    from tqdm import tqdm

    from assistant.api import Assistant
    from assistant.server import create_app

    # The queue holds every waiting client of the busiest level, so no request is refused.
    queue = max(BatchSettings.max_queue, 2 * max(concurrency))
    batch = BatchSettings(backend=batching, onnx_precision=onnx_precision, max_batch_size=max_batch_size,
                          max_queue=queue)
    assistant = Assistant(generator=generator, device=device, dtype=dtype, batch_settings=batch)
    engine = assistant.engine
    model_name = engine.describe()[0]["name"]
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    levels = []
    config = uvicorn.Config(create_app(assistant), host="127.0.0.1", port=port, log_level="warning")
    with BackgroundServer(config):
        plan = [(c, max(2 * c, 8) if c <= 16 else c) for c in concurrency]
        bar = tqdm(plan, desc="serve bench", unit="level", disable=not progress)
        asyncio.run(_load_level(base_url, model_name, 2, 2, 8))  # warm-up: loads and exercises the path
        for c, n in bar:
            bar.set_postfix_str(f"concurrency {c}, {n} requests")
            levels.append(asyncio.run(_load_level(base_url, model_name, c, n, max_tokens)))
        bar.set_postfix_str(f"naive sequential, {naive_requests} requests")
        naive = _naive_sequential(engine, naive_requests, max_tokens)
    for row in levels:
        row["vs_naive"] = round(row["tokens_per_s"] / naive["tokens_per_s"], 2)
    result = {
        "benchmark": "serve",
        "command": command_line(),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(engine.runtime.device),
        "model": model_name,
        "settings": {"dtype": engine.runtime.dtype_name, "max_tokens": max_tokens, "max_batch_size": max_batch_size,
                     "batching": batching, "backend": engine.backend_name, "concurrency": list(concurrency)},
        "levels": levels,
        "naive": naive,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve.json").write_text(json.dumps(result, indent=2))
    (out / "serve.md").write_text(serve_markdown(result))
    skipped = serve_chart(result, out / "serve.png")
    print(serve_markdown(result))
    if skipped:
        print(skipped)
    print(f"wrote {out / 'serve.json'}, {out / 'serve.md'}" + ("" if skipped else f", {out / 'serve.png'}"))
    return result
