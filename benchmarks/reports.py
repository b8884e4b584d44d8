"""The benchmarks' results as tables: the text printed at the end of a run and the Markdown written
beside the JSON (``docs/benchmarks/*.md``). Each function takes the result dict its benchmark
returns and writes to JSON, so a report can be rendered again from a saved ``*.json``."""

from __future__ import annotations

from collections.abc import Sequence

from .common import format_number


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        # Text columns (the first two) left-aligned, figures right-aligned.
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _decode_speed_table(result: dict, markdown: bool) -> str:
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
            format_number(r["wall_s"]),
            format_number(r["tokens_per_s"], ".1f"),
            format_number(r["ttft_s"], ".3f"),
            format_number(r["ratio_vs_plain"], ".2f") + ("x" if r["ratio_vs_plain"] is not None else ""),
            "-" if same is None else ("yes" if same else "NO"),
        ])
    text = text_table(headers, rows, markdown)
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


def _decode_dtype_table(result: dict, markdown: bool) -> str:
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
        rows.append([d["dtype"], format_number(d["tokens_per_s"], ".1f"),
                     format_number(speedup, ".2f") + ("x" if speedup else ""),
                     format_number(d["load_s"]), *cells])
    return text_table(headers, rows, markdown)


def _decode_backend_table(result: dict, markdown: bool) -> str:
    keys = result["check_prompts"]
    headers = ["backend", "runs as", "tok/s", "TTFT s", "vs torch fp32", "vs llama.cpp",
               *[f"greedy vs fp32 generate: {k}" for k in keys]]
    ratios = result.get("backend_ratios") or {}
    rows = []
    for r in result.get("backends") or []:
        if r.get("skipped"):
            rows.append([r["backend"], r["skipped"], *["-"] * (len(headers) - 2)])
            continue
        ratio = ratios.get(r["backend"], {})
        cells = []
        for key in keys:
            a = (r.get("agreement") or {}).get(key)
            if a is None:
                cells.append("-")
            elif a["first_difference"] is None:
                cells.append(f"identical ({a['compared']} tokens)")
            else:
                cells.append(f"first differs at {a['first_difference']}; {a['agreeing_share']:.0%} of positions agree")
        rows.append([r["backend"], r.get("runs_as", "-"), format_number(r["tokens_per_s"], ".1f"),
                     format_number(r["ttft_s"], ".3f"),
                     format_number(ratio.get("vs_torch_fp32"), ".2f") + ("x" if ratio.get("vs_torch_fp32") else ""),
                     format_number(ratio.get("vs_llama_cpp"), ".2f") + ("x" if ratio.get("vs_llama_cpp") else ""),
                     *cells])
    return text_table(headers, rows, markdown)


def _decode_verdict(result: dict) -> list[str]:
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


def decode_text(result: dict) -> str:
    s, m = result["settings"], result["machine"]
    out = [
        f"Decode benchmark: {result['model']['name']} on {m['device']} "
        f"({m.get('cuda_device') or m['cpu']}, {m['torch_threads']} torch threads), "
        f"{s['new_tokens']} new tokens, median of {s['repeats']}",
        "",
        f"1. Engine vs plain model.generate ({s['dtype']})",
        _decode_speed_table(result, markdown=False),
        "",
        "2. dtype: plain greedy decode on the question prompt; greedy ids compared with float32",
        _decode_dtype_table(result, markdown=False),
        "",
        *_decode_verdict(result),
        "",
        "3. Backends, single stream through the engine, and llama.cpp on the GGUF file",
        _decode_backend_table(result, markdown=False) if result.get("backends") else "not run (CPU only)",
        "",
        *(f"note: {n}" for n in result["notes"]),
    ]
    return "\n".join(out)


def decode_markdown(result: dict) -> str:
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
        f"- the engine's backend in part 1: {s.get('engine_backend') or 'unknown'}",
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
        _decode_speed_table(result, markdown=True),
        "",
        "## dtype",
        "",
        "Plain greedy decode tokens/s on the question prompt; greedy token ids for each prompt compared with float32.",
        "",
        _decode_dtype_table(result, markdown=True),
        "",
        *(f"- {line}" for line in _decode_verdict(result)),
        "",
        "## Backends (single stream, through the engine) and llama.cpp",
        "",
        "Each backend decodes the question prompt through `Engine.stream` (median tok/s of the timed rounds, "
        "time to the first text piece); its greedy token ids on every prompt are compared with float32 "
        "`model.generate`. llama.cpp decodes the Q4_1 GGUF file the project installs "
        "(`benchmarks/backends.py`).",
        "",
        _decode_backend_table(result, markdown=True) if result.get("backends") else "Not run (CPU only).",
        "",
        "![tokens/s by backend](decode.png)",
        *(f"- {line}" for line in result["notes"]),
        "",
    ]
    return "\n".join(parts)


def serve_markdown(result: dict) -> str:
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
        f"server backend: {s.get('backend') or s.get('batching') or 'dynamic'}, max batch {s['max_batch_size']}",
        "",
        "| concurrency | requests | tok/s | req/s | TTFT p50 s | TTFT p95 s | ITL p50 ms | ITL p95 ms | vs naive | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["levels"]:
        lines.append(
            f"| {row['concurrency']} | {row['requests']} | {row['tokens_per_s']:.1f} | {row['requests_per_s']:.3f} | "
            f"{format_number(row['ttft_p50_s'], '.2f')} | {format_number(row['ttft_p95_s'], '.2f')} | {format_number(row['itl_p50_ms'], '.0f')} | "
            f"{format_number(row['itl_p95_ms'], '.0f')} | {row['vs_naive']:.2f}x | {row['errors']} |"
        )
    n = result["naive"]
    lines += [
        "",
        f"Naive baseline (same prompts, one at a time, plain `model.generate`, same loaded model, same run): "
        f"{n['requests']} requests, {n['tokens_per_s']:.1f} tok/s, {n['requests_per_s']:.3f} req/s. "
        "`vs naive` = aggregate tok/s of the level / naive tok/s.",
        "",
        "TTFT includes queueing. With the dynamic batcher (torch) a request that arrives while a batch runs waits "
        "for that batch to end; the onnx backend starts it at the next decoding step while a row is free "
        "(max batch), so only the levels above the max batch queue.",
        "",
        "![tokens/s by concurrency](serve.png)",
        "",
    ]
    return "\n".join(lines)


def load_markdown(result: dict) -> str:
    s = result["settings"]
    lines = [
        f"# Load: {s['clients']} clients for {s['seconds']:g} s" + (f", {s['rounds']} rounds" if s.get("rounds", 1) > 1 else ""),
        "",
        f"`{result['command']}` on {result['machine'].get('cpu', result['machine'].get('platform'))}, "
        f"{result['when']}; model `{result['model']}`, max_tokens {s['max_tokens']}, server timeout "
        f"{s['timeout']:g} s, batch {s['max_batch_size']}, queue {s['max_queue']}.",
        "",
        "| status | answers |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in result["status_counts"].items()],
        "",
        f"Requests per second: {result['requests_per_s']:.1f} (answered 200: {result['ok_per_s']:.2f}/s).",
        "",
        "| latency (s) | p50 | p95 | p99 | max |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in ("ok", "refused"):
        lat = result["latency_s"][name]
        lines.append(f"| {name} | " + " | ".join("-" if lat[k] is None else f"{lat[k]:.3f}" for k in
                                                 ("p50", "p95", "p99", "max")) + " |")
    m = result["memory_mb"]
    lines += [
        "",
        f"Memory (resident, the server process and its decoding process; the clients run in another): {m['before']:.0f} MB before, "
        f"{m['peak']:.0f} MB peak, {m['after']:.0f} MB after.",
        f"Healthy afterwards: {result['healthy_after']}; no 5xx: {result['no_5xx']}.",
        "",
    ]
    rounds = result.get("rounds") or []
    if len(rounds) > 1:  # the same load again and again against one server: does its memory come back?
        lines += ["| round | answers by status | memory after (MB) |", "| --- | --- | --- |"]
        lines += [f"| {i} | {', '.join(f'{k}: {v}' for k, v in r['status_counts'].items())} | {r['memory_after_mb']:.0f} |"
                  for i, r in enumerate(rounds, 1)]
        lines.append("")
    return "\n".join(lines)


def classify_markdown(result: dict) -> str:
    lines = ["# Classification throughput: shipped classifiers vs plain Hugging Face forward passes", "",
             f"- date: {result['date']}", f"- command: `{result['command']}`",
             f"- machine: {result['machine'].get('cpu', '?')}, {result['machine'].get('cpu_cores_available', '?')} cores, "
             f"torch {result['machine'].get('torch', '?')}",
             f"- texts: {result['texts']} real texts ({', '.join(result['sources'])})",
             f"- baseline: {result['baseline']}",
             *(f"- {task}: {model}" for task, model in (result.get("models") or {}).items()), "",
             "| tasks | assistant texts/s | plain HF texts/s | speed-up |", "|---|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {' + '.join(r['tasks'])} | {r['assistant_texts_per_s']} | {r['plain_texts_per_s']} | "
                     f"{r['speedup']}× |")
    return "\n".join(lines) + "\n"


def ask_markdown(result: dict) -> str:
    lib, m = result["library"], result["machine"]
    lines = ["# Grounded answers: seconds per question, library of "
             f"{lib['documents']:,} documents", "",
             "Generated by `benchmarks/ask.py`. Do not edit by hand.", "",
             f"- date: {result['date']}, commit {result.get('commit') or 'unknown'}",
             f"- command: `{result['command']}`",
             f"- machine: {m.get('cpu', '?')}, {m.get('cpu_cores_available', '?')} usable cores; generator backend "
             f"{result['backend']}",
             f"- library: {lib['documents']:,} documents (TAT-QA dev contexts and Reuters articles), "
             f"{lib['passages']:,} passages, indexed in {lib['indexing_s']:.0f} s; search alone "
             f"{lib['search_ms']:.0f} ms a question",
             "- questions: TAT-QA dev, report half, asked with `Assistant.ask` (search and answer), one untimed first",
             "", "| path | questions | median s | p95 s | mean s |", "|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['path']} | {r['questions']} | {r['median_s']:.2f} | {r['p95_s']:.2f} | {r['mean_s']:.2f} |")
    return "\n".join(lines) + "\n"
