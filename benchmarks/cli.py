"""``finassist bench decode|serve|load|coldstart|classify|ask``: the benchmarks' command group.

``register`` is the ``finassist.commands`` entry point ``bench`` (pyproject.toml; the root command in
``assistant/cli.py`` reads the group), so the library's CLI does not import the benchmarks.
``python -m benchmarks.cli decode ...`` runs the root command with ``bench`` first. Each benchmark
module is imported only when its command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from assistant.cli import CliInputError, positive
from assistant.settings import BatchSettings

#: Where the benchmarks write their figures by default (the committed results).
RESULTS_DIR = "docs/benchmarks"


def cmd_bench_decode(args: argparse.Namespace) -> None:
    from .decode import run_decode_benchmark

    run_decode_benchmark(generator=args.generator, device=args.device, dtypes=args.dtypes, new_tokens=args.tokens,
                         repeats=args.repeats, out_dir=args.out, dtype=args.dtype, progress=not args.no_progress)


def cmd_bench_load(args: argparse.Namespace) -> None:
    from .load import run_load_benchmark

    run_load_benchmark(generator=args.generator, encoder=args.encoder, device=args.device, dtype=args.dtype,
                       clients=args.clients, seconds=args.seconds, max_tokens=args.max_tokens, timeout=args.timeout,
                       max_batch_size=args.max_batch_size, max_queue=args.max_queue, rounds=args.rounds,
                       out_dir=args.out)


def concurrency_levels(value: str) -> list[int]:
    """``--concurrency 1,4,16``: the client counts, each a positive integer."""
    try:
        levels = [int(c) for c in value.split(",") if c.strip()]
    except ValueError:
        raise CliInputError(f"--concurrency must be comma-separated integers, got {value!r}") from None
    if not levels or min(levels) < 1:
        raise CliInputError(f"--concurrency must list positive client counts, got {value!r}")
    return levels


def cmd_bench_serve(args: argparse.Namespace) -> None:
    from .serve import run_serve_benchmark

    run_serve_benchmark(generator=args.generator, device=args.device, dtype=args.dtype,
                        concurrency=concurrency_levels(args.concurrency), max_tokens=args.max_tokens,
                        naive_requests=args.naive_requests, max_batch_size=args.max_batch_size, out_dir=args.out,
                        progress=not args.no_progress, batching=args.backend,
                        onnx_precision=args.onnx_precision)


def cmd_bench_coldstart(args: argparse.Namespace) -> None:
    from .coldstart import run_coldstart_benchmark

    run_coldstart_benchmark(repeats=args.repeats, backend=args.backend, generator=args.generator, encoder=args.encoder,
                            out_dir=args.out)


def cmd_bench_classify(args: argparse.Namespace) -> None:
    from .classify import run_classify_benchmark

    run_classify_benchmark(data=args.data, texts=args.texts, out_dir=args.out, repeats=args.repeats)


def cmd_bench_ask(args: argparse.Namespace) -> None:
    from .ask import run_ask_benchmark

    run_ask_benchmark(data=args.data, documents=args.documents, questions=args.questions, backend=args.backend,
                      out_dir=args.out)


def register(sub: argparse._SubParsersAction, model_options: argparse.ArgumentParser, command: str | None) -> None:
    """Add ``bench`` and its benchmarks to the root command's subparsers (their options cost nothing to
    build, so ``command`` changes nothing here)."""
    common = model_options
    bench = sub.add_parser("bench", help="benchmarks (figures printed and written under docs/benchmarks)")
    bench_sub = bench.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    p = bench_sub.add_parser(
        "decode", parents=[common], help="single-stream decode tokens/s: engine vs plain model.generate, per dtype"
    )
    p.set_defaults(func=cmd_bench_decode)
    p.add_argument(
        "--dtypes", default=None, help="dtypes to compare, comma-separated (default: float32,bfloat16; +float16 on CUDA)"
    )
    p.add_argument("--tokens", type=int, default=128, help="new tokens per run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=RESULTS_DIR, help="folder for decode.json, decode.md and decode.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = bench_sub.add_parser(
        "serve", parents=[common], help="the HTTP service under concurrent streaming load vs naive sequential generate"
    )
    p.set_defaults(func=cmd_bench_serve)
    p.add_argument("--concurrency", default="1,4,16,64", help="comma-separated client counts")
    p.add_argument("--max-tokens", type=positive(int), default=128)
    p.add_argument("--naive-requests", type=int, default=8, help="requests for the sequential baseline")
    p.add_argument("--max-batch-size", type=positive(int), default=BatchSettings.max_batch_size,
                   help="chat requests decoded together (default %(default)s)")
    p.add_argument("--out", default=RESULTS_DIR)
    p.add_argument("--no-progress", action="store_true")

    p = bench_sub.add_parser(
        "coldstart", parents=[common], help="seconds from `python app.py` to the first streamed token, caches warm"
    )
    p.set_defaults(func=cmd_bench_coldstart)
    p.add_argument("--repeats", type=positive(int), default=3, help="fresh processes timed (the median counts)")
    p.add_argument("--out", default=RESULTS_DIR, help="folder for coldstart.json and coldstart.md")

    p = bench_sub.add_parser(
        "classify", help="texts/s of the shipped classifiers for 1, 2 and 3 tasks vs plain HF forward passes"
    )
    p.set_defaults(func=cmd_bench_classify)
    p.add_argument("--data", default="../shared/data", help="folder of the public datasets")
    p.add_argument("--texts", type=positive(int), default=512, help="real texts to classify")
    p.add_argument("--repeats", type=positive(int), default=2, help="timed runs (the fastest counts)")
    p.add_argument("--out", default=RESULTS_DIR, help="folder for classify.json, classify.md and classify.png")

    p = bench_sub.add_parser(
        "ask", parents=[common], help="seconds from a question to its grounded answer, library of 1,000 documents; "
        "the answerer vs free-form answers"
    )
    p.set_defaults(func=cmd_bench_ask)
    p.add_argument("--data", default="../shared/data", help="folder of the public datasets")
    p.add_argument("--documents", type=positive(int), default=1000, help="documents in the library")
    p.add_argument("--questions", type=positive(int), default=30, help="questions timed per path")
    p.add_argument("--out", default=RESULTS_DIR, help="folder for ask.json, ask.md and ask.png")

    p = bench_sub.add_parser(
        "load", parents=[common], help="many clients for a fixed time against the protected service: status counts, "
        "latency, memory"
    )
    p.set_defaults(func=cmd_bench_load)
    p.add_argument("--clients", type=positive(int), default=200)
    p.add_argument("--seconds", type=positive(float), default=60)
    p.add_argument("--max-tokens", type=positive(int), default=16)
    p.add_argument("--timeout", type=positive(float), default=10, help="the server's request timeout")
    p.add_argument("--max-batch-size", type=positive(int), default=BatchSettings.max_batch_size,
                   help="chat requests decoded together (default %(default)s)")
    p.add_argument("--max-queue", type=positive(int), default=BatchSettings.max_queue,
                   help="chat requests that may wait; more get 429 (default %(default)s)")
    p.add_argument("--rounds", type=positive(int), default=1,
                   help="the load this many times against one server, its memory after each (does it come back?)")
    p.add_argument("--out", default=RESULTS_DIR, help="folder for load.json and load.md")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.cli decode ...`` = ``finassist bench decode ...``."""
    from assistant.cli import main as finassist

    return finassist(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
