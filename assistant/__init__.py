"""Offline-first financial text assistant: summarise, classify, ask.

>>> from assistant import Assistant
>>> a = Assistant()
>>> print(a.classify("Operating profit fell to EUR 3.1 mn from EUR 4.6 mn."))
"""

from .api import Assistant
from .engine import Engine
from .types import Generation, SamplingParams
from .errors import (
    AssistantError,
    DeviceError,
    EmptyInputError,
    GenerationError,
    InputTooLongError,
    InvalidInputError,
    InvalidParameterError,
    ModelLoadError,
    ModelNotFoundError,
    NotTextError,
    QueueFullError,
    ServiceUnavailableError,
    UnknownTaskError,
)

from .version import __version__

__all__ = [
    "__version__",
    "Assistant",
    "Engine",
    "Generation",
    "SamplingParams",
    "AssistantError",
    "DeviceError",
    "EmptyInputError",
    "GenerationError",
    "InputTooLongError",
    "InvalidInputError",
    "InvalidParameterError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NotTextError",
    "QueueFullError",
    "ServiceUnavailableError",
    "UnknownTaskError",
]
