"""``torch``, imported when first used rather than when the package is.

Importing torch costs about a second (2-core CPU), and the fast CPU path does not use it: the ONNX
backend decodes with ONNX Runtime and tokenises with ``tokenizers``. A server on that path answers its
first request a second sooner when torch is imported only by what needs it (the encoder, the torch
backends, training: ``finassist bench coldstart``). The modules of this package write
``from .lazy import torch`` and use it as usual; type annotations are strings
(``from __future__ import annotations``), so only real use imports it.

Why not the standard library's ``importlib.util.LazyLoader``: it puts a stand-in module into
``sys.modules`` that loads on any attribute access, and libraries ask ``importlib.util.find_spec("torch")``
whether torch is installed (transformers does, on import), which reads ``sys.modules["torch"].__spec__``
and so imports torch after all. This stand-in stays out of ``sys.modules``: it imports the real module
on its first attribute access and hands every attribute through from then on.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any


class LazyModule:
    """A module imported on first attribute access (see the module doc)."""

    def __init__(self, name: str) -> None:
        self.__dict__["_name"] = name
        self.__dict__["_module"] = None

    def _load(self) -> ModuleType:
        module = self.__dict__["_module"]
        if module is None:
            module = importlib.import_module(self.__dict__["_name"])
            self.__dict__["_module"] = module
        return module

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        setattr(self._load(), attr, value)

    def __repr__(self) -> str:
        state = "imported" if self.imported else "not imported yet"
        return f"<lazy module {self.__dict__['_name']!r} ({state})>"

    @property
    def imported(self) -> bool:
        """Whether the real module has been imported (by this stand-in or by anyone)."""
        return self.__dict__["_module"] is not None or self.__dict__["_name"] in sys.modules


torch = LazyModule("torch")
