"""Decode benchmark: how fast the engine generates, beside plain ``model.generate``.

Two measurements, one run, one loaded model per dtype:

1. **Engine vs plain.** For fixed chat prompts (a financial question, and a
   ~300-word earnings-call excerpt from ``../shared/data/summarization/ectsum/val.jsonl``
   when that file is there), single-stream greedy decoding through

   * ``plain``: ``tokenizer.apply_chat_template`` + ``model.generate(input_ids,
     max_new_tokens=N, min_new_tokens=N, do_sample=False)`` on the engine's own
     model object (``engine.generator.model``), forced to exactly N tokens;
   * ``engine.generate``: ``Engine.generate(messages, SamplingParams(max_new_tokens=N))``;
   * ``engine.stream``: ``Engine.stream(...)`` iterated to the end, with the time
     to the first streamed text piece.

   Tokens/s is completion tokens / wall time (prefill included), the median of
   ``repeats`` timed rounds after one warm-up round. The engine may stop at the
   end-of-turn token before N; its rate is computed from the tokens it produced
   (``Generation.completion_tokens``) and such rows are marked.

2. **dtype.** For each dtype, the generator is loaded with ``Engine(dtype=...)``,
   plain greedy decode tokens/s is measured on the question prompt, and the
   greedy token ids for three prompts (N tokens each) are compared with float32's:
   identical, or the index of the first token that differs. The fastest dtype
   whose greedy output is identical to float32 is the policy for the default
   dtype (``assistant/device.py``).

Results: a table on stdout, and ``decode.json``, ``decode.md`` and (when
matplotlib is installed) ``decode.png`` in ``out_dir``.

Run: ``finassist bench decode [--tokens N --repeats R --dtypes float32,bfloat16 --out DIR]``
or ``python -m benchmarks.decode`` with the same options.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import torch

from assistant.device import QUANTIZED, default_dtype, parse_device, parse_dtype
from assistant.chat import render_chat
from assistant.engine import Engine
from assistant.errors import DeviceError, InvalidParameterError
from assistant.machine import load_average, machine_info

from .backends import backend_ratios, backend_steps, compare_backends
from .charts import decode_chart
from .common import command_line, git_commit
from .machine_load import OTHER_LOAD_WARN_CORES, OtherLoad
from .reports import decode_markdown, decode_text
from .timing import (
    ENGINE_GENERATE,
    ENGINE_STREAM,
    PATHS,
    PLAIN,
    Run,
    chat_input_ids,
    engine_generate,
    engine_stream,
    first_difference,
    median,
    plain_generate,
)
from .workload import BenchPrompt, build_prompts


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="decode bench", unit="run", file=sys.stderr, disable=not enabled, leave=False)



# ------------------------------------------------------------------ measurements


def _engine_vs_plain(
    engine: Engine, prompts: list[BenchPrompt], new_tokens: int, repeats: int, bar
) -> list[dict]:
    loaded = engine.generator
    tok = loaded.tokenizer
    rows: list[dict] = []
    for prompt in prompts:
        input_ids = chat_input_ids(loaded, engine, prompt.messages)
        runs: dict[str, list[Run]] = {p: [] for p in PATHS}
        plain_ttft: list[float] = []
        texts: dict[str, str] = {}
        plain_ids = None

        def plain_run() -> tuple[Run, float]:
            nonlocal plain_ids
            # Time to first token of plain generate: prefill plus one decode step.
            _, ttft = plain_generate(loaded, input_ids, 1)
            ids, seconds = plain_generate(loaded, input_ids, new_tokens)
            plain_ids = ids
            return Run(PLAIN, prompt.key, int(ids.shape[0]), seconds, None, "length", int(input_ids.shape[1])), ttft

        def generate_run() -> tuple[Run, None]:
            run, texts[ENGINE_GENERATE] = engine_generate(engine, prompt, new_tokens)
            return run, None

        def stream_run() -> tuple[Run, None]:
            run, texts[ENGINE_STREAM] = engine_stream(engine, prompt, new_tokens)
            return run, None

        order = [(PLAIN, plain_run), (ENGINE_GENERATE, generate_run), (ENGINE_STREAM, stream_run)]
        for round_ in range(repeats + 1):  # round 0 is the warm-up
            warm = round_ == 0
            bar.set_postfix_str(f"{prompt.key}: {'warm-up' if warm else f'round {round_}/{repeats}'}")
            # The paths take turns going first, so a drift in machine load does not favour one of them.
            shift = round_ % len(order)
            for path, fn in order[shift:] + order[:shift]:
                run, ttft = fn()
                if not warm:
                    runs[path].append(run)
                    if ttft is not None:
                        plain_ttft.append(ttft)
            bar.update(1)

        plain_rate = median([r.tokens_per_s for r in runs[PLAIN]])
        for path in PATHS:
            rs = runs[path]
            rate = median([r.tokens_per_s for r in rs])
            tokens = int(statistics.median([r.tokens for r in rs]))
            row = {
                "prompt": prompt.key,
                "prompt_title": prompt.title,
                "path": path,
                "prompt_tokens": rs[-1].prompt_tokens,
                "completion_tokens": tokens,
                "wall_s": median([r.wall_s for r in rs]),
                "tokens_per_s": rate,
                "ttft_s": median(plain_ttft) if path == PLAIN else median([r.ttft_s for r in rs]),
                "ttft_kind": "generate(max_new_tokens=1)" if path == PLAIN else (
                    "first streamed text piece" if path == ENGINE_STREAM else None
                ),
                "ratio_vs_plain": (rate / plain_rate) if path != PLAIN and plain_rate else None,
                "finish_reason": rs[-1].finish_reason,
                "short": tokens < new_tokens,
                "runs": [asdict(r) | {"tokens_per_s": r.tokens_per_s} for r in rs],
            }
            if path != PLAIN:
                # Greedy either way: the engine's text must be plain's first tokens (less an end-of-turn token).
                # An engine run that ended on the end-of-turn token counts it; plain (forced) has another there.
                n = tokens - 1 if row["finish_reason"] == "stop" and tokens > 0 else tokens
                expected = tok.decode(plain_ids[:n], skip_special_tokens=True).strip()
                row["same_text_as_plain"] = texts[path] == expected
                row["prompt_tokens_match_plain"] = rs[-1].prompt_tokens == int(input_ids.shape[1])
            rows.append(row)
    return rows


def _dtype_runs(
    engine: Engine, prompts: list[BenchPrompt], new_tokens: int, repeats: int, bar, label: str
) -> dict:
    """Plain greedy tokens/s on the first prompt, and the greedy ids of every prompt."""
    loaded = engine.generator
    timed = prompts[0]
    input_ids = chat_input_ids(loaded, engine, timed.messages)
    bar.set_postfix_str(f"{label}: warm-up")
    plain_generate(loaded, input_ids, new_tokens)
    bar.update(1)
    rates, walls = [], []
    ids_by_prompt: dict[str, torch.Tensor] = {}
    for r in range(repeats):
        bar.set_postfix_str(f"{label}: round {r + 1}/{repeats}")
        ids, seconds = plain_generate(loaded, input_ids, new_tokens)
        ids_by_prompt.setdefault(timed.key, ids)
        rates.append(ids.shape[0] / seconds)
        walls.append(seconds)
        bar.update(1)
    for prompt in prompts[1:]:
        bar.set_postfix_str(f"{label}: greedy ids, {prompt.key}")
        ids, _ = plain_generate(loaded, chat_input_ids(loaded, engine, prompt.messages), new_tokens)
        ids_by_prompt[prompt.key] = ids
        bar.update(1)
    return {
        "tokens_per_s": median(rates),
        "wall_s": median(walls),
        "tokens": new_tokens,
        "runs_tokens_per_s": rates,
        "load_s": round(loaded.load_seconds, 2),
        "ids": ids_by_prompt,
    }


def _free_memory() -> None:
    """Give back the memory of engines no longer referenced (their models hold cycles), CUDA's cache too."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- run


def dtypes_to_compare(dtypes: str | Sequence[str] | None, device: torch.device) -> list[str]:
    """The dtypes of part 2, float32 first (the reference); by default float32 and bfloat16, float16 too on CUDA."""
    if dtypes is None or (isinstance(dtypes, str) and not dtypes.strip()):
        names = ["float32", "bfloat16", "float16"] if device.type == "cuda" else ["float32", "bfloat16"]
    else:
        raw = dtypes.split(",") if isinstance(dtypes, str) else list(dtypes)
        names = []
        for item in raw:
            key = str(item).strip().lower()
            if key in QUANTIZED:  # int8: fp32 weights quantised after loading (assistant/device.py)
                names.append(key)
                continue
            parsed = parse_dtype(key) if key else None
            if parsed is None:
                raise InvalidParameterError(
                    f"--dtypes takes explicit dtypes (float32, bfloat16, float16, int8), got {item!r}"
                )
            names.append(str(parsed).removeprefix("torch."))
    names = list(dict.fromkeys(names))
    if "float32" in names:
        names.remove("float32")
    return ["float32", *names]  # float32 first: it is the reference for the greedy-output check


def run_decode_benchmark(
    generator: str | None = None,
    device: str | None = None,
    dtypes: str | Sequence[str] | None = None,
    new_tokens: int = 128,
    repeats: int = 3,
    out_dir: str | os.PathLike = "docs/benchmarks",
    dtype: str | None = None,
    progress: bool = True,
    echo: Callable[[str], None] | None = print,
) -> dict:
    """Run the decode benchmark, print its tables and write ``decode.{json,md,png}`` to ``out_dir``.

    ``dtype`` is the precision of the engine-vs-plain comparison (default: the
    device policy); ``dtypes`` the list compared in part 2 (float32 is always
    included, as the reference). Returns the results as a dict (what goes to JSON).
    """
    if not isinstance(new_tokens, int) or new_tokens < 1:
        raise InvalidParameterError(f"new tokens must be a positive integer, got {new_tokens!r}")
    if not isinstance(repeats, int) or repeats < 1:
        raise InvalidParameterError(f"repeats must be a positive integer, got {repeats!r}")
    emit = echo or (lambda _s: None)
    dev = torch.device(parse_device(device))
    dtype_names = dtypes_to_compare(dtypes, dev)
    speed_prompts, check_prompts, prompt_info = build_prompts()
    notes: list[str] = []
    if prompt_info.get("note"):
        notes.append(prompt_info["note"])
        emit(f"note: {prompt_info['note']}")

    started = time.perf_counter()
    machine = machine_info(dev)
    cores = machine["cpu_cores_available"] or 1
    other = OtherLoad()
    machine["other_processes_cores_before"] = other.sample_idle()
    if dev.type == "cpu" and (machine["other_processes_cores_before"] or 0) > OTHER_LOAD_WARN_CORES:
        emit(
            f"warning: other processes keep {machine['other_processes_cores_before']:.2f} of {cores} cores busy: "
            "CPU figures will not be reliable"
        )
    other.start()
    engine = Engine(generator=generator, device=dev, dtype=dtype)
    loaded = engine.generator  # load outside the timings
    model_info = {
        "name": loaded.resolved.name,
        "origin": loaded.resolved.origin,
        "location": loaded.resolved.location,
        "parameters": loaded.parameters,
        "context_window": loaded.context_window,
        "attention": engine.runtime.attn_implementation,
        "load_s": round(loaded.load_seconds, 2),
    }
    main_dtype = engine.runtime.dtype_name
    engine.batcher()  # built now: its name goes into the results
    engine_backend = engine.backend_name
    tokenizer = loaded.tokenizer
    compare = dev.type == "cpu"  # the backends compared run on the CPU
    total = (repeats + 1) * len(speed_prompts) + len(dtype_names) * (1 + repeats + len(check_prompts) - 1)
    total += backend_steps(check_prompts, repeats) if compare else 0
    bar = _progress(total, progress)
    try:
        speed_rows = _engine_vs_plain(engine, speed_prompts, new_tokens, repeats, bar)

        dtype_rows: list[dict] = []
        reference: dict[str, torch.Tensor] | None = None
        for name in dtype_names:
            if name == main_dtype:
                eng = engine
            else:
                try:
                    eng = Engine(generator=generator, device=dev, dtype=name)
                except DeviceError as exc:
                    dtype_rows.append({"dtype": name, "skipped": str(exc)})
                    bar.update(1 + repeats + len(check_prompts) - 1)
                    continue
            measured = _dtype_runs(eng, check_prompts, new_tokens, repeats, bar, name)
            ids = measured.pop("ids")
            if name == "float32":
                reference = ids
            firsts = {k: first_difference(ids[k], reference[k]) for k in ids} if reference else {}
            dtype_rows.append(
                measured
                | {
                    "dtype": name,
                    "greedy_vs_float32": firsts,
                    "identical": all(v is None for v in firsts.values()),
                }
            )
            if eng is not engine:
                del eng  # the next dtype's model loads into the memory this one frees
                _free_memory()
        engine.batcher().close()  # its worker thread holds the engine
        engine = loaded = None
        _free_memory()
        backend_rows: list[dict] = []
        if compare and reference is not None:
            backend_rows = compare_backends(generator, check_prompts, reference,
                                            lambda messages: render_chat(tokenizer, messages), new_tokens, repeats, bar)
    finally:
        bar.close()
        if engine is not None:
            engine.batcher().close()
        engine = loaded = None
        _free_memory()

    other_during = other.since_start()
    worst = max(machine["other_processes_cores_before"] or 0, other_during or 0)
    if dev.type == "cpu" and worst > OTHER_LOAD_WARN_CORES:
        notes.append(
            f"the machine was busy: other processes kept {machine['other_processes_cores_before']} cores busy "
            f"before the benchmark and {other_during} on average during it, of {cores} usable cores. They compete "
            "with the decode threads, so these CPU figures are not reliable: run it again on an idle machine"
        )
    usable = [d for d in dtype_rows if not d.get("skipped")]
    identical = [d for d in usable if d["identical"]]
    fastest_identical = max(identical, key=lambda d: d["tokens_per_s"])["dtype"] if identical else None
    fastest = max(usable, key=lambda d: d["tokens_per_s"])["dtype"] if usable else None
    policy = default_dtype(str(dev))
    result = {
        "benchmark": "decode",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
        "argv": list(sys.argv),
        "commit": git_commit(),
        "machine": machine | {"load_average_at_end": load_average(), "other_processes_cores_during": other_during},
        "model": model_info,
        "settings": {
            "generator": generator,
            "device": str(dev),
            "dtype": main_dtype,
            "dtypes": dtype_names,
            "new_tokens": new_tokens,
            "repeats": repeats,
            "warmup_rounds": 1,
            "decoding": "greedy",
            "engine_backend": engine_backend,
        },
        "prompts": prompt_info,
        "check_prompts": [p.key for p in check_prompts],
        "engine_vs_plain": speed_rows,
        "dtypes": dtype_rows,
        "backends": backend_rows,
        "backend_ratios": backend_ratios(backend_rows),
        "verdict": {
            "fastest_identical": fastest_identical,
            "fastest": fastest,
            "policy_default": policy,
            # On CUDA the policy is half precision by design (see device.py): the check is for the CPU.
            "policy_agrees": fastest_identical == policy if dev.type == "cpu" else None,
        },
        "notes": notes,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if dev.type == "cuda":
        notes.append(
            "On CUDA the policy is bf16/fp16 by design (mixed precision); greedy ids are reported, not enforced."
        )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        chart_skipped = decode_chart(result, out / "decode.png")
    except Exception as exc:  # a chart must never cost the figures
        chart_skipped = f"chart not written: {type(exc).__name__}: {exc}"
    if chart_skipped:
        notes.append(chart_skipped)
        (out / "decode.png").unlink(missing_ok=True)  # never leave an older run's chart beside these figures
    (out / "decode.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "decode.md").write_text(decode_markdown(result), encoding="utf-8")
    emit(decode_text(result))
    written = [out / "decode.json", out / "decode.md"] + ([] if chart_skipped else [out / "decode.png"])
    emit("wrote " + ", ".join(str(p) for p in written))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.decode [options]`` is ``finassist bench decode [options]``: the same parser."""
    from assistant.cli import main as finassist  # the root command, which has the bench group

    return finassist(["bench", "decode", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
