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
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from assistant.device import QUANTIZED, default_dtype, parse_device, parse_dtype
from assistant.engine import Engine, LoadedModel
from assistant.types import Message, SamplingParams
from assistant.errors import DeviceError, InvalidParameterError
from assistant.machine import load_average, machine_info
from benchmarks.common import REPO_ROOT, command_line, git_commit
from assistant.prompts import load_prompt

ECTSUM_RELATIVE = Path("..") / "shared" / "data" / "summarization" / "ectsum" / "val.jsonl"
EXCERPT_WORDS = 300
#: Cores kept busy by other processes above which CPU figures are flagged as unreliable.
OTHER_LOAD_WARN_CORES = 0.25

QUESTION = (
    "Explain in detail how a company's income statement, balance sheet and cash flow statement are "
    "connected. Then walk through, step by step, how a $10 million increase in depreciation expense "
    "affects each of the three statements, assuming a 25% tax rate."
)
#: Extra prompts for the dtype check (three prompts in all; these fill in when the excerpt is missing).
EXTRA_PROMPTS = {
    "bonds": (
        "What are the main risks of investing in high-yield corporate bonds, and how do credit spreads "
        "usually behave going into a recession? Answer in detail, with examples."
    ),
    "rates": (
        "Describe how a central bank raising interest rates affects bank net interest margins, "
        "mortgage demand and equity valuations. Explain each effect in detail."
    ),
}

PLAIN = "plain model.generate"
ENGINE_GENERATE = "engine.generate"
ENGINE_STREAM = "engine.stream"
PATHS = (PLAIN, ENGINE_GENERATE, ENGINE_STREAM)


# ----------------------------------------------------------------------- prompts


@dataclass
class BenchPrompt:
    key: str
    title: str
    messages: list[Message]


def _find_ectsum() -> Path | None:
    for base in (REPO_ROOT, Path.cwd()):
        path = (base / ECTSUM_RELATIVE).resolve()
        if path.is_file():
            return path
    return None


def _earnings_excerpt(path: Path, words: int = EXCERPT_WORDS) -> tuple[str, dict]:
    """Whole transcript lines of the first ECTSum validation record, up to about ``words`` words."""
    with path.open(encoding="utf-8") as fh:
        record = json.loads(fh.readline())
    taken: list[str] = []
    count = 0
    for line in record["transcript"].split("\n"):
        line = line.strip()
        if not line:
            continue
        taken.append(line)
        count += len(line.split())
        if count >= words:
            break
    source = {"file": str(path), "id": record.get("id"), "words": count}
    return " ".join(taken), source


def build_prompts() -> tuple[list[BenchPrompt], list[BenchPrompt], dict]:
    """The engine-vs-plain prompts, the three dtype-check prompts, and where they came from."""
    system = load_prompt("ask")["system"]

    def chat(text: str) -> list[Message]:
        return [{"role": "system", "content": system}, {"role": "user", "content": text}]

    question = BenchPrompt("question", "financial question", chat(QUESTION))
    info: dict = {"system (prompts/ask.toml)": system, "question": QUESTION}
    path = _find_ectsum()
    speed = [question]
    if path is not None:
        excerpt, source = _earnings_excerpt(path)
        with path.open(encoding="utf-8") as fh:
            rec = json.loads(fh.readline())
        text = (
            f"Here is an excerpt from the {rec.get('ticker', '')} {str(rec.get('quarter', '')).upper()} "
            f"{rec.get('year', '')} earnings call:\n\n{excerpt}\n\n"
            "Summarise the results, the drivers behind them and what management said about the outlook. "
            "Be detailed and quote the figures."
        )
        speed.append(BenchPrompt("earnings_call", f"earnings-call excerpt ({source['words']} words)", chat(text)))
        info["earnings_call"] = source
    else:
        info["earnings_call"] = None
        info["note"] = (
            f"{ECTSUM_RELATIVE} not found (looked beside {REPO_ROOT} and {Path.cwd()}): "
            "the engine-vs-plain comparison uses the financial question only"
        )
    check = list(speed)
    for key, text in EXTRA_PROMPTS.items():
        if len(check) >= 3:
            break
        check.append(BenchPrompt(key, key, chat(text)))
        info[key] = text
    return speed, check, info


# ----------------------------------------------------------------------- timing


@dataclass
class Run:
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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _chat_input_ids(loaded: LoadedModel, engine: Engine, messages: Sequence[Message]) -> torch.Tensor:
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
    _sync(device)
    started = time.perf_counter()
    out = loaded.model.generate(ids, **kwargs)
    _sync(device)
    seconds = time.perf_counter() - started
    return out[0, ids.shape[1] :].cpu(), seconds


def engine_generate(engine: Engine, prompt: BenchPrompt, new_tokens: int) -> tuple[Run, str]:
    device = engine.runtime.device
    params = SamplingParams(max_new_tokens=new_tokens)
    _sync(device)
    started = time.perf_counter()
    gen = engine.generate(prompt.messages, params)
    _sync(device)
    wall = time.perf_counter() - started
    run = Run(ENGINE_GENERATE, prompt.key, gen.completion_tokens, wall, None, gen.finish_reason, gen.prompt_tokens)
    return run, gen.text


def engine_stream(engine: Engine, prompt: BenchPrompt, new_tokens: int) -> tuple[Run, str]:
    device = engine.runtime.device
    params = SamplingParams(max_new_tokens=new_tokens)
    _sync(device)
    started = time.perf_counter()
    first: float | None = None
    stream = engine.stream(prompt.messages, params)
    for piece in stream:
        if first is None and piece:
            first = time.perf_counter() - started
    _sync(device)
    wall = time.perf_counter() - started
    gen = stream.result
    run = Run(ENGINE_STREAM, prompt.key, gen.completion_tokens, wall, first, gen.finish_reason, gen.prompt_tokens)
    return run, gen.text


def _median(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


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
        input_ids = _chat_input_ids(loaded, engine, prompt.messages)
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

        plain_rate = _median([r.tokens_per_s for r in runs[PLAIN]])
        for path in PATHS:
            rs = runs[path]
            rate = _median([r.tokens_per_s for r in rs])
            tokens = int(statistics.median([r.tokens for r in rs]))
            row = {
                "prompt": prompt.key,
                "prompt_title": prompt.title,
                "path": path,
                "prompt_tokens": rs[-1].prompt_tokens,
                "completion_tokens": tokens,
                "wall_s": _median([r.wall_s for r in rs]),
                "tokens_per_s": rate,
                "ttft_s": _median(plain_ttft) if path == PLAIN else _median([r.ttft_s for r in rs]),
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


def _first_difference(a: torch.Tensor, b: torch.Tensor) -> int | None:
    n = min(a.shape[0], b.shape[0])
    diff = (a[:n] != b[:n]).nonzero()
    if diff.numel():
        return int(diff[0, 0])
    return None if a.shape[0] == b.shape[0] else n


def _dtype_runs(
    engine: Engine, prompts: list[BenchPrompt], new_tokens: int, repeats: int, bar, label: str
) -> dict:
    """Plain greedy tokens/s on the first prompt, and the greedy ids of every prompt."""
    loaded = engine.generator
    timed = prompts[0]
    input_ids = _chat_input_ids(loaded, engine, timed.messages)
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
        ids, _ = plain_generate(loaded, _chat_input_ids(loaded, engine, prompt.messages), new_tokens)
        ids_by_prompt[prompt.key] = ids
        bar.update(1)
    return {
        "tokens_per_s": _median(rates),
        "wall_s": _median(walls),
        "tokens": new_tokens,
        "runs_tokens_per_s": rates,
        "load_s": round(loaded.load_seconds, 2),
        "ids": ids_by_prompt,
    }


def _release(engine: Engine | None) -> None:
    if engine is None:
        return
    engine._models.clear()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ------------------------------------------------------------------ environment


def _cpu_busy_seconds() -> float | None:
    """CPU seconds all processes have been busy since boot (Linux ``/proc/stat``), or None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:9]] + [0] * max(0, 9 - len(fields))
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _self_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class OtherLoad:
    """How many cores other processes kept busy: over one idle second now, and over a span of work."""

    def __init__(self) -> None:
        self.start_busy = self.start_self = self.start_wall = None

    def sample_idle(self, seconds: float = 1.0) -> float | None:
        busy0, self0, wall0 = _cpu_busy_seconds(), _self_cpu_seconds(), time.perf_counter()
        time.sleep(seconds)
        return self._cores(busy0, self0, wall0)

    def start(self) -> None:
        self.start_busy, self.start_self = _cpu_busy_seconds(), _self_cpu_seconds()
        self.start_wall = time.perf_counter()

    def since_start(self) -> float | None:
        return self._cores(self.start_busy, self.start_self, self.start_wall)

    @staticmethod
    def _cores(busy0, self0, wall0) -> float | None:
        busy1 = _cpu_busy_seconds()
        if busy0 is None or busy1 is None:
            return None
        wall = time.perf_counter() - wall0
        others = (busy1 - busy0) - (_self_cpu_seconds() - self0)
        return round(max(others, 0.0) / wall, 2) if wall > 0 else None


# ------------------------------------------------------------------------ output


def _fmt(value, spec: str = ".2f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        # Text columns (the first two) left-aligned, figures right-aligned.
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _speed_table(result: dict, markdown: bool) -> str:
    n = result["settings"]["new_tokens"]
    headers = ["prompt", "path", "prompt tok", "new tok", "wall s", "tok/s", "TTFT s", "engine/plain", "same text"]
    rows = []
    for r in result["engine_vs_plain"]:
        short = "*" if r["short"] else ""
        same = r.get("same_text_as_plain")
        rows.append([
            r["prompt"],
            r["path"],
            str(r["prompt_tokens"]),
            f"{r['completion_tokens']}{short}",
            _fmt(r["wall_s"]),
            _fmt(r["tokens_per_s"], ".1f"),
            _fmt(r["ttft_s"], ".3f"),
            _fmt(r["ratio_vs_plain"], ".2f") + ("x" if r["ratio_vs_plain"] is not None else ""),
            "-" if same is None else ("yes" if same else "NO"),
        ])
    text = _table(headers, rows, markdown)
    notes = [
        f"tok/s = new tokens / wall time (prefill included), median of {result['settings']['repeats']} "
        "after a warm-up; plain is forced to exactly N tokens (min_new_tokens).",
        "TTFT: plain = generate(max_new_tokens=1) (prefill + one step); engine.stream = first streamed text "
        "piece (the streamer holds text back until a word is complete).",
    ]
    if any(r["short"] for r in result["engine_vs_plain"]):
        notes.append(f"* the engine stopped at the end-of-turn token before {n} tokens: its rate is over fewer "
                     "tokens, so the prefill weighs more and the ratio is biased low.")
    if markdown:
        return text + "\n\n" + "\n".join("- " + s for s in notes)
    return text + "\n" + "\n".join("  " + s for s in notes)


def _dtype_table(result: dict, markdown: bool) -> str:
    headers = ["dtype", "tok/s", "vs float32", "load s", *[f"greedy vs fp32: {k}" for k in result["check_prompts"]]]
    rows = []
    ref = next((d for d in result["dtypes"] if d["dtype"] == "float32" and d.get("tokens_per_s")), None)
    for d in result["dtypes"]:
        if d.get("skipped"):
            rest = ["-"] * (len(result["check_prompts"]) - 1)
            rows.append([d["dtype"], "skipped", "-", "-", d["skipped"][:60], *rest])
            continue
        speedup = d["tokens_per_s"] / ref["tokens_per_s"] if ref else None
        cells = []
        for key in result["check_prompts"]:
            first = d["greedy_vs_float32"][key]
            cells.append("identical" if first is None else f"differs at token {first}")
        rows.append([d["dtype"], _fmt(d["tokens_per_s"], ".1f"), _fmt(speedup, ".2f") + ("x" if speedup else ""),
                     _fmt(d["load_s"]), *cells])
    return _table(headers, rows, markdown)


def _verdict(result: dict) -> list[str]:
    lines = []
    v = result["verdict"]
    if v["fastest_identical"]:
        lines.append(
            f"Fastest dtype with greedy output identical to float32 ({len(result['check_prompts'])} prompts x "
            f"{result['settings']['new_tokens']} tokens): {v['fastest_identical']}."
        )
    if v["fastest"] and v["fastest"] != v["fastest_identical"]:
        lines.append(f"Fastest overall: {v['fastest']} (its greedy output differs from float32).")
    if v["policy_agrees"] is None:
        lines.append(f"Policy default for {result['machine']['device']} (assistant/device.py): {v['policy_default']}.")
    else:
        lines.append(f"Policy default for {result['machine']['device']} (assistant/device.py): {v['policy_default']}; "
                     + ("the benchmark agrees." if v["policy_agrees"] else "the benchmark suggests "
                        f"{v['fastest_identical']} instead."))
    return lines


def render_text(result: dict) -> str:
    s, m = result["settings"], result["machine"]
    out = [
        f"Decode benchmark: {result['model']['name']} on {m['device']} "
        f"({m.get('cuda_device') or m['cpu']}, {m['torch_threads']} torch threads), "
        f"{s['new_tokens']} new tokens, median of {s['repeats']}",
        "",
        f"1. Engine vs plain model.generate ({s['dtype']})",
        _speed_table(result, markdown=False),
        "",
        "2. dtype: plain greedy decode on the question prompt; greedy ids compared with float32",
        _dtype_table(result, markdown=False),
        "",
        *_verdict(result),
        *(f"note: {n}" for n in result["notes"]),
    ]
    return "\n".join(out)


def render_markdown(result: dict) -> str:
    s, m = result["settings"], result["machine"]
    machine = [
        f"- command: `{result['command']}`",
        f"- when: {result['created']}, commit {result.get('commit') or 'unknown'}",
        f"- machine: {m['platform']}, CPU {m['cpu']} ({m['cpu_cores_available']} usable cores, "
        f"{m['torch_threads']} torch threads, bf16 instructions: {', '.join(m['cpu_bf16_instructions']) or 'none'}), "
        f"load average (1, 5, 15 min) at start {m['load_average']}, at end {m['load_average_at_end']}; "
        f"cores kept busy by other processes: {m['other_processes_cores_before']} just before, "
        f"{m['other_processes_cores_during']} on average during the run",
        f"- device: {m['device']}" + (f" ({m['cuda_device']}, CUDA {m['cuda']})" if m.get("cuda_device") else ""),
        f"- torch {m['torch']}, transformers {m['transformers']}, Python {m['python']}",
        f"- model: {result['model']['name']} ({result['model']['parameters'] / 1e6:.1f}M parameters, "
        f"from {result['model']['origin']})",
        f"- {s['new_tokens']} new tokens per run, greedy, median of {s['repeats']} after one warm-up",
    ]
    parts = [
        "# Decode benchmark",
        "",
        "Generated by `benchmarks/decode.py` (see `docs/benchmarks/README.md`). Do not edit by hand.",
        "",
        *machine,
        "",
        f"## Engine vs plain `model.generate` ({s['dtype']})",
        "",
        _speed_table(result, markdown=True),
        "",
        "## dtype",
        "",
        "Plain greedy decode tokens/s on the question prompt; greedy token ids for each prompt compared with float32.",
        "",
        _dtype_table(result, markdown=True),
        "",
        *(f"- {line}" for line in _verdict(result)),
        *(f"- {line}" for line in result["notes"]),
        "",
    ]
    return "\n".join(parts)


def write_chart(result: dict, png: Path) -> str | None:
    """Bar chart of tokens/s per path and per dtype; returns why it was skipped, if it was."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib): no chart written"
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    prompts = list(dict.fromkeys(r["prompt"] for r in result["engine_vs_plain"]))
    width = 0.8 / len(PATHS)
    for i, name in enumerate(PATHS):
        values = [next(r["tokens_per_s"] for r in result["engine_vs_plain"] if r["prompt"] == p and r["path"] == name)
                  for p in prompts]
        xs = [j + (i - (len(PATHS) - 1) / 2) * width for j in range(len(prompts))]
        bars = left.bar(xs, values, width, label=name)
        left.bar_label(bars, fmt="%.1f", fontsize=8)
    left.set_xticks(range(len(prompts)), prompts)
    left.set_ylabel("tokens/s")
    left.set_title(f"engine vs plain ({result['settings']['dtype']}, {result['settings']['new_tokens']} tokens)")
    left.legend(fontsize=8)
    dts = [d for d in result["dtypes"] if not d.get("skipped")]
    colors = ["tab:green" if d["identical"] else "tab:red" for d in dts]
    bars = right.bar([d["dtype"] for d in dts], [d["tokens_per_s"] for d in dts], color=colors)
    right.bar_label(bars, fmt="%.1f", fontsize=8)
    right.set_title("plain greedy by dtype\n(green: same greedy ids as float32)")
    right.set_ylabel("tokens/s")
    m = result["machine"]
    fig.suptitle(f"{result['model']['name']} on {m['device']} ({m.get('cuda_device') or m['cpu']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return None


# --------------------------------------------------------------------------- run


def _dtype_list(dtypes: str | Sequence[str] | None, device: torch.device) -> list[str]:
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
    dev = parse_device(device)
    dtype_names = _dtype_list(dtypes, dev)
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
    total = (repeats + 1) * len(speed_prompts) + len(dtype_names) * (1 + repeats + len(check_prompts) - 1)
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
            firsts = {k: _first_difference(ids[k], reference[k]) for k in ids} if reference else {}
            dtype_rows.append(
                measured
                | {
                    "dtype": name,
                    "greedy_vs_float32": firsts,
                    "identical": all(v is None for v in firsts.values()),
                }
            )
            if eng is not engine:
                _release(eng)
    finally:
        bar.close()
        _release(engine)

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
    policy = str(default_dtype(dev)).removeprefix("torch.")
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
        },
        "prompts": prompt_info,
        "check_prompts": [p.key for p in check_prompts],
        "engine_vs_plain": speed_rows,
        "dtypes": dtype_rows,
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
        chart_skipped = write_chart(result, out / "decode.png")
    except Exception as exc:  # a chart must never cost the figures
        chart_skipped = f"chart not written: {type(exc).__name__}: {exc}"
    if chart_skipped:
        notes.append(chart_skipped)
        (out / "decode.png").unlink(missing_ok=True)  # never leave an older run's chart beside these figures
    (out / "decode.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "decode.md").write_text(render_markdown(result), encoding="utf-8")
    emit(render_text(result))
    written = [out / "decode.json", out / "decode.md"] + ([] if chart_skipped else [out / "decode.png"])
    emit("wrote " + ", ".join(str(p) for p in written))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.decode [options]`` is ``finassist bench decode [options]``: one parser, in the CLI."""
    from assistant.cli import main as cli_main

    return cli_main(["bench", "decode", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
