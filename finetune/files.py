"""Writing files atomically: through a temporary file in the same folder, then ``os.replace``, so
a reader (the assistant loading a run, a person opening a report) or a crash mid-write never
sees half a file. Run files, model cards and evaluation reports are all written this way."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: Path | str, write: Callable[[BinaryIO], object]) -> Path:
    """Create or replace ``path`` with what ``write`` writes to a binary file handle; returns the path.
    The folder is created if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its 0600 mode would stick to the file, and run folders and reports are
    # meant to be shared; "x" mode creates it with the umask's permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Create or replace ``path`` with ``text`` in UTF-8, atomically."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data))


def store_half(source: Path | str, target: Path | str | None = None) -> Path:
    """Write the tensors of the safetensors file ``source`` in float16 to ``target`` (``source`` itself
    when None), atomically. Adapters ship this way: half the bytes of package data, and loading casts
    them back into the base model's dtype before merging (the merged weights move by far less than
    the adapters' own training noise)."""
    import torch
    from safetensors.torch import load_file, save

    tensors = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous()
               for k, v in load_file(str(source)).items()}
    data = save(tensors, metadata={"format": "pt"})
    return atomic_write(target or source, lambda fh: fh.write(data))


def write_vocabulary(state: dict, path: Path | str) -> Path:
    """Write a text feature's vectorizer state (``assistant.classifiers.word_vectorizer_state``: tens of
    thousands of terms and IDF values) as JSON on one line, atomically: a quarter fewer bytes of package
    data than indented JSON, and nobody reads these files by eye."""
    import json

    return atomic_write_text(path, json.dumps(state, ensure_ascii=False, separators=(",", ":")) + "\n")
