"""Chat prompts shared by the batching backends' tests (the same prompts for each backend)."""

from __future__ import annotations


PROMPTS = [
    "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn.",
    "Sales fell.",
    "The company is based in Helsinki and employs 200 people in Finland and Sweden.",
    "Net sales increased by 5 % to EUR 30 mn in the period from January to March.",
]


def chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]
