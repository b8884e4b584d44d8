"""``finassist finetune classify|generate|ensemble|shipped`` and ``finassist eval classify|summarize|retrieval|ask``.

As in litgpt, each subcommand maps to one plain function, and its options are
derived from that function's configuration (a dataclass's fields, or the
function's keyword arguments): one definition, no option lists to keep in step.
``python -m finetune ...`` (and ``accelerate launch -m finetune ...`` on several
GPUs) runs the same commands without the rest of the ``finassist`` CLI.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: name -> (module, config dataclass or None, function, one-line help)
TRAIN_COMMANDS = {
    "classify": ("finetune.train_classifier", "ClassifyTrainConfig", "train_classifier",
                 "fine-tune an encoder classifier (single- or multi-label; --head-only: a minute on CPU)"),
    "generate": ("finetune.train_generator", "GenerateTrainConfig", "train_generator",
                 "supervised fine-tuning of a causal LM on input -> target pairs (--lora with peft)"),
    "ensemble": ("finetune.ensemble", "EnsembleConfig", "build_ensemble",
                 "average the probabilities of classifier runs, their shares chosen on validation data; the "
                 "ensemble is a run like any other"),
    "shipped": ("finetune.recipes", None, "build_shipped",
                "rebuild a classifier shipped with the package from its recipe, report it on held-out data, "
                "install it (scripts/build-models.sh runs every one)"),
}
EVAL_COMMANDS = {
    "classify": ("finetune.evaluation.classifier_runner", None, "evaluate_classifier",
                 "accuracy, micro/macro F1, per-label scores and a confusion matrix of a classifier"),
    "summarize": ("finetune.evaluation.summarizer_runner", None, "evaluate_summarizer",
                  "ROUGE-1/2/L, numeric precision and length of summaries, with LEAD-3 in the same run"),
    "retrieval": ("finetune.evaluation.retrieval", None, "evaluate_retrieval",
                  "recall@k of the document library: each TAT-QA question's own table and paragraphs among "
                  "the passages found"),
    "ask": ("finetune.evaluation.ask_runner", None, "evaluate_ask",
            "TAT-QA exact match and F1 of grounded answers (the answerer adapter), citations, and how often "
            "questions are declined when their document is absent"),
}
#: Keyword arguments of eval functions that are not command-line options.
_HIDDEN = {"callbacks", "command"}


def _plain_type(annotation: Any) -> tuple[Any, bool]:
    """(the option's type, whether None is allowed) from an annotation like ``int | None``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), True
    return annotation, False


def _add_option(parser: argparse.ArgumentParser, name: str, annotation: Any, default: Any, help: str,
                required: bool) -> None:
    flag = "--" + name.replace("_", "-")
    help = (help or "").replace("%", "%%")  # argparse formats help with %: "~20% slower" must stay text
    kind, _ = _plain_type(annotation)
    if kind is Path:
        kind = str
    if kind is bool:  # a None default ("as the assistant does") stays None unless the flag is given
        parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                            default=None if default is None else bool(default), help=help)
        return
    if kind not in (int, float, str):
        kind = str
    shown = "" if default is None or required else f" (default: {default})"
    parser.add_argument(flag, dest=name, type=kind, default=None if required else default, required=required,
                        help=help + shown, metavar=name.upper())


def _options(target: Callable | type) -> list[tuple[str, Any, Any, str, bool]]:
    """(name, annotation, default, help, required) for a config dataclass or a function."""
    hints = typing.get_type_hints(target)
    rows = []
    if dataclasses.is_dataclass(target):
        for f in dataclasses.fields(target):
            if not f.init:
                continue
            missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            default = None if missing else (f.default if f.default is not dataclasses.MISSING else f.default_factory())
            required = missing or bool(f.metadata.get("required"))
            rows.append((f.name, hints.get(f.name, str), default, f.metadata.get("help", ""), required))
        return rows
    for p in inspect.signature(target).parameters.values():
        if p.name in _HIDDEN or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        missing = p.default is inspect.Parameter.empty
        rows.append((p.name, hints.get(p.name, str), None if missing else p.default,
                     _param_help(target, p.name), missing))
    return rows


def _param_help(func: Callable, name: str) -> str:
    """The line about ``name`` in the function's docstring (``name: ...`` or ``name``: ...), if any."""
    for line in (inspect.getdoc(func) or "").splitlines():
        stripped = line.strip().lstrip("-* ")
        for prefix in (f"{name}:", f"``{name}``:", f"``{name}``"):
            if stripped.startswith(prefix):
                return stripped[len(prefix):].strip(" :")
    return ""


def _resolve(spec: tuple) -> tuple[type | None, Callable]:
    import importlib

    module = importlib.import_module(spec[0])
    return (getattr(module, spec[1]) if spec[1] else None), getattr(module, spec[2])


def add_commands(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser] = (),
                 options: bool = True) -> None:
    """Add ``finetune`` and ``eval`` (each with its task subcommands) to a CLI's subparsers.

    ``options=False`` adds the commands without their options: deriving them imports the
    training modules (transformers' Trainer, peft: seconds), which other commands should not
    pay for; the CLI asks for the options only when the command is ``finetune`` or ``eval``.
    """
    for group, table, title in (("finetune", TRAIN_COMMANDS, "fine-tune a model; the run directory is a model"),
                                ("eval", EVAL_COMMANDS, "evaluate a model on labelled data (JSON + Markdown + PNG)")):
        parser = sub.add_parser(group, help=title, description=title)
        tasks = parser.add_subparsers(dest=f"{group}_task", required=True, metavar="TASK")
        for name, spec in table.items():
            p = tasks.add_parser(name, help=spec[3], description=spec[3], parents=list(parents))
            p.set_defaults(func=_runner(group, spec))
            if options:
                config_cls, func = _resolve(spec)
                for row in _options(config_cls or func):
                    _add_option(p, *row)


def register(sub: argparse._SubParsersAction, model_options: argparse.ArgumentParser, command: str | None) -> None:
    """The ``finassist.commands`` entry point: ``finetune`` and ``eval`` on the root command. Their
    options are derived only when one of them is the command (see ``add_commands``)."""
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", help="show library logs and warnings")
    add_commands(sub, parents=[verbose], options=command in ("finetune", "eval"))


def _runner(group: str, spec: tuple) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        config_cls, func = _resolve(spec)
        values = {name: getattr(args, name) for name, *_ in _options(config_cls or func)}
        if config_cls is not None:
            out = func(config_cls(**values))
            print(f"{group}: run saved in {out}")
            card = Path(out) / "README.md"
            if card.is_file():
                print(f"{group}: model card {card}")
            return
        result = func(**values)
        if isinstance(result, list):  # several systems side by side (LEAD-3, zero-shot, fine-tuned)
            from finetune.evaluation import compare_markdown

            print(compare_markdown(result))
        else:
            print(result.to_markdown())
        if values.get("out"):
            print(f"{group}: reports written to {values['out']}")

    return run


def main(argv: list[str] | None = None) -> int:
    """``python -m finetune classify ...`` = ``finassist finetune classify ...``; ``python -m finetune
    eval classify ...`` = ``finassist eval classify ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from assistant.cli import main as finassist

    if argv and argv[0] in ("finetune", "eval"):
        return finassist(argv)
    return finassist(["finetune", *argv])
