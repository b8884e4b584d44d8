"""The generator as the generation backends see it: a conversation rendered as its prompt, encoded,
and checked against the context window; the stop strings it needs.

The backends (``batching``, ``continuous``, ``upstream``) get a ``ChatModel``, not the ``Engine``:
this is all they use of it, so a backend can be built and tested over a loaded model alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .errors import InputTooLongError
from .models import LoadedModel
from .prompts import load_prompt
from .types import Message, SamplingParams

if TYPE_CHECKING:
    import numpy as np


class ChatModel:
    """A causal LM with its tokenizer, loaded on first use by ``load`` (``ChatModel(lambda: loaded)`` for
    one already loaded)."""

    def __init__(self, load: Callable[[], LoadedModel]) -> None:
        self._load = load

    @property
    def loaded(self) -> LoadedModel:
        return self._load()

    @property
    def context_window(self) -> int:
        return self.loaded.context_window

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text for a conversation: the model's chat template, or the plain one."""
        return render_chat(self.loaded.tokenizer, messages)

    def prompt_ids(self, messages: Sequence[Message]) -> np.ndarray:
        """The conversation's prompt as token ids, shape (1, n): a numpy array, which every backend reads
        (the torch ones convert it), so that the ONNX path never imports torch."""
        return self.loaded.tokenizer(self.render(messages), return_tensors="np", add_special_tokens=False)["input_ids"]

    def encode(self, messages: Sequence[Message], params: SamplingParams, ids: np.ndarray | None = None) -> np.ndarray:
        """Prompt token ids (1, n) (``ids`` if the caller already has them); refused with
        ``InputTooLongError`` when prompt plus new tokens exceed the context window."""
        if ids is None:
            ids = self.prompt_ids(messages)
        window = self.context_window
        total = ids.shape[1] + params.max_new_tokens
        if total > window:
            raise InputTooLongError(
                f"the prompt is {ids.shape[1]} tokens and {params.max_new_tokens} new tokens were asked for, "
                f"{total} in all, over the model's context window of {window} tokens"
            )
        return ids

    def plain_stop_strings(self) -> tuple[str, ...]:
        """Stop strings for models without a chat template (they would write the next turn)."""
        return plain_stop_strings(self.loaded.tokenizer)

    def stop_strings(self, params: SamplingParams) -> tuple[str, ...]:
        """Where a generation with ``params`` ends besides the end-of-turn token."""
        return params.stop + self.plain_stop_strings()


def plain_stop_strings(tokenizer) -> tuple[str, ...]:
    """The plain template's stop strings (``prompts/chat.toml``) for a tokenizer without a chat template."""
    if getattr(tokenizer, "chat_template", None):
        return ()
    return tuple(load_prompt("chat")["plain_template"]["stop"])


def render_chat(tokenizer, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
    """A conversation as prompt text: the tokenizer's chat template, or the plain template of
    ``prompts/chat.toml`` for models without one (GPT-2). One function for inference and for
    fine-tuning (``finetune/``), so a model is trained on exactly the prompts it is
    later asked with. ``add_generation_prompt=False`` renders a finished conversation (the last
    turn included, as a training example ends)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)
    plain = load_prompt("chat")["plain_template"]
    roles = plain["roles"]
    turns = [plain["turn"].format(role=roles[m["role"]], content=m["content"]) for m in messages]
    if not add_generation_prompt:
        return "".join(turns)
    return "".join(turns) + plain["generation_prompt"].format(role=roles["assistant"])
