"""Checks on user input, shared by every task and front door."""

from __future__ import annotations

import re

from .errors import EmptyInputError, InputTooLongError, InvalidParameterError, NotTextError

#: Upper bound on one input text (characters). Long transcripts are ~50k characters;
#: this only stops accidental multi-megabyte pastes. Longer texts are refused, never cut.
MAX_INPUT_CHARS = 1_000_000

#: Lone UTF-16 surrogates: a JSON body can carry them as escapes, but they are not characters,
#: cannot be encoded as UTF-8 and break tokenisers, logs and responses further on.
_SURROGATE = re.compile("[\ud800-\udfff]")
#: C0 and C1 control characters other than tab, newline and carriage return (and NUL, which is
#: refused as a sign of binary data): invisible to a reader, so they are replaced, not refused.
_CONTROL = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def check_characters(value: str, name: str = "text") -> str:
    """The one check every text from outside passes (API, CLI, HTTP bodies, UI, documents): lone
    surrogates and NUL are refused (``NotTextError``), other control characters become spaces."""
    found = _SURROGATE.search(value)
    if found:
        raise NotTextError(
            f"{name} contains a lone surrogate (U+{ord(found.group()):04X}) at character {found.start()}: "
            "it is not valid Unicode text"
        )
    if "\x00" in value:
        raise NotTextError(f"{name} contains NUL bytes: it looks like a binary file, not text")
    return _CONTROL.sub(" ", value)


def ensure_text(value: object, name: str = "text", max_chars: int = MAX_INPUT_CHARS) -> str:
    """Return ``value`` as a stripped string, or raise an error naming the problem."""
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotTextError(f"{name} is not UTF-8 text (byte {exc.start} cannot be decoded)") from exc
    if not isinstance(value, str):
        raise NotTextError(f"{name} must be a string, got {type(value).__name__}")
    text = check_characters(value, name).strip()
    if not text:
        raise EmptyInputError(f"{name} is empty")
    if len(text) > max_chars:
        raise InputTooLongError(f"{name} is {len(text):,} characters; the limit is {max_chars:,}")
    return text


def ensure_texts(values: object, name: str = "texts") -> list[str]:
    """A list of texts (each checked); a single string is not accepted here."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise NotTextError(f"{name} must be a list of strings")
    texts = [ensure_text(v, f"{name}[{i}]") for i, v in enumerate(values)]
    if not texts:
        raise EmptyInputError(f"{name} is an empty list")
    return texts


def ensure_int(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParameterError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


def ensure_choice(value: object, name: str, choices: list[str] | tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidParameterError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value  # type: ignore[return-value]
