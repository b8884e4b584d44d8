"""How the grounded answerer is built (``scripts/build-models.sh answerer``): its training pairs from
the "tune" half of TAT-QA dev (``finetune/answer_data.py``), the exact training options, and where
the compact adapter is installed (``assistant/shipped_runs/ask/answerer``).

It is judged by what ``Assistant.ask`` makes with it: ``finassist eval ask`` on the "report" half
(questions on documents it never trained on), which ``docs/results.md`` records.
"""

from __future__ import annotations

import logging
from pathlib import Path

from assistant.shipped import ASK_ANSWERER, ASK_DIR

log = logging.getLogger(__name__)

NAME = "answerer"
DATA_LICENCE = "CC BY 4.0 (TAT-QA)"
#: The pairs file, under the work folder.
PAIRS = Path("data") / "answer-train.jsonl"

#: LoRA on every linear layer of SmolLM2-135M-Instruct, one epoch of prompts near 550 tokens: about 90
#: minutes on a 2-core CPU.
OPTIONS = {
    "task": "answer", "lora": True, "merge_lora": False, "lora_r": 16, "lora_alpha": 32,
    "lora_target_modules": "all-linear", "epochs": 1.0, "batch_size": 4, "gradient_accumulation_steps": 2,
    "learning_rate": 5e-4, "max_input_tokens": 900, "max_target_tokens": 96, "save_steps": 10, "eval_steps": 0,
    "logging_steps": 2, "val_fraction": 0.03, "baseline_eval": False, "seed": 0,
}


def build_answerer(data: str = "../shared/data", work: str = "runs/shipped", install_run: bool = True,
                   resume: bool = True) -> Path:
    """Prepare the pairs, train (or reuse the finished run in ``work``; an interrupted run resumes
    from its last checkpoint) and install the answerer. Returns the installed folder (the run when
    ``install_run`` is False)."""
    from assistant.runs import is_run

    from .answer_data import answer_pairs
    from .config import GenerateTrainConfig
    from .summary_recipes import finish_shipped_run, train_adapter

    work_dir = Path(work).expanduser()
    out = work_dir / NAME
    if not (is_run(out) and resume):
        pairs = work_dir / PAIRS
        counts = answer_pairs(str(Path(data).expanduser() / "qa" / "tatqa" / "dev.jsonl"), pairs)
        log.info("answerer pairs: %s", counts)
        train_adapter(GenerateTrainConfig(train=str(pairs), out=str(out), **OPTIONS), resume)
    return finish_shipped_run(out, NAME, ASK_ANSWERER, ASK_DIR, DATA_LICENCE, "cc-by-4.0", install_run)
