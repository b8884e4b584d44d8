"""What the benchmarks send: the chat prompts of the decode benchmark (a financial question, an
earnings-call excerpt from ECTSum when the data is there, and the extra prompts of the dtype check),
and the questions the serving and load benchmarks spread over their clients."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from assistant.prompts import load_prompt
from assistant.types import Message

from .common import REPO_ROOT

ECTSUM_RELATIVE = Path("..") / "shared" / "data" / "summarization" / "ectsum" / "val.jsonl"
EXCERPT_WORDS = 300

#: The decode benchmark's question: long answers, so decoding dominates the time.
QUESTION = (
    "Explain in detail how a company's income statement, balance sheet and cash flow statement are "
    "connected. Then walk through, step by step, how a $10 million increase in depreciation expense "
    "affects each of the three statements, assuming a 25% tax rate."
)
#: Extra prompts for the dtype check (three prompts in all; these fill in when the excerpt is missing).
EXTRA_PROMPTS = {
    "bonds": (
        "What are the main risks of investing in high-yield corporate bonds, and how do credit spreads "
        "usually behave going into a recession? Answer in detail, with examples."
    ),
    "rates": (
        "Describe how a central bank raising interest rates affects bank net interest margins, "
        "mortgage demand and equity valuations. Explain each effect in detail."
    ),
}

#: Questions the HTTP benchmarks send, one client after another (client ``i`` asks question ``i % len(QUESTIONS)``).
QUESTIONS = [
    "Explain in detail how a company's income statement, balance sheet and cash flow statement are connected.",
    "What are the main risks of investing in high-yield corporate bonds? Answer in detail, with examples.",
    "Describe how rising interest rates affect bank net interest margins, mortgage demand and equity valuations.",
    "Explain what free cash flow is, how it is calculated and why analysts care about it, step by step.",
    "Walk through how a leveraged buyout is financed and what drives the returns of the buyer.",
    "Explain the difference between EBITDA, operating income and net income, with a worked example.",
    "What does a company's debt-to-equity ratio tell an analyst, and what are its limitations?",
    "Describe how currency movements affect the reported earnings of a multinational company.",
]


@dataclass
class BenchPrompt:
    """A chat prompt of the decode benchmark: its key in the results, its title, the messages."""

    key: str
    title: str
    messages: list[Message]


def _find_ectsum() -> Path | None:
    for base in (REPO_ROOT, Path.cwd()):
        path = (base / ECTSUM_RELATIVE).resolve()
        if path.is_file():
            return path
    return None


def _earnings_excerpt(path: Path, words: int = EXCERPT_WORDS) -> tuple[str, dict, dict]:
    """Whole transcript lines of the first ECTSum validation record, up to about ``words`` words;
    (the excerpt, where it came from, the record)."""
    with path.open(encoding="utf-8") as fh:
        record = json.loads(fh.readline())
    taken: list[str] = []
    count = 0
    for line in record["transcript"].split("\n"):
        line = line.strip()
        if not line:
            continue
        taken.append(line)
        count += len(line.split())
        if count >= words:
            break
    source = {"file": str(path), "id": record.get("id"), "words": count}
    return " ".join(taken), source, record


def build_prompts() -> tuple[list[BenchPrompt], list[BenchPrompt], dict]:
    """The engine-vs-plain prompts, the three dtype-check prompts, and where they came from."""
    system = load_prompt("ask")["system"]

    def chat(text: str) -> list[Message]:
        return [{"role": "system", "content": system}, {"role": "user", "content": text}]

    question = BenchPrompt("question", "financial question", chat(QUESTION))
    info: dict = {"system (prompts/ask.toml)": system, "question": QUESTION}
    path = _find_ectsum()
    speed = [question]
    if path is not None:
        excerpt, source, rec = _earnings_excerpt(path)
        text = (
            f"Here is an excerpt from the {rec.get('ticker', '')} {str(rec.get('quarter', '')).upper()} "
            f"{rec.get('year', '')} earnings call:\n\n{excerpt}\n\n"
            "Summarise the results, the drivers behind them and what management said about the outlook. "
            "Be detailed and quote the figures."
        )
        speed.append(BenchPrompt("earnings_call", f"earnings-call excerpt ({source['words']} words)", chat(text)))
        info["earnings_call"] = source
    else:
        info["earnings_call"] = None
        info["note"] = (
            f"{ECTSUM_RELATIVE} not found (looked beside {REPO_ROOT} and {Path.cwd()}): "
            "the engine-vs-plain comparison uses the financial question only"
        )
    check = list(speed)
    for key, text in EXTRA_PROMPTS.items():
        if len(check) >= 3:
            break
        check.append(BenchPrompt(key, key, chat(text)))
        info[key] = text
    return speed, check, info
