"""The error hierarchy is the contract every front door relies on: catch ``AssistantError``,
show its message, answer with its ``http_status``."""

from __future__ import annotations

import inspect

import pytest

import assistant
from assistant import errors


def _error_classes():
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == errors.__name__
    ]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_is_an_assistant_error_with_an_http_status(cls):
    assert issubclass(cls, errors.AssistantError)
    assert isinstance(cls.http_status, int) and 400 <= cls.http_status < 600


@pytest.mark.parametrize(
    "cls", [errors.EmptyInputError, errors.NotTextError, errors.InputTooLongError, errors.InvalidParameterError]
)
def test_input_problems_are_client_errors(cls):
    assert issubclass(cls, errors.InvalidInputError)
    assert 400 <= cls.http_status < 500


def test_statuses_distinguish_not_found_too_long_and_server_side():
    assert errors.ModelNotFoundError.http_status == 404
    assert errors.UnknownTaskError.http_status == 404
    assert errors.InputTooLongError.http_status == 413
    assert errors.InvalidInputError.http_status == 422
    assert errors.ModelLoadError.http_status == 500


def test_package_exports_every_public_error():
    for cls in _error_classes():
        assert getattr(assistant, cls.__name__) is cls
        assert cls.__name__ in assistant.__all__
