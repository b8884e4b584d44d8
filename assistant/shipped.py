"""The classifiers shipped with the package: compact fine-tuned runs in ``assistant/shipped_runs/<task>``.

They are the default for their tasks: a LoRA adapter or a head over the base encoder's
embeddings, each with its run file and model card, and no copy of the base model (the run file
names it and records its fingerprint). ``finetune/recipes.py`` rebuilds them
(``scripts/build-models.sh``).
"""

from __future__ import annotations

import json
from pathlib import Path

from .runs import RUN_FILE

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped_runs"
#: The summariser's shipped models (extract-then-rewrite, ``assistant/tasks/summarize.py``): a folder
#: of ``SHIPPED_DIR`` without a run file of its own, so ``shipped_runs`` never lists them as
#: classification tasks. ``scorer``: a head over the encoder that scores sentences as key facts;
#: ``rewriter``: a LoRA adapter of the default generator that writes one bullet from them;
#: ``headliner``: another that writes a news headline from a text's first and best sentences.
SUMMARY_DIR = SHIPPED_DIR / "summarize"
SUMMARY_SCORER = "scorer"
SUMMARY_REWRITER = "rewriter"
SUMMARY_HEADLINER = "headliner"
#: The grounded answerer (``assistant/tasks/ask.py``): a LoRA adapter of the default generator that
#: answers from passages of the user's documents in a short form (copied text, or arithmetic over
#: copied figures that ``assistant.calculator`` computes). Like the summariser's, its folder has no
#: run file of its own.
ASK_DIR = SHIPPED_DIR / "ask"
ASK_ANSWERER = "answerer"
#: The files a shipped run consists of (globs): run file, card, weights, text-feature vocabularies.
SHIPPED_FILES = (RUN_FILE, "README.md", "adapter_config.json", "adapter_model.safetensors", "head.safetensors",
                 "text_head.safetensors", "words.json", "chars.json")


def shipped_summary_model(name: str, base: str, root: Path | None = None) -> Path | None:
    """The shipped summary model ``name`` (``SUMMARY_SCORER``, ``SUMMARY_REWRITER``,
    ``SUMMARY_HEADLINER``) when it was fine-tuned from ``base`` (``shipped_model``)."""
    return shipped_model((root or SUMMARY_DIR) / name, base)


def shipped_model(folder: Path, base: str) -> Path | None:
    """The shipped model in ``folder`` when it was fine-tuned from ``base`` (the model spec its run
    file names, compared as ``shipped_runs`` does); None when it is absent or belongs to another base
    model. An unreadable run file is returned, so that loading it names the problem."""
    if not (folder / RUN_FILE).is_file():
        return None
    try:
        spec = json.loads((folder / RUN_FILE).read_text(encoding="utf-8")).get("base_model")
    except (OSError, ValueError, AttributeError):
        return folder
    return folder if str(spec).lower() == str(base).lower() else None


def shipped_runs(encoder: str | None = None, root: Path | None = None) -> dict[str, Path]:
    """task -> run directory of every shipped classifier (a folder of ``root``, default
    ``SHIPPED_DIR``, with a run file). ``encoder``: only those fine-tuned from this encoder
    (the ``base_model`` their run file names); a run file that cannot be read is listed, so that
    using it reports what is wrong with it."""
    root = root or SHIPPED_DIR
    if not root.is_dir():
        return {}
    found = {}
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name.startswith(".") or not (folder / RUN_FILE).is_file():
            continue
        if encoder is not None:
            try:
                base = json.loads((folder / RUN_FILE).read_text(encoding="utf-8")).get("base_model")
            except (OSError, ValueError, AttributeError):
                base = encoder  # unreadable: listed, and reading it again will name the problem
            if str(base).lower() != str(encoder).lower():
                continue
        found[folder.name] = folder
    return found
