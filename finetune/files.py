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
