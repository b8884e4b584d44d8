"""``python -m finetune classify ...`` / ``accelerate launch -m finetune classify ...``: see finetune/cli.py."""

import sys

from finetune.cli import main

sys.exit(main())
