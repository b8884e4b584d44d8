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
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import torch

from assistant.machine import machine_info
from benchmarks.common import command_line, free_port, percentile

QUESTIONS = [
    "Explain in detail how a company's income statement, balance sheet and cash flow statement are connected.",
    "What are the main risks of investing in high-yield corporate bonds? Answer in detail, with examples.",
    "Describe how rising interest rates affect bank net interest margins, mortgage demand and equity valuations.",
    "Explain what free cash flow is, how it is calculated and why analysts care about it, step by step.",
    "Walk through how a leveraged buyout is financed and what drives the returns of the buyer.",
    "Explain the difference between EBITDA, operating income and net income, with a worked example.",
    "What does a company's debt-to-equity ratio tell an analyst, and what are its limitations?",
    "Describe how currency movements affect the reported earnings of a multinational company.",
]


class _Server:
    """uvicorn serving our app in a background thread (real HTTP on loopback)."""

    def __init__(self, app, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 300
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


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


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_markdown(result: dict) -> str:
    m, s = result["machine"], result["settings"]
    lines = [
        "# Serving benchmark",
        "",
        "Generated by `benchmarks/serve.py`. Do not edit by hand.",
        "",
        f"- command: `{result['command']}`",
        f"- when: {result['when']}",
        f"- machine: {m['platform']}, CPU {m['cpu']} ({m['cpu_cores_available']} usable cores), "
        f"device {m['device']}{', GPU ' + m['cuda_device'] if m.get('cuda_device') else ''}; torch {m['torch']}, transformers {m['transformers']}",
        f"- model: {result['model']}, dtype {s['dtype']}; {s['max_tokens']} max tokens per request, greedy; "
        f"server batcher: max batch {s['max_batch_size']}",
        "",
        "| concurrency | requests | tok/s | req/s | TTFT p50 s | TTFT p95 s | ITL p50 ms | ITL p95 ms | vs naive | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["levels"]:
        lines.append(
            f"| {row['concurrency']} | {row['requests']} | {row['tokens_per_s']:.1f} | {row['requests_per_s']:.3f} | "
            f"{_fmt(row['ttft_p50_s'], '.2f')} | {_fmt(row['ttft_p95_s'], '.2f')} | {_fmt(row['itl_p50_ms'], '.0f')} | "
            f"{_fmt(row['itl_p95_ms'], '.0f')} | {row['vs_naive']:.2f}x | {row['errors']} |"
        )
    n = result["naive"]
    lines += [
        "",
        f"Naive baseline (same prompts, one at a time, plain `model.generate`, same loaded model, same run): "
        f"{n['requests']} requests, {n['tokens_per_s']:.1f} tok/s, {n['requests_per_s']:.3f} req/s. "
        "`vs naive` = aggregate tok/s of the level / naive tok/s.",
        "",
        "TTFT includes queueing: a request that arrives while a batch runs waits for it to end.",
        "",
        "![tokens/s by concurrency](serve.png)",
        "",
    ]
    return "\n".join(lines)


def write_chart(result: dict, png: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no chart written"
    levels = result["levels"]
    xs = [str(r["concurrency"]) for r in levels]
    fig, ax = plt.subplots(figsize=(7, 4))
    bars = ax.bar(xs, [r["tokens_per_s"] for r in levels], color="tab:blue", label="server (batched)")
    ax.bar_label(bars, labels=[f"{r['tokens_per_s']:.0f}\n{r['vs_naive']:.1f}x" for r in levels], fontsize=8)
    ax.axhline(result["naive"]["tokens_per_s"], color="tab:red", linestyle="--", label="naive sequential generate")
    ax.set_ylim(0, 1.2 * max(max(r["tokens_per_s"] for r in levels), result["naive"]["tokens_per_s"]))
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("aggregate tokens/s")
    ax.set_title(f"{result['model']} on {result['machine']['device']}: streaming chat completions")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return None


def run_serve_benchmark(
    generator: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    concurrency: Sequence[int] = (1, 4, 16, 64),
    max_tokens: int = 128,
    naive_requests: int = 8,
    max_batch_size: int = 16,
    out_dir: str | Path = "docs/benchmarks",
    progress: bool = True,
    batching: str = "auto",
) -> dict:
    from tqdm import tqdm

    from assistant.api import Assistant
    from assistant.settings import BatchSettings
    from assistant.server import create_app

    settings = BatchSettings(max_batch_size=max_batch_size, max_queue=max(64, 2 * max(concurrency)), backend=batching)
    assistant = Assistant(generator=generator, device=device, dtype=dtype, batch_settings=settings)
    engine = assistant.engine
    model_name = engine.describe()[0]["name"]
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    levels = []
    with _Server(create_app(assistant), port):
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
                     "batching": batching, "concurrency": list(concurrency)},
        "levels": levels,
        "naive": naive,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve.json").write_text(json.dumps(result, indent=2))
    (out / "serve.md").write_text(render_markdown(result))
    skipped = write_chart(result, out / "serve.png")
    print(render_markdown(result))
    if skipped:
        print(skipped)
    print(f"wrote {out / 'serve.json'}, {out / 'serve.md'}" + ("" if skipped else f", {out / 'serve.png'}"))
    return result
