"""``finassist``: one CLI whose subcommands map to plain functions of the Python API.

User errors (``AssistantError``, unreadable files) print one line to stderr and
exit 1; usage errors exit 2 (argparse); no traceback for either.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .documents import DOCUMENT_TYPES, read_document, read_texts_csv
from .errors import AssistantError, InputTooLongError, InvalidInputError
from .inputs import ensure_text
from .pii import PiiPolicy, install_log_redaction
from .settings import BATCHING_BACKENDS, MAX_UPLOAD_BYTES, ONNX_PRECISIONS, BatchSettings, ServiceSettings

#: The defaults the options show and start from (one set, assistant/settings.py).
_BATCH, _SERVICE = BatchSettings(), ServiceSettings()

EXIT_USER_ERROR = 1


class CliInputError(InvalidInputError):
    """A file argument that cannot be read."""


def read_input(arg: str) -> str:
    """An argument is a file path if such a file exists, ``-`` for stdin, else the text itself. Files
    are read as the web UI reads them (``assistant/documents.py``: a PDF's text layer, UTF-8 text)."""
    if not arg.strip():
        return arg  # the task reports it as empty input
    if arg == "-":
        return ensure_text(sys.stdin.buffer.read(), name="standard input")
    path = _existing_file(arg)
    if path is None:
        return arg
    if path.suffix.lower() in DOCUMENT_TYPES:
        return read_document(path)
    if path.stat().st_size > MAX_UPLOAD_BYTES:  # a transcript without a known suffix: read as text
        raise InputTooLongError(f"{path.name} is over the limit of {MAX_UPLOAD_BYTES / 1e6:.0f} MB")
    return ensure_text(path.read_bytes(), name=path.name)


def read_inputs(args: Sequence[str]) -> list[str]:
    """Texts to classify: each argument as ``read_input`` reads it, but a ``.csv`` file gives the texts
    of its text column (as the web UI's batch upload does)."""
    texts: list[str] = []
    for arg in args:
        path = _existing_file(arg) if arg.strip() and arg != "-" else None
        if path is not None and path.suffix.lower() == ".csv":
            texts.extend(read_texts_csv(path))
        else:
            texts.append(read_input(arg))
    return texts


def _existing_file(arg: str) -> Path | None:
    """The file ``arg`` names, None when it is text; a directory or a missing file with a file's
    suffix is an error (a typo should not be classified as if it were the text)."""
    path = Path(arg).expanduser()
    if "\n" in arg or len(arg) > 1024:
        return None
    if path.is_file():
        return path
    if path.is_dir():
        raise CliInputError(f"{arg} is a directory, not a file")
    if len(arg) < 256 and path.suffix.lower() in (*DOCUMENT_TYPES, ".text", ".csv", ".json"):
        raise CliInputError(f"file not found: {arg}")
    return None


def _assistant(args: argparse.Namespace, batch_settings=None):
    from .api import Assistant

    return Assistant(
        generator=args.generator,
        encoder=args.encoder,
        device=args.device,
        dtype=args.dtype,
        upstream=args.upstream,
        upstream_api_key=os.environ.get("FINASSIST_UPSTREAM_API_KEY"),
        upstream_model=args.upstream_model,
        classifiers=_classifiers(getattr(args, "classifier", None)),
        pii=PiiPolicy(redact_inputs=getattr(args, "redact_inputs", False)),
        audit=False if getattr(args, "no_audit", False) else (getattr(args, "audit_log", None) or True),
        audit_retention_days=getattr(args, "audit_retention_days", None),
        user=f"cli:{_login()}",
        batch_settings=batch_settings or BatchSettings(backend=getattr(args, "backend", _BATCH.backend),
                                                       onnx_precision=getattr(args, "onnx_precision",
                                                                              _BATCH.onnx_precision)),
        documents=getattr(args, "library", None) or True,
    )


def _login() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a container without one)
        return "unknown"


def _classifiers(values: Sequence[str] | None) -> dict[str, str] | None:
    """``--classifier TASK=RUN_DIR`` (or a bare RUN_DIR: its run file names the task)."""
    if not values:
        return None
    from .runs import read_run

    mapping: dict[str, str] = {}
    for value in values:
        task, sep, run = value.partition("=")
        if not sep:
            task, run = read_run(value).task, value
        if not task.strip() or not run.strip():
            raise CliInputError(f"--classifier expects TASK=RUN_DIR, got {value!r}")
        mapping[task.strip()] = run.strip()
    return mapping


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


# ------------------------------------------------------------------ subcommands


def cmd_summarize(args: argparse.Namespace) -> None:
    summary = _assistant(args).summarize(read_input(args.input), style=args.style, max_words=args.max_words,
                                         method=args.method)
    _print_json(summary.to_dict()) if args.json else print(summary)


def cmd_classify(args: argparse.Namespace) -> None:
    texts = read_inputs(args.inputs)
    results = _assistant(args).classify(texts, task=args.task, threshold=args.threshold, zero_shot=args.zero_shot)
    if args.json:
        _print_json([r.to_dict() for r in results] if len(results) > 1 else results[0].to_dict())
        return
    for text, result in zip(texts, results):
        if len(results) > 1:
            print(f"# {' '.join(text.split())[:80]}")
        for s in result.scores[: args.top]:
            mark = "*" if s.label in result.labels else " "
            print(f"{mark} {s.label:<40} {s.score:.3f}")


def cmd_ask(args: argparse.Namespace) -> None:
    assistant = _assistant(args)
    given = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_p": args.top_p}
    sampling = {name: value for name, value in given.items() if value is not None}
    documents = args.document or None  # --document, repeatable: the whole library when not given
    question = read_input(args.question)
    if args.json:
        _print_json(assistant.ask(question, documents=documents, **sampling).to_dict())
        return
    if args.no_stream:
        answer = assistant.ask(question, documents=documents, **sampling)
        print(answer)
        _print_citations(answer.citations)
        return
    stream = assistant.ask_stream(question, documents=documents, **sampling)
    for piece in stream:
        print(piece, end="", flush=True)
    print()
    _print_citations(stream.citations)


def _print_citations(citations) -> None:
    """The passages a grounded answer cites, one line each, under the answer."""
    if citations:
        print("\nSources:")
    for citation in citations:
        line = str(citation)
        print(line if len(line) <= 160 else line[:159] + "…")


def cmd_docs_add(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    from .library import counted, files_in

    store = _library(args)
    failed = 0
    for path, name in files_in(args.paths):
        with tqdm(desc=name, unit="passage", leave=False, disable=None) as bar:
            def progress(done: int, total: int, stage: str) -> None:
                bar.total = total
                bar.set_postfix_str(stage, refresh=False)
                bar.update(done - bar.n)
            try:
                result = store.add(path, name=name, progress=progress)
            except AssistantError as exc:  # one bad file in a folder: said, and the others still added
                bar.close()
                print(f"finassist: error: {exc}", file=sys.stderr)
                failed += 1
                continue
        print(result)
    if failed:
        raise CliInputError(f"{counted(failed, 'file')} could not be added")


def cmd_docs_list(args: argparse.Namespace) -> None:
    documents = _library(args).list()
    if args.json:
        _print_json([d.to_dict() for d in documents])
        return
    if not documents:
        print("the library is empty: add files with `finassist docs add PATH...`")
        return
    width = max(len(d.name) for d in documents)
    print(f"{'id':>4}  {'document':<{width}}  {'pages':>5}  {'passages':>8}  added")
    for d in documents:
        print(f"{d.id:>4}  {d.name:<{width}}  {d.pages:>5}  {d.chunks:>8}  {d.added}")


def cmd_docs_remove(args: argparse.Namespace) -> None:
    store = _library(args)
    for name in args.names:
        removed = store.remove(name)
        print(f"removed {removed.name}")


def _library(args: argparse.Namespace):
    store = _assistant(args).documents
    if store is None:
        raise CliInputError("the document library is off (FINASSIST_LIBRARY=off): name one with --library PATH")
    return store


def cmd_models(args: argparse.Namespace) -> None:
    assistant = _assistant(args)
    rows = assistant.models(load=args.load)
    tasks = assistant.classification_tasks()
    if args.json:
        _print_json({"models": rows, "classification_tasks": tasks})
        return
    for row in rows:
        if "kind" in row:  # a fine-tuned run (classifier, summary or answer model), not a backbone
            metric = row.get("metric")
            score = f", {metric['name']} {metric['value']:.3f}" if metric else ""
            use = "in use" if row.get("configured") else "not in use (--classifier TASK=PATH)"
            use = "shipped, " + use if row.get("shipped") else use
            print(f"{row['role']}: {row['name']}  ({row['kind']} for task {row['task']}{score}; {use})")
            print(f"  base:   {row['base_model']}")
            if row.get("text_mix"):
                print(f"  mixed:  {row['text_mix']:.0%} of each score from a TF-IDF text head")
            print(f"  data licence: {row['licence']}")
            print(f"  path:   {row['location']} ({row['size_bytes'] / 1e6:.1f} MB)")
            continue
        print(f"{row['role']}: {row['name']}  ({row['architecture']})")
        print(f"  from:   {row['origin']}")
        print(f"  path:   {row['location']}")
        print(f"  device: {row['device']}, dtype {row['dtype']}, attention {row['attention']}")
        if row.get("backend"):
            print(f"  decodes with: {row['backend']}")
        if row.get("parameters"):
            print(f"  loaded: {row['parameters'] / 1e6:.1f}M parameters in {row['load_seconds']} s, "
                  f"context {row['context_window']} tokens")
    print(f"classification tasks: {', '.join(tasks)}")


def cmd_audit_export(args: argparse.Namespace) -> None:
    from .audit import SQLiteAuditStore, default_audit_path, export, parse_since

    path = Path(args.audit_log or os.environ.get("FINASSIST_AUDIT", "").strip() or default_audit_path()).expanduser()
    if not path.is_file():
        raise CliInputError(f"no audit log at {path}")
    store = SQLiteAuditStore(path)
    since = parse_since(args.since) if args.since else None
    until = parse_since(args.until) if args.until else None
    out = open(args.out, "w", encoding="utf-8", newline="") if args.out else sys.stdout
    try:
        for piece in export(store.records(since, until), args.format):
            out.write(piece)
    finally:
        store.close()
        if args.out:
            out.close()


def cmd_serve(args: argparse.Namespace) -> None:
    from .server import serve

    batching = BatchSettings(backend=args.backend, onnx_precision=args.onnx_precision,
                             max_batch_size=args.max_batch_size, max_queue=args.max_queue)
    assistant = _assistant(args, batch_settings=batching)
    limits = ServiceSettings(
        max_body_bytes=args.max_body_bytes,
        max_upload_bytes=args.max_upload_bytes,
        max_input_tokens=args.max_input_tokens,
        max_tokens_limit=args.max_tokens,
        request_timeout_s=args.timeout,
        header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout,
        max_connections=args.max_connections,
    )
    serve(
        assistant,
        host=args.host,
        port=args.port,
        settings=limits,
        api_key=args.api_key or os.environ.get("FINASSIST_API_KEY") or None,
        ui=args.ui,
        allowed_hosts=[h.strip() for h in args.allowed_hosts.split(",") if h.strip()] if args.allowed_hosts else None,
        log_level="debug" if args.verbose else "info",
    )


# ----------------------------------------------------------------------- parser


def positive(kind: type) -> Callable[[str], int | float]:
    def parse(value: str) -> int | float:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
        if number <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {value}")
        return number

    return parse


#: The entry-point group through which packages add their commands: each entry is a function
#: ``(subparsers, model_options, command)`` (``model_options``: the parent parser of the model and
#: device options; ``command``: the first word of the command line, or None).
COMMAND_GROUPS = "finassist.commands"


def command_groups() -> list:
    """The installed command groups (``finetune``, ``bench``, and any a third party adds), by name."""
    from importlib.metadata import entry_points

    return sorted(entry_points(group=COMMAND_GROUPS), key=lambda e: e.name)


def _model_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    g = parent.add_argument_group("model and device")
    g.add_argument("--generator", help="generator: preset, Hugging Face id or path (default smollm2-135m-instruct)")
    g.add_argument("--encoder", help="encoder: preset, Hugging Face id or path (default minilm-l6)")
    g.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    g.add_argument("--dtype", help="auto (default), float32, bfloat16, float16")
    g.add_argument("--backend", "--batching", dest="backend", choices=BATCHING_BACKENDS, default=_BATCH.backend,
                   help="what decodes: onnx (ONNX Runtime GenAI, CPU, the model exported once), dynamic (torch, "
                   "batches over generate), continuous (torch, transformers' continuous batching); auto (default): "
                   "onnx on a CPU where the model exports, else dynamic (`finassist models` says which runs)")
    g.add_argument("--onnx-precision", choices=ONNX_PRECISIONS, default=_BATCH.onnx_precision,
                   help=f"weights of the ONNX backend's export (default {_BATCH.onnx_precision})")
    g.add_argument("--upstream", help="generate on this OpenAI-compatible server (base URL) instead of locally; "
                   "key in $FINASSIST_UPSTREAM_API_KEY")
    g.add_argument("--upstream-model", help="model name to ask the upstream server for")
    g.add_argument("--classifier", action="append", metavar="TASK=RUN_DIR",
                   help="serve TASK with a fine-tuned run directory (repeatable); see `finassist models`")
    g.add_argument("-v", "--verbose", action="store_true", help="show library logs and warnings")
    t = parent.add_argument_group("privacy and audit")
    t.add_argument("--redact-inputs", action="store_true",
                   help="replace personal data (card numbers, IBANs, SSNs, e-mails, phones, account numbers) with "
                   "placeholders before the model sees it; answers show the values again (logs and the audit log are "
                   "always redacted)")
    t.add_argument("--audit-log", default=None, metavar="PATH",
                   help="audit log file (SQLite) for ask, chat and summarize answers (default $FINASSIST_AUDIT, else "
                   "the user's data folder)")
    t.add_argument("--audit-retention-days", type=positive(float), default=None,
                   help="remove audit records older than this (default: keep all)")
    t.add_argument("--no-audit", action="store_true", help="do not record answers in the audit log")
    d = parent.add_argument_group("documents")
    d.add_argument("--library", default=None, metavar="PATH",
                   help="the document library that grounds answers (default $FINASSIST_LIBRARY, else the user's "
                   "data folder; off: none)")
    return parent


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI: this library's commands and the groups of the installed packages built on it.
    ``command``: the one about to run (a group may then derive its options only when it is the one,
    as ``finetune``/``eval`` do: deriving them imports the training stack)."""
    from .tasks.summarize import METHODS, STYLES

    common = _model_options()
    parser = argparse.ArgumentParser(prog="finassist", description="Offline-first financial text assistant.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = add("summarize", cmd_summarize, "summarise a text file (or text, or - for stdin)")
    p.add_argument("input", help="file path, the text itself, or - for standard input")
    p.add_argument("--style", choices=STYLES, default="bullets")
    p.add_argument("--max-words", type=int, default=None, help="word budget (default depends on the style)")
    p.add_argument("--method", choices=METHODS, default=None,
                   help="extract: key sentences rewritten into bullets, each with its source (default); chunked: "
                        "the generator reads the whole text chunk by chunk")
    p.add_argument("--json", action="store_true", help="print the result as JSON: every bullet with its source "
                                                       "sentence(s) and their position in the text")

    p = add("classify", cmd_classify, "classify texts (sentiment, contract-clause, unfair-tos, ...) with the "
                                      "shipped fine-tuned classifiers, or --zero-shot")
    p.add_argument("inputs", nargs="+", help="texts or file paths (one result per argument), - for stdin")
    p.add_argument("--task", default="sentiment", help="classification task (see `finassist models`); default sentiment")
    p.add_argument("--threshold", type=float, default=None,
                   help="multi-label threshold (default: the classifier's tuned per-label thresholds)")
    p.add_argument("--zero-shot", action="store_true",
                   help="compare with the task's label descriptions instead of using its fine-tuned classifier")
    p.add_argument("--top", type=int, default=5, help="how many labels to print per text")
    p.add_argument("--json", action="store_true")

    p = add("ask", cmd_ask, "ask a question (answer streams token by token)")
    p.add_argument("question", help="the question, a file path, or - for stdin")
    # No defaults here: what is not given comes from prompts/ask.toml, as for every front door.
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: prompts/ask.toml's")
    p.add_argument("--temperature", type=float, default=None, help="0 = greedy (the default)")
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--no-stream", action="store_true", help="print the answer when it is complete")
    p.add_argument("--document", action="append", metavar="NAME",
                   help="search only this document of the library (its name or id in `finassist docs list`; "
                        "repeat for several): for a question about one report when others have rows of the same name")
    p.add_argument("--json", action="store_true")

    docs = sub.add_parser("docs", help="the document library that answers are grounded in (add, list, remove)",
                          description="The document library: files whose passages ground `finassist ask` answers, "
                          "with citations.")
    docs_sub = docs.add_subparsers(dest="docs", required=True, metavar="ACTION")
    p = docs_sub.add_parser("add", parents=[common], help="add files and folders (PDF, txt, md, html, csv)")
    p.set_defaults(func=cmd_docs_add)
    p.add_argument("paths", nargs="+", help="files, or folders (their files of those types, recursively)")
    p = docs_sub.add_parser("list", parents=[common], help="the documents, their pages and passages, when added")
    p.set_defaults(func=cmd_docs_list)
    p.add_argument("--json", action="store_true")
    p = docs_sub.add_parser("remove", parents=[common], help="remove documents by name (as listed) or id")
    p.set_defaults(func=cmd_docs_remove)
    p.add_argument("names", nargs="+", help="document names or ids")

    p = add("models", cmd_models, "show which models resolved, from where, on which device and dtype")
    p.add_argument("--load", action="store_true", help="also load them (parameters, load time)")
    p.add_argument("--json", action="store_true")

    p = add("serve", cmd_serve, "run the HTTP service (OpenAI-compatible chat, summarize, classify)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    p.add_argument("--api-key", default=None,
                   help="require Authorization: Bearer KEY (default: $FINASSIST_API_KEY; none: no key needed)")
    p.add_argument("--max-batch-size", type=positive(int), default=_BATCH.max_batch_size,
                   help=f"chat requests decoded together (default {_BATCH.max_batch_size})")
    p.add_argument("--max-queue", type=positive(int), default=_BATCH.max_queue,
                   help=f"chat requests that may wait; more get 429 (default {_BATCH.max_queue})")
    p.add_argument("--max-tokens", type=positive(int), default=_SERVICE.max_tokens_limit,
                   help=f"largest max_tokens a request may ask for (default {_SERVICE.max_tokens_limit})")
    p.add_argument("--max-input-tokens", type=positive(int), default=None, help="longest chat prompt in tokens (default: the model's window)")
    p.add_argument("--max-body-bytes", type=positive(int), default=_SERVICE.max_body_bytes,
                   help=f"largest request body (default {_SERVICE.max_body_bytes:,} bytes)")
    p.add_argument("--timeout", type=positive(float), default=_SERVICE.request_timeout_s,
                   help=f"seconds before a request is answered 504 (default {_SERVICE.request_timeout_s:g})")
    p.add_argument("--ui", action="store_true", help="also serve the web UI at / (what app.py does)")
    p.add_argument("--max-upload-bytes", type=positive(int), default=_SERVICE.max_upload_bytes,
                   help=f"largest file the web UI accepts (default {_SERVICE.max_upload_bytes:,} bytes)")
    p.add_argument("--allowed-hosts", default=None, metavar="NAMES",
                   help="Host header names to answer, comma-separated (*.example.com for subdomains, * for any); "
                   "default: those of --host (loopback names on 127.0.0.1; any on 0.0.0.0)")
    p.add_argument("--header-timeout", type=positive(float), default=_SERVICE.header_timeout_s,
                   help=f"seconds a client has to send a request's headers (default {_SERVICE.header_timeout_s:g})")
    p.add_argument("--body-timeout", type=positive(float), default=_SERVICE.body_timeout_s,
                   help=f"seconds a client has to send a request's body (default {_SERVICE.body_timeout_s:g})")
    p.add_argument("--max-connections", type=positive(int), default=_SERVICE.max_connections,
                   help=f"open connections at most; more are closed at once (default {_SERVICE.max_connections})")

    # Command groups of the packages built on this library (finetune, eval, bench), found through the
    # "finassist.commands" entry points (pyproject.toml): this package never imports its consumers.
    for group in command_groups():
        group.load()(sub, common, command)

    audit = sub.add_parser("audit", help="the audit log of answers (ask, chat, summarize)")
    audit_sub = audit.add_subparsers(dest="audit", required=True, metavar="ACTION")
    p = audit_sub.add_parser("export", help="write audit records as JSON Lines or CSV")
    p.set_defaults(func=cmd_audit_export, verbose=False)
    p.add_argument("--since", default=None, help="from this date or time (2026-01-31, 2026-01-31T09:00) or this "
                   "long ago (7d, 12h, 30m)")
    p.add_argument("--until", default=None, help="up to (not including) this date, time or time ago")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("--out", default=None, help="file to write (default: standard output)")
    p.add_argument("--audit-log", default=None, metavar="PATH",
                   help="the audit log file (default $FINASSIST_AUDIT, else the user's data folder)")

    return parser


def _quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    # pypdf warns about the damage it finds in a PDF before failing on it; the error line says it once.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command=argv[0] if argv else None)
    args = parser.parse_args(argv)
    if not getattr(args, "verbose", False):  # benchmarks without model options have no --verbose
        _quiet_libraries()
    install_log_redaction()  # personal data never reaches a log line, whatever the command
    try:
        args.func(args)
    except AssistantError as exc:
        print(f"finassist: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("finassist: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `finassist ... | head`
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
