#!/usr/bin/env bash
# Rebuild every classifier shipped with the package (assistant/shipped_runs/) from the public
# datasets in ../shared/data, with the recipes in finetune/recipes.py (fixed seeds), report each on
# its held-out data and install it. Long steps show progress bars.
#
#   scripts/build-models.sh                     # every shipped classifier
#   scripts/build-models.sh sentiment           # one of them
#   scripts/build-models.sh summary-scorer summary-rewriter summary-headliner   # the summariser's (finetune/summary_recipes.py)
#   scripts/build-models.sh answerer            # the grounded answerer of `ask` (finetune/answer_recipe.py)
#   DATA=/path/to/data scripts/build-models.sh  # another copy of the datasets
#
# Finished runs under runs/shipped are reused and interrupted ones resume; FRESH=1 starts over.
# On the project's 2-core CPU: sentiment (LoRA) about an hour, contract-clause and unfair-tos
# (heads with cross-validation) 15-45 minutes each; summary-scorer about 20 minutes, summary-rewriter
# (LoRA on SmolLM2-135M) about two hours, summary-headliner (LoRA, Reuters; after the scorer, which
# builds its inputs) about 30 minutes, answerer (LoRA, TAT-QA) about 90 minutes; a GPU shortens
# the LoRA runs to minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA=${DATA:-../shared/data}
tasks=("$@")
if [ ${#tasks[@]} -eq 0 ]; then
  mapfile -t tasks < <("$PY" -c "from finetune.recipes import RECIPES; from finetune.summary_recipes import SUMMARY_RECIPES; from finetune.answer_recipe import NAME; print('\n'.join([*RECIPES, *SUMMARY_RECIPES, NAME]))")
fi
resume=--resume
[ "${FRESH:-0}" = 1 ] && resume=--no-resume
for task in "${tasks[@]}"; do
  echo "build-models: $task"
  "$PY" -m assistant.cli finetune shipped --task "$task" --data "$DATA" --work runs/shipped "$resume"
done
"$PY" - <<'PY'
from assistant.shipped import SHIPPED_DIR
total = sum(f.stat().st_size for f in SHIPPED_DIR.rglob("*") if f.is_file())
print(f"build-models: shipped models take {total / 1e6:.1f} MB in {SHIPPED_DIR}")
PY
