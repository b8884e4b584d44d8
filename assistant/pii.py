"""Personal data in text: found, replaced by placeholders, and put back where that is safe.

Found: payment card numbers (Luhn checksum), IBANs (ISO 7064 mod-97 checksum), US social security
numbers (the issued ranges, written with dashes), e-mail addresses, phone numbers (international
``+`` form and the North American forms) and account numbers (digits after the words "account
number", "acct", "a/c" and the like). Each value becomes a placeholder such as ``[CARD_1]``; the same
value gets the same placeholder within one ``Redactor``, so a conversation stays coherent.

Where it is applied (``PiiPolicy``): log records always pass through ``redact`` once
``install_log_redaction`` has run (``finassist serve`` does), the audit log stores redacted
questions and answers, and with ``redact_inputs`` (``--redact-inputs``) the model itself only ever
sees placeholders; the answer shown to the user who asked has them put back (``Redactor.restore``),
since that user gave the values in the first place.

Why not Presidio: presidio-analyzer was tried. It depends on spaCy (and, with its dependencies,
installs about 375 MB); its ``AnalyzerEngine`` loads a spaCy model at start and tries to download
one when none is installed, which fails offline. Its pattern recognisers do run alone, without a
model, but its e-mail recogniser asks the internet for the public-suffix list on first use, and its
phone recogniser took a US SSN for a phone number. The patterns needed here are a few regular
expressions and two checksums, so they are written out below, with no dependency.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

#: Kinds of personal data, in the order overlapping finds are preferred.
KINDS = ("CARD", "IBAN", "SSN", "EMAIL", "ACCOUNT", "PHONE")

_CARD = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])")
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b")
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}"  # +44 20 7946 0958, +1 (415) 555-2671
    r"|\(\d{3}\) ?\d{3}[ .-]\d{4}"  # (415) 555-2671
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 415-555-2671, 415.555.2671
    r")(?![\w])"
)
_ACCOUNT = re.compile(
    r"(?i)\b(?:account|acct|a/c)\.?(?:\s*(?:number|num|no\.?|#))?\s*[:#]?\s*(?P<value>\d(?:[ -]?\d){5,19})(?!\d)"
)
_PLACEHOLDER = re.compile(r"\[(?:%s)_\d{1,6}\]" % "|".join(KINDS))
#: Longest placeholder ("[ACCOUNT_999999]"): a streamed answer holds back at most this much.
_MAX_PLACEHOLDER = max(len(k) for k in KINDS) + 10


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    iban = iban.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34:
        return False
    moved = iban[4:] + iban[:4]
    try:
        return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1
    except ValueError:
        return False


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int
    value: str


def _cards(text: str) -> Iterator[Finding]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1:
            yield Finding("CARD", m.start(), m.end(), m.group())


def _ibans(text: str) -> Iterator[Finding]:
    for m in _IBAN.finditer(text):
        value = m.group()
        # The pattern may run on into the next word; the checksum says where the IBAN ends.
        while len(value.replace(" ", "")) >= 15 and not iban_ok(value):
            value = value[:-1].rstrip()
        if iban_ok(value):
            yield Finding("IBAN", m.start(), m.start() + len(value), value)


def _phones(text: str) -> Iterator[Finding]:
    for m in _PHONE.finditer(text):
        if 8 <= sum(c.isdigit() for c in m.group()) <= 15:  # "+1 334" in a sentence is not a number to call
            yield Finding("PHONE", m.start(), m.end(), m.group())


def _simple(kind: str, pattern: re.Pattern, group: str | int = 0) -> Callable[[str], Iterator[Finding]]:
    def find(text: str) -> Iterator[Finding]:
        for m in pattern.finditer(text):
            yield Finding(kind, m.start(group), m.end(group), m.group(group))

    return find


_DETECTORS: dict[str, Callable[[str], Iterator[Finding]]] = {
    "CARD": _cards,
    "IBAN": _ibans,
    "SSN": _simple("SSN", _SSN),
    "EMAIL": _simple("EMAIL", _EMAIL),
    "ACCOUNT": _simple("ACCOUNT", _ACCOUNT, "value"),
    "PHONE": _phones,
}


def find_pii(text: str, kinds: Iterable[str] = KINDS) -> list[Finding]:
    """Every piece of personal data in ``text``, in order; where finds overlap, the kind earlier in
    ``KINDS`` wins (a card number is not also a phone number)."""
    found = [f for kind in kinds for f in _DETECTORS[kind](text)]
    rank = {k: i for i, k in enumerate(KINDS)}
    found.sort(key=lambda f: (rank[f.kind], f.start))
    chosen: list[Finding] = []
    for f in found:
        if all(f.end <= c.start or f.start >= c.end for c in chosen):
            chosen.append(f)
    return sorted(chosen, key=lambda f: f.start)


@dataclass
class Redactor:
    """Redacts texts with numbered placeholders, remembering them so ``restore`` can put the values
    back. One per conversation or request: the numbering and the memory are its own."""

    kinds: tuple[str, ...] = KINDS
    mapping: dict[str, str] = field(default_factory=dict)  # placeholder -> value
    _by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    def _placeholder(self, finding: Finding) -> str:
        key = (finding.kind, finding.value)
        if key not in self._by_value:
            n = self._counts.get(finding.kind, 0) + 1
            self._counts[finding.kind] = n
            holder = f"[{finding.kind}_{n}]"
            self._by_value[key] = holder
            self.mapping[holder] = finding.value
        return self._by_value[key]

    def redact(self, text: str) -> str:
        if not text:
            return text
        out, last = [], 0
        for f in find_pii(text, self.kinds):
            out.append(text[last : f.start])
            out.append(self._placeholder(f))
            last = f.end
        out.append(text[last:])
        return "".join(out)

    def restore(self, text: str) -> str:
        """``text`` with this redactor's placeholders replaced by their values (others are left)."""
        if not self.mapping or not text:
            return text
        return _PLACEHOLDER.sub(lambda m: self.mapping.get(m.group(), m.group()), text)

    def restoring(self) -> StreamRestorer:
        return StreamRestorer(self)

    @property
    def found(self) -> dict[str, int]:
        """How many distinct values of each kind were redacted."""
        return dict(self._counts)


class StreamRestorer:
    """``Redactor.restore`` for a text that arrives in pieces: a placeholder split between two pieces
    is held back until it is complete."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.held = ""

    def feed(self, piece: str) -> str:
        text = self.held + piece
        cut = text.rfind("[")
        if cut >= 0 and "]" not in text[cut:] and len(text) - cut <= _MAX_PLACEHOLDER:
            self.held, text = text[cut:], text[:cut]
        else:
            self.held = ""
        return self.redactor.restore(text)

    def flush(self) -> str:
        text, self.held = self.held, ""
        return self.redactor.restore(text)


def redact(text: str) -> str:
    """``text`` with every piece of personal data replaced by a placeholder (a fresh numbering)."""
    return Redactor().redact(text)


@dataclass(frozen=True)
class PiiPolicy:
    """Where personal data is redacted. Logs and the audit log by default; ``redact_inputs`` also keeps
    it from the model (answers to the user who asked have the values put back)."""

    redact_logs: bool = True
    redact_audit: bool = True
    redact_inputs: bool = False


# ------------------------------------------------------------------------------ logs

_install_lock = threading.Lock()
_installed = False


def install_log_redaction() -> None:
    """From now on every log record in this process, whatever logger or handler, has its message
    (and its exception text) redacted when it is created. Idempotent."""
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args, **kwargs) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            try:
                message = record.getMessage()
            except Exception:  # a broken format string: logging reports it as it always does
                return record
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
            if record.exc_info and record.exc_info[1] is not None:
                text = logging.Formatter().formatException(record.exc_info)
                redacted = redact(text)
                if redacted != text:
                    record.exc_text = redacted
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
