"""Sentence embeddings from the encoder: what zero-shot classification, the classifier heads and
(later) retrieval all compute, in one place below the engine."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from .lazy import torch

from .device import Runtime
from .models import ENCODER, LoadedModel, encoder_max_length, load_model, resolve_model


class SentenceEncoder:
    """An encoder model, loaded on first use by ``load``, that turns texts into sentence embeddings."""

    def __init__(self, load: Callable[[], LoadedModel]) -> None:
        self._load = load
        self._loaded: LoadedModel | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: str, runtime: Runtime, adapter: Path | None = None) -> SentenceEncoder:
        """The encoder at a path or Hugging Face id, on ``runtime``'s device and dtype; with
        ``adapter``, a LoRA adapter of it (a head run's fine-tuned encoder) merged into its weights."""
        return cls(lambda: load_model(resolve_model(spec, ENCODER), runtime, adapter))

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            with self._lock:  # concurrent first requests load it once
                if self._loaded is None:
                    self._loaded = self._load()
        return self._loaded

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> torch.Tensor:
        """Sentence embeddings (L2-normalised), one row per text.

        Texts longer than the encoder's window are not truncated: they are cut
        into overlapping windows whose embeddings are averaged.
        """
        enc = self.loaded
        tok, model = enc.tokenizer, enc.model
        max_len = encoder_max_length(enc)
        pooled: list[torch.Tensor] = []
        # Batches of similar length (shortest first, the order undone at the end): a batch is padded
        # to its longest text, so mixing a tweet with a contract clause mostly computes padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        texts = [texts[i] for i in order]
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            features = tok(
                batch,
                padding=True,
                truncation=True,
                max_length=max_len,
                stride=max_len // 4,
                return_overflowing_tokens=True,
                return_tensors="pt",
            )
            owner = features.pop("overflow_to_sample_mapping")
            features = {k: v for k, v in features.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            # One long text becomes many windows: they go through the model batch_size at a time, so
            # a request's memory and the length of each forward pass stay bounded whatever its size.
            parts = []
            for first in range(0, len(owner), batch_size):
                part = {k: v[first : first + batch_size].to(enc.runtime.device) for k, v in features.items()}
                with torch.inference_mode():
                    hidden = model(**part).last_hidden_state
                mask = part["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                if getattr(model.config, "finassist_pooling", "mean") == "cls":
                    pooled_windows = hidden[:, 0]
                else:
                    pooled_windows = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                parts.append(pooled_windows.float().cpu())
            windows = torch.cat(parts)
            per_text = torch.zeros(len(batch), windows.shape[1]).index_add_(0, owner, windows)
            counts = torch.bincount(owner, minlength=len(batch)).clamp(min=1).unsqueeze(1)
            pooled.append(torch.nn.functional.normalize(per_text / counts, dim=-1))
        if not pooled:
            return torch.empty(0)
        sorted_rows = torch.cat(pooled)
        out = torch.empty_like(sorted_rows)
        out[torch.tensor(order)] = sorted_rows
        return out
