"""The decode benchmark's backend comparison: single-stream decoding through the engine with each
generation backend (torch, ONNX Runtime GenAI int8 and int4), and llama.cpp on the GGUF file the
project installs as the outside anchor, in one run beside plain ``model.generate`` in float32.

For each backend: tokens/s on the question prompt (median of ``repeats`` after one warm-up, the
engine's own stream, so scheduling and detokenising are paid), the time to the first text piece,
and greedy agreement with float32 ``model.generate`` on every check prompt: the index of the first
token that differs and the share of the first N positions that agree.

llama.cpp runs through llama-cpp-python where it is installed (``pip install llama-cpp-python``
compiles llama.cpp: several minutes, a C++ compiler and cmake needed); where it is not, the row
says so. It decodes the Q4_1 GGUF itself, so its greedy text is not compared token by token.
"""

from __future__ import annotations

import gc
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path

import torch

from assistant.engine import Engine
from assistant.models import DEFAULT_GENERATOR, PRESETS, packaged_gguf
from assistant.onnx_backend import usable_cores
from assistant.settings import BatchSettings

from .timing import median, timed_stream
from .workload import BenchPrompt

#: The backends compared: (label, settings).
BACKENDS: tuple[tuple[str, BatchSettings], ...] = (
    ("torch fp32 (dynamic)", BatchSettings(backend="dynamic")),
    ("onnx int8", BatchSettings(backend="onnx", onnx_precision="int8")),
    ("onnx int4", BatchSettings(backend="onnx", onnx_precision="int4")),
)
LLAMA_CPP = "llama.cpp (GGUF Q4_1)"


def agreement(ids: list[int], reference: list[int]) -> dict:
    """Greedy agreement of ``ids`` with ``reference``: first differing index (None: identical over the
    shorter length) and the share of positions that agree over the reference's length."""
    n = min(len(ids), len(reference))
    first = next((i for i in range(n) if ids[i] != reference[i]), None)
    same = sum(a == b for a, b in zip(ids, reference))
    return {"first_difference": first, "agreeing_share": same / len(reference) if reference else None,
            "compared": n}


def _engine_row(label: str, settings: BatchSettings, generator: str | None, prompts: list[BenchPrompt],
                reference: dict[str, list[int]], new_tokens: int, repeats: int, tick: Callable[[str], None]) -> dict:
    engine = Engine(generator=generator, device="cpu", batch_settings=settings)
    try:
        started = time.perf_counter()
        engine.batcher()  # the export happens here on first use (cached afterwards)
        ready_s = time.perf_counter() - started
        timed = prompts[0]
        tick(f"{label}: warm-up")
        timed_stream(engine, timed, new_tokens)
        rates, ttfts, tokens = [], [], []
        for r in range(repeats):
            tick(f"{label}: round {r + 1}/{repeats}")
            stream, seconds, first = timed_stream(engine, timed, new_tokens)
            n = stream.result.completion_tokens
            rates.append(n / seconds)
            ttfts.append(first)
            tokens.append(n)
        agree = {}
        for prompt in prompts:
            tick(f"{label}: greedy ids, {prompt.key}")
            stream, *_ = timed_stream(engine, prompt, new_tokens)
            if prompt.key in reference:
                agree[prompt.key] = agreement(stream.new_ids, reference[prompt.key])
        return {
            "backend": label,
            "runs_as": engine.backend_name,
            "tokens_per_s": median(rates),
            "runs_tokens_per_s": rates,
            "ttft_s": median(ttfts),
            "tokens": int(median(tokens)),
            "backend_ready_s": round(ready_s, 2),
            "agreement": agree,
        }
    finally:
        engine.batcher().close()
        del engine
        gc.collect()


def gguf_file(generator: str | None) -> Path | None:
    """The GGUF file behind the generator, where it is a preset installed from PyPI as GGUF."""
    preset = PRESETS.get((generator or DEFAULT_GENERATOR).lower())
    return packaged_gguf(preset) if preset is not None else None


def _llama_cpp_row(generator: str | None, prompt: BenchPrompt, render: Callable, new_tokens: int, repeats: int,
                   tick: Callable[[str], None]) -> dict:
    row: dict = {"backend": LLAMA_CPP}
    gguf = gguf_file(generator)
    if gguf is None:
        return row | {"skipped": "no GGUF file for this generator (llama.cpp runs GGUF files only)"}
    if importlib.util.find_spec("llama_cpp") is None:
        return row | {"skipped": "llama-cpp-python is not installed: pip install llama-cpp-python (compiles "
                                 "llama.cpp: several minutes, needs a C++ compiler and cmake)"}
    from llama_cpp import Llama, __version__

    threads = usable_cores()
    llm = Llama(model_path=str(gguf), n_ctx=2048, n_threads=threads, verbose=False, seed=0)
    text = render(prompt.messages)
    tick("llama.cpp: warm-up")
    llm.create_completion(text, max_tokens=new_tokens, temperature=0.0)
    rates, ttfts = [], []
    for r in range(repeats):
        tick(f"llama.cpp: round {r + 1}/{repeats}")
        llm.reset()  # no prompt cache: every round prefills, as the engine's rounds do
        started = time.perf_counter()
        first, n = None, 0
        for _ in llm.create_completion(text, max_tokens=new_tokens, temperature=0.0, stream=True):
            n += 1  # one chunk per token
            if first is None:
                first = time.perf_counter() - started
        rates.append(n / (time.perf_counter() - started))
        ttfts.append(first)
    del llm
    return row | {"runs_as": f"llama-cpp-python {__version__}, {threads} threads, {gguf.name}",
                  "tokens_per_s": median(rates), "runs_tokens_per_s": rates, "ttft_s": median(ttfts)}


def compare_backends(generator: str | None, prompts: list[BenchPrompt], reference: dict[str, torch.Tensor],
                     render: Callable, new_tokens: int, repeats: int, bar) -> list[dict]:
    """One row per backend (see the module doc); ``reference``: float32 plain greedy ids by prompt key."""
    ref = {k: v.tolist() for k, v in reference.items()}

    def tick(what: str) -> None:
        bar.set_postfix_str(what)
        bar.update(1)

    rows = [_engine_row(label, settings, generator, prompts, ref, new_tokens, repeats, tick)
            for label, settings in BACKENDS]
    rows.append(_llama_cpp_row(generator, prompts[0], render, new_tokens, repeats, tick))
    return rows


def backend_steps(prompts: list[BenchPrompt], repeats: int) -> int:
    """Progress-bar steps of ``compare_backends``."""
    return len(BACKENDS) * (1 + repeats + len(prompts)) + 1 + repeats


def backend_ratios(rows: list[dict]) -> dict:
    """The issue's ratios, from one run: each ONNX backend's single-stream tokens/s over torch's and
    over llama.cpp's (None where a side did not run)."""
    rate = {r["backend"]: r.get("tokens_per_s") for r in rows}
    torch_rate, llama = rate.get(BACKENDS[0][0]), rate.get(LLAMA_CPP)
    out = {}
    for label, _ in BACKENDS[1:]:
        mine = rate.get(label)
        out[label] = {
            "vs_torch_fp32": mine / torch_rate if mine and torch_rate else None,
            "vs_llama_cpp": mine / llama if mine and llama else None,
        }
    return out
