"""benchmarks/workload.py: the decode prompts (ask's system prompt, the ECTSum excerpt when the data is
there, three dtype-check prompts) and the HTTP benchmarks' questions."""

from __future__ import annotations

from assistant.prompts import load_prompt
from benchmarks.workload import EXCERPT_WORDS, EXTRA_PROMPTS, QUESTION, QUESTIONS, build_prompts


def test_prompts_use_the_ask_system_prompt_and_three_check_prompts():
    speed, check, info = build_prompts()
    system = load_prompt("ask")["system"]
    assert speed[0].key == "question" and speed[0].messages[-1]["content"] == QUESTION
    assert len(check) == 3 and check[: len(speed)] == speed
    for prompt in check:
        assert prompt.messages[0] == {"role": "system", "content": system}
        assert prompt.messages[1]["role"] == "user"
    if info["earnings_call"] is None:  # no ECTSum data beside the checkout: the extra prompts fill in
        assert [p.key for p in check] == ["question", *EXTRA_PROMPTS]
        assert "not found" in info["note"]
    else:
        assert [p.key for p in speed] == ["question", "earnings_call"]
        assert info["earnings_call"]["words"] >= EXCERPT_WORDS
        assert "earnings call:" in speed[1].messages[1]["content"]


def test_questions_are_distinct():
    assert len(set(QUESTIONS)) == len(QUESTIONS) >= 2
