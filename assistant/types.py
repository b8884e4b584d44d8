"""The values that pass between the layers: a chat message, how to sample, what came back.

The lowest layer: it imports nothing of the assistant but its errors, so model loading, the
generation backends, the engine, the tasks and every front door can all use it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidParameterError

Message = dict[str, str]

#: Below this temperature, decoding is greedy: sampling there is already all but greedy, and
#: dividing the logits by a still smaller number overflows them to infinities (NaN probabilities).
MIN_SAMPLING_TEMPERATURE = 1e-3
#: Seeds ``torch.manual_seed`` accepts: a signed or an unsigned 64-bit integer.
SEED_RANGE = (-(2**63), 2**64 - 1)
#: Bounds of the sampling fields, checked here and published by the HTTP schema (OpenAI's
#: temperature range: above 2 the text is noise).
MAX_NEW_TOKENS_RANGE = (1, 32768)
TEMPERATURE_RANGE = (0.0, 2.0)
REPETITION_PENALTY_RANGE = (0.5, 2.0)


@dataclass(frozen=True)
class SamplingParams:
    """How to generate. ``temperature == 0`` means greedy decoding (deterministic)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    #: Extra strings that end generation (the model's own end-of-turn token always does).
    stop: tuple[str, ...] = ()
    repetition_penalty: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        n = self.max_new_tokens
        lo, hi = MAX_NEW_TOKENS_RANGE
        if isinstance(n, bool) or not isinstance(n, int) or not lo <= n <= hi:
            raise InvalidParameterError(f"max_new_tokens must be an integer in {lo}..{hi}, got {self.max_new_tokens!r}")
        lo, hi = TEMPERATURE_RANGE
        if not lo <= float(self.temperature) <= hi:
            raise InvalidParameterError(f"temperature must be in {lo:g}..{hi:g}, got {self.temperature!r}")
        if not 0.0 < float(self.top_p) <= 1.0:
            raise InvalidParameterError(f"top_p must be in (0, 1], got {self.top_p!r}")
        lo, hi = REPETITION_PENALTY_RANGE
        if not lo <= float(self.repetition_penalty) <= hi:
            raise InvalidParameterError(f"repetition_penalty must be in {lo:g}..{hi:g}, got {self.repetition_penalty!r}")
        seed = self.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                                 or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]):
            raise InvalidParameterError(f"seed must be an integer in {SEED_RANGE[0]}..{SEED_RANGE[1]}, got {seed!r}")
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        object.__setattr__(self, "stop", tuple(s for s in stop if s))

    @property
    def sampled(self) -> bool:
        """Whether tokens are sampled (else greedy)."""
        return self.temperature >= MIN_SAMPLING_TEMPERATURE

    def generate_kwargs(self) -> dict:
        kwargs: dict = {"max_new_tokens": self.max_new_tokens}
        if self.sampled:
            kwargs.update(do_sample=True, temperature=float(self.temperature), top_p=float(self.top_p), top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if self.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = float(self.repetition_penalty)
        return kwargs


@dataclass
class Generation:
    """One finished generation, with the counts an OpenAI-style ``usage`` needs."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    #: "stop" (end of turn or a stop string), "length" (max_new_tokens), "cancelled".
    finish_reason: str
