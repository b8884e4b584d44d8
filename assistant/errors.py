"""Exceptions the assistant raises for problems a user can fix.

Every front door (Python API, CLI, HTTP service, UI) catches ``AssistantError``
and shows its message; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class AssistantError(Exception):
    """Base class: a problem with the request or the setup, explained in the message."""

    #: HTTP status a server should answer with for this error.
    http_status = 400


class ModelNotFoundError(AssistantError):
    """A model name, id or path could not be resolved to weights on this machine."""

    http_status = 404


class ModelLoadError(AssistantError):
    """Weights were found but could not be loaded (corrupt files, wrong architecture)."""

    http_status = 500


class DeviceError(AssistantError):
    """The requested device or dtype is not available here."""


class UnknownTaskError(AssistantError):
    """A task name that no task module or label set defines."""

    http_status = 404


class InvalidInputError(AssistantError):
    """The input is not acceptable as it is."""

    http_status = 422


class EmptyInputError(InvalidInputError):
    """The input is empty or only whitespace."""


class NotTextError(InvalidInputError):
    """The input is not text (bytes that are not UTF-8, a number, None, ...)."""


class InputTooLongError(InvalidInputError):
    """The input is longer than the configured limit."""

    http_status = 413


class InvalidParameterError(InvalidInputError):
    """A parameter (style, max_words, temperature, ...) is out of range."""


class QueueFullError(AssistantError):
    """The server's request queue is full: try again after ``retry_after`` seconds."""

    http_status = 429

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GenerationError(AssistantError):
    """Generation failed on the server's side (not the request's fault)."""

    http_status = 500


class ServiceUnavailableError(AssistantError):
    """The generation service is shutting down or not ready."""

    http_status = 503
