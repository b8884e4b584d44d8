"""ONNX Runtime GenAI in a process of its own, driven by the ONNX backend (``assistant/onnx_backend.py``).

Why a process: onnxruntime-genai's Python calls (``append_tokens``, ``generate_next_token``) hold the
GIL for as long as they run. Measured on the 2-core CPU: a Python thread counting beside a batched
decode ran 20x slower with GenAI on two threads, 70x with GenAI on one thread and a core to spare. In
the server's process every decoding step therefore stopped its event loop: under 200 clients a
request waited seconds before it was even refused (``finassist bench load``). Here the decoding runs
in a child process; the server's process sends it small commands and waits for the tokens on a
pipe, which releases the GIL, so its event loop runs while the model computes.

The protocol is one request and one answer per call, in order, over two pipes framed by
``multiprocessing.connection.Connection``:
``new`` (search options and the prompts' token ids: a prefilled generator, by id), ``step`` (one
token or a few for every row: the tokens, and whether the generator is done), ``drop`` (free a generator and
its KV cache), ``stop``. The scheduling (which requests share a generator, when one ends) stays in
the ONNX backend; the child holds only the model and the generators.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GenerationError, ModelLoadError, ServiceUnavailableError

log = logging.getLogger(__name__)

#: Seconds the child may take to load the model before the start counts as failed.
START_TIMEOUT_S = 120


class GenAIWorker:
    """The child process that decodes (see the module doc). Thread-safe: calls are serialised."""

    def __init__(self, model_dir: str | Path, threads: int) -> None:
        self.model_dir = str(model_dir)
        self.threads = threads
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        # A fresh interpreter running this module (not multiprocessing's spawn, which re-imports the
        # caller's main script: a user's script without an ``if __name__ == "__main__"`` guard would
        # run again in the child). Two pipes carry the calls; multiprocessing's Connection frames them.
        from_parent, to_child = os.pipe()  # (read end, write end)
        from_child, to_parent = os.pipe()
        command = [sys.executable, "-m", "assistant.genai_worker", self.model_dir, str(self.threads),
                   str(from_parent), str(to_parent)]
        try:
            self._process = subprocess.Popen(command, pass_fds=(from_parent, to_parent), stdin=subprocess.DEVNULL)
        except (OSError, ValueError) as exc:  # no process to be had here (pass_fds is POSIX): torch decodes instead
            for fd in (from_parent, to_child, from_child, to_parent):
                os.close(fd)
            raise ModelLoadError(f"cannot start the ONNX decoding process: {exc}") from exc
        os.close(from_parent)
        os.close(to_parent)
        self._send = Connection(to_child, readable=False)
        self._recv = Connection(from_child, writable=False)
        if not self._recv.poll(START_TIMEOUT_S):
            self._kill()
            raise ModelLoadError(f"ONNX Runtime GenAI did not load {self.model_dir} within {START_TIMEOUT_S} s")
        try:
            status, value = self._recv.recv()
        except EOFError:
            self._kill()
            raise ModelLoadError(f"ONNX Runtime GenAI's process ended while loading {self.model_dir}") from None
        if status != "ok":
            self._kill()
            raise ModelLoadError(f"ONNX Runtime GenAI cannot load {self.model_dir}: {value}")
        #: The onnxruntime-genai version the child runs.
        self.version = value

    def _kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._send.close()
        self._recv.close()

    def _call(self, op: str, *args: Any) -> Any:
        with self._lock:
            try:
                self._send.send((op, args))
                status, value = self._recv.recv()
            except (EOFError, OSError) as exc:
                raise ServiceUnavailableError(f"the decoding process ended unexpectedly ({exc or 'pipe closed'})") from None
        if status != "ok":
            raise GenerationError(f"generation failed: {value}")
        return value

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def new_generator(self, options: dict, tokens: np.ndarray) -> int:
        """A generator with these search options, its rows' prompts (right-padded) prefilled; its id.
        A child that has died is started again first (its generators died with it)."""
        if not self.alive:
            log.warning("the ONNX decoding process had ended (exit code %s): starting it again", self._process.returncode)
            self._kill()
            self._start()
        return self._call("new", options, tokens)

    def step(self, generator: int, tokens: int = 1) -> tuple[np.ndarray, bool]:
        """Up to ``tokens`` tokens for every row of ``generator``, shape (tokens, rows) (fewer where it
        reaches its end); and whether it can go no further."""
        return self._call("step", generator, tokens)

    def drop(self, generator: int) -> None:
        if self.alive:
            self._call("drop", generator)

    def close(self) -> None:
        with self._lock:
            if self.alive:
                try:
                    self._send.send(("stop", ()))
                    self._process.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            self._kill()


def serve(calls: Connection, answers: Connection, model_dir: str, threads: int) -> None:
    """The child's loop: load the model, then answer calls until ``stop`` or the pipe closes."""
    try:
        import onnxruntime_genai as og

        config = og.Config(model_dir)
        # ONNX Runtime's default thread count here was 1 on a 2-core machine: 72 tok/s instead of 113
        # (docs/benchmarks/decode.md). Use the cores the server may run on, as torch does.
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
        model = og.Model(config)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises ModelLoadError
        answers.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    answers.send(("ok", og.__version__))
    generators: dict[int, Any] = {}
    next_id = 0
    while True:
        try:
            op, args = calls.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            break
        if op == "stop":
            break
        try:
            if op == "new":
                options, tokens = args
                search = og.GeneratorParams(model)
                search.set_search_options(**options)
                generator = og.Generator(model, search)
                generator.append_tokens(tokens)
                next_id += 1
                generators[next_id] = generator
                answer: Any = next_id
            elif op == "step":
                generator = generators[args[0]]
                rows = []
                for _ in range(args[1]):
                    generator.generate_next_token()
                    rows.append(generator.get_next_tokens())
                    if generator.is_done():
                        break
                answer = (np.stack(rows), bool(generator.is_done()))
            elif op == "drop":
                answer = generators.pop(args[0], None) is not None
            else:
                raise ValueError(f"unknown call {op!r}")
        except BaseException as exc:  # noqa: BLE001 - this call fails, the process goes on
            answers.send(("error", f"{type(exc).__name__}: {exc}"))
            continue
        answers.send(("ok", answer))


if __name__ == "__main__":
    model, threads, calls, answers = sys.argv[1:5]
    serve(Connection(int(calls), writable=False), Connection(int(answers), readable=False), model, int(threads))
