"""Timed generation for the decode benchmark: plain ``model.generate`` as a transformers user would
call it, and the engine's ``generate`` and ``stream``, each timed around a device synchronisation."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from assistant.engine import Engine, GenerationRequest, LoadedModel
from assistant.types import Message, SamplingParams

from .workload import BenchPrompt

#: The generation paths compared, by the name the results give them.
PLAIN = "plain model.generate"
ENGINE_GENERATE = "engine.generate"
ENGINE_STREAM = "engine.stream"
PATHS = (PLAIN, ENGINE_GENERATE, ENGINE_STREAM)


@dataclass
class Run:
    """One timed generation: which path, which prompt, tokens produced and seconds taken."""

    path: str
    prompt: str
    tokens: int
    wall_s: float
    ttft_s: float | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s > 0 else 0.0


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so a clock read after it includes that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def chat_input_ids(loaded: LoadedModel, engine: Engine, messages: Sequence[Message]) -> torch.Tensor:
    """What a plain transformers user would do: the tokenizer's chat template, tokenized."""
    tok = loaded.tokenizer
    if getattr(tok, "chat_template", None):
        out = tok.apply_chat_template(list(messages), add_generation_prompt=True, return_tensors="pt")
        return out["input_ids"] if hasattr(out, "keys") else out
    # A base model without a chat template: the engine's plain conversation format.
    return tok(engine.render_chat(messages), return_tensors="pt", add_special_tokens=False)["input_ids"]


def _pad_id(loaded: LoadedModel) -> int | None:
    if loaded.model.generation_config.pad_token_id is not None:
        return None  # generate already knows it
    pad = loaded.tokenizer.pad_token_id
    if pad is None:
        pad = loaded.model.generation_config.eos_token_id
        pad = pad[0] if isinstance(pad, list) else pad
    return pad


def plain_generate(loaded: LoadedModel, input_ids: torch.Tensor, new_tokens: int) -> tuple[torch.Tensor, float]:
    """``model.generate`` called directly, greedy, forced to exactly ``new_tokens``; (new ids, seconds)."""
    device = loaded.runtime.device
    ids = input_ids.to(device)
    kwargs: dict = {
        "attention_mask": torch.ones_like(ids),
        "max_new_tokens": new_tokens,
        "min_new_tokens": new_tokens,
        "do_sample": False,
    }
    pad = _pad_id(loaded)
    if pad is not None:
        kwargs["pad_token_id"] = pad
    sync(device)
    started = time.perf_counter()
    out = loaded.model.generate(ids, **kwargs)
    sync(device)
    seconds = time.perf_counter() - started
    return out[0, ids.shape[1] :].cpu(), seconds


def engine_generate(engine: Engine, prompt: BenchPrompt, new_tokens: int) -> tuple[Run, str]:
    """``Engine.generate``, greedy, up to ``new_tokens``; (the run, its text)."""
    device = engine.runtime.device
    params = SamplingParams(max_new_tokens=new_tokens)
    sync(device)
    started = time.perf_counter()
    gen = engine.generate(prompt.messages, params)
    sync(device)
    wall = time.perf_counter() - started
    run = Run(ENGINE_GENERATE, prompt.key, gen.completion_tokens, wall, None, gen.finish_reason, gen.prompt_tokens)
    return run, gen.text


def timed_stream(engine: Engine, prompt: BenchPrompt, new_tokens: int) -> tuple[GenerationRequest, float, float | None]:
    """``Engine.stream``, greedy, iterated to the end: (its handle, seconds, seconds to its first text piece)."""
    device = engine.runtime.device
    sync(device)
    started = time.perf_counter()
    first: float | None = None
    stream = engine.stream(prompt.messages, SamplingParams(max_new_tokens=new_tokens))
    for piece in stream:
        if first is None and piece:
            first = time.perf_counter() - started
    sync(device)
    return stream, time.perf_counter() - started, first


def engine_stream(engine: Engine, prompt: BenchPrompt, new_tokens: int) -> tuple[Run, str]:
    """``Engine.stream`` iterated to the end, with the time to its first text piece; (the run, its text)."""
    stream, wall, first = timed_stream(engine, prompt, new_tokens)
    gen = stream.result
    run = Run(ENGINE_STREAM, prompt.key, gen.completion_tokens, wall, first, gen.finish_reason, gen.prompt_tokens)
    return run, gen.text


def median(values: Sequence[float | None]) -> float | None:
    """The median of the values that are not None; None when there are none."""
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def first_difference(a: torch.Tensor, b: torch.Tensor) -> int | None:
    """The index of the first token where two id sequences differ (the shorter length when one is a
    prefix of the other); None when they are identical."""
    n = min(a.shape[0], b.shape[0])
    diff = (a[:n] != b[:n]).nonzero()
    if diff.numel():
        return int(diff[0, 0])
    return None if a.shape[0] == b.shape[0] else n
