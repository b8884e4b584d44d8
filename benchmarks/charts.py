"""The benchmarks' charts (``docs/benchmarks/*.png``), drawn with matplotlib from a result dict.
A chart is optional: without matplotlib a function says why it drew nothing, and the figures are
still written."""

from __future__ import annotations

from pathlib import Path


NO_MATPLOTLIB = "matplotlib is not installed (pip install matplotlib): no chart written"


def _pyplot():
    """matplotlib's pyplot on the file-only backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(plt, fig, png: Path, dpi: int) -> None:
    """Lay the figure out, write it as PNG and free it (pyplot keeps every open figure)."""
    fig.tight_layout()
    fig.savefig(png, dpi=dpi)
    plt.close(fig)


def decode_chart(result: dict, png: Path) -> str | None:
    """Bar chart of tokens/s per path and per dtype; returns why it was skipped, if it was."""
    plt = _pyplot()
    if plt is None:
        return NO_MATPLOTLIB
    backends = [r for r in result.get("backends") or [] if r.get("tokens_per_s")]
    if backends:
        fig, (left, right, third) = plt.subplots(1, 3, figsize=(16, 4.4), gridspec_kw={"width_ratios": [2, 1, 1.5]})
    else:
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    prompts = list(dict.fromkeys(r["prompt"] for r in result["engine_vs_plain"]))
    paths = list(dict.fromkeys(r["path"] for r in result["engine_vs_plain"]))
    width = 0.8 / len(paths)
    for i, name in enumerate(paths):
        values = [next(r["tokens_per_s"] for r in result["engine_vs_plain"] if r["prompt"] == p and r["path"] == name)
                  for p in prompts]
        xs = [j + (i - (len(paths) - 1) / 2) * width for j in range(len(prompts))]
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
    if backends:
        bars = third.bar([r["backend"].replace(" (", "\n(") for r in backends], [r["tokens_per_s"] for r in backends],
                         color=["tab:gray" if r["backend"].startswith("llama.cpp") else "tab:blue" for r in backends])
        third.bar_label(bars, fmt="%.1f", fontsize=8)
        third.tick_params(axis="x", labelsize=7)
        third.set_title("single stream by backend\n(grey: llama.cpp, the anchor)")
        third.set_ylabel("tokens/s")
    m = result["machine"]
    fig.suptitle(f"{result['model']['name']} on {m['device']} ({m.get('cuda_device') or m['cpu']})", fontsize=10)
    return _save(plt, fig, png, dpi=120)


def serve_chart(result: dict, png: Path) -> str | None:
    """Aggregate tokens/s per concurrency level beside the naive baseline; returns why it was skipped, if it was."""
    plt = _pyplot()
    if plt is None:
        return NO_MATPLOTLIB
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
    return _save(plt, fig, png, dpi=120)


def classify_chart(result: dict, png: Path) -> str | None:
    """Texts/s of the assistant and of plain forward passes, per task set; returns why it was skipped, if it was."""
    plt = _pyplot()
    if plt is None:
        return NO_MATPLOTLIB
    labels = [f"{len(r['tasks'])} task{'s' if len(r['tasks']) > 1 else ''}" for r in result["rows"]]
    x = range(len(labels))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([i - 0.2 for i in x], [r["assistant_texts_per_s"] for r in result["rows"]], 0.4, label="assistant")
    ax.bar([i + 0.2 for i in x], [r["plain_texts_per_s"] for r in result["rows"]], 0.4, label="plain HF forward")
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("texts / s (CPU)")
    ax.set_title("Classification throughput, same run")
    ax.legend()
    return _save(plt, fig, png, dpi=110)


def ask_chart(result: dict, png: Path) -> str | None:
    """Seconds per question of each path (one dot a question, the median marked); returns why it was
    skipped, if it was."""
    plt = _pyplot()
    if plt is None:
        return NO_MATPLOTLIB
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, row in enumerate(result["rows"]):
        ax.scatter(row["seconds"], [i] * len(row["seconds"]), alpha=0.5, s=14)
        ax.plot([row["median_s"]] * 2, [i - 0.3, i + 0.3], color="black")
    ax.axvline(5, color="grey", linestyle="--", linewidth=1, label="target: 5 s median")
    ax.set_yticks(range(len(result["rows"])), [r["path"] for r in result["rows"]])
    ax.set_xlabel("seconds from question to answer (CPU)")
    ax.set_title(f"Grounded answers, library of {result['library']['documents']:,} documents")
    ax.legend(fontsize=8)
    return _save(plt, fig, png, dpi=110)
