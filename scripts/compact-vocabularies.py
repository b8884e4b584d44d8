"""Rewrite the text-feature vocabularies (``words.json``, ``chars.json``) of existing runs on one line,
as training now writes them (``finetune.files.write_vocabulary``), and refresh the size their run file
and card state. The content is unchanged (the same terms, IDF values and settings), so every score is.

    .venv/bin/python scripts/compact-vocabularies.py RUN [RUN ...]      # an ensemble's members too
    .venv/bin/python scripts/compact-vocabularies.py --shipped          # every run shipped with the package
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from assistant.classifiers import TEXT_FEATURES
from assistant.runs import RUN_FILE
from assistant.shipped import SHIPPED_DIR
from finetune.files import write_vocabulary
from finetune.runs import add_metrics


def compact(run: Path) -> int:
    """Bytes saved in ``run`` and the runs inside it; the card keeps the licence its front matter names."""
    saved = 0
    for member in sorted(p.parent for p in run.glob(f"*/{RUN_FILE}")):
        saved += compact(member)
    if not any((run / f.file).is_file() for f in TEXT_FEATURES.values()) and not saved:
        return 0  # nothing rewritten: the run file and card stay as they are
    for feature in TEXT_FEATURES.values():
        path = run / feature.file
        if path.is_file():
            before = path.stat().st_size
            state = json.loads(path.read_text(encoding="utf-8"))
            write_vocabulary(state, path)
            assert json.loads(path.read_text(encoding="utf-8")) == state
            saved += before - path.stat().st_size
    card = run / "README.md"
    licence = re.search(r'^license: "(.+)"$', card.read_text(encoding="utf-8"), re.M) if card.is_file() else None
    if (run / RUN_FILE).is_file():
        add_metrics(run, {}, license=licence.group(1) if licence else None)
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--shipped", action="store_true", help="every run in assistant/shipped_runs")
    args = parser.parse_args()
    runs = list(args.runs) + (sorted(p.parent for p in SHIPPED_DIR.rglob(RUN_FILE) if
                                     not (p.parent.parent / RUN_FILE).is_file()) if args.shipped else [])
    for run in runs:
        print(f"{run}: {compact(run) / 1e6:.2f} MB saved")


if __name__ == "__main__":
    main()
