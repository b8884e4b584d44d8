"""Start the web UI and the HTTP API in one process: ``python app.py`` then open http://127.0.0.1:7860.

The same as ``finassist serve --ui --port 7860``: every ``finassist serve`` option works
here too (``--generator``, ``--device``, ``--api-key``, ``--host``, ``--port``...).
"""

from __future__ import annotations

import sys

from assistant.cli import main

if __name__ == "__main__":
    # Options given on the command line come after the defaults, so they win.
    sys.exit(main(["serve", "--ui", "--port", "7860", *sys.argv[1:]]))
