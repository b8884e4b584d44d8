"""Start the web UI: ``python app.py`` then open http://127.0.0.1:7860."""

from __future__ import annotations

import argparse
import sys

from assistant.api import Assistant
from assistant.errors import AssistantError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Financial text assistant web UI")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--generator", help="generator preset, Hugging Face id or path")
    parser.add_argument("--encoder", help="encoder preset, Hugging Face id or path")
    parser.add_argument("--device", help="auto (default), cpu, cuda")
    parser.add_argument("--dtype", help="auto (default), float32, bfloat16, float16")
    args = parser.parse_args(argv)
    try:
        assistant = Assistant(generator=args.generator, encoder=args.encoder, device=args.device, dtype=args.dtype)
        from assistant.ui import build_ui

        demo = build_ui(assistant)
    except AssistantError as exc:
        print(f"app: error: {exc}", file=sys.stderr)
        return 1
    print(f"Financial text assistant: open http://{args.host}:{args.port}", flush=True)
    demo.queue(default_concurrency_limit=4).launch(server_name=args.host, server_port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
