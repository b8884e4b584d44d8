"""The encoder of a head-only run fine-tuned for its task first (``--encoder-epochs``): LoRA adapters
on the encoder, trained through the assistant's own pooling (mean of the last hidden states,
L2-normalised: ``SentenceEncoder.encode``) into a linear head that starts as a logistic regression
fitted on the frozen embeddings ("linear probe, then fine-tune"). The head-only fit then runs on the
adapted embeddings as usual, and the run stores the adapter beside its head
(``adapter_model.safetensors``, a few MB), which ``FineTunedClassifier`` merges into the base encoder.

Why not ``AutoModelForSequenceClassification`` with LoRA (``--lora``): its head reads the [CLS]
token through BERT's pooler, and all-MiniLM-L6-v2's pooler output is nearly constant (it was never
trained for it): on CLAUDETTE's rare unfair-term sentences such runs stayed at the label prior.
A head started at random has the same trouble with 30 positive sentences in 9,000; started from the
logistic regression it already ranks them, and the encoder learns to separate them further
(figures: docs/results.md). Our own loop rather than ``transformers.Trainer``: the model is the
pooling and a head over it, with a learning rate of its own, and training takes minutes, so
checkpoints and resumption would only add files.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch

from assistant.runs import ADAPTER_FILE

from .classification_data import ClassificationData, label_targets
from .config import ClassifyTrainConfig
from .files import store_half
from .linear_head import fit_logistic, head_weights

log = logging.getLogger(__name__)

#: Regularisation of the logistic regression the head starts from (on L2-normalised embeddings).
HEAD_INIT_C = 10.0
#: The head's learning rate, as a share of the adapters': it starts trained, and must not forget it
#: before the encoder has moved.
HEAD_LR_SHARE = 0.4
#: LoRA on every linear layer of the encoder's blocks (attention and feed-forward).
TARGET_MODULES = r".*encoder.*\.(query|key|value|dense)$"


def probe(embeddings: np.ndarray, targets: np.ndarray, n_labels: int, multi_label: bool,
          weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(weight (n_labels, dim), bias (n_labels,)) of the logistic regression the head starts from
    (``targets``: a 0/1 column per label, or class indices). A label the training data never (or
    always) has gets a constant: no regression can be fitted."""
    clf = fit_logistic(embeddings, targets, HEAD_INIT_C, multi_label, weights, max_iter=2000)
    return head_weights(clf, list(range(n_labels)), embeddings.shape[1], multi_label, constant=10.0)


class _PooledClassifier(torch.nn.Module):
    """The encoder, its pooling as ``SentenceEncoder.encode`` computes it (mean, or the [CLS] token
    where the model's sentence-transformers files say so), and a linear head."""

    def __init__(self, encoder: torch.nn.Module, weight: np.ndarray, bias: np.ndarray, pooling: str) -> None:
        super().__init__()
        self.encoder, self.pooling = encoder, pooling
        self.head = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(weight))
            self.head.bias.copy_(torch.from_numpy(bias))
        self.dropout = torch.nn.Dropout(0.1)

    def forward(self, features: dict) -> torch.Tensor:
        hidden = self.encoder(**features).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.head(self.dropout(torch.nn.functional.normalize(pooled, dim=-1)))


def adapt_encoder(config: ClassifyTrainConfig, data: ClassificationData, frozen: np.ndarray, encoder,
                  out: Path) -> Path:
    """Train LoRA adapters of ``encoder`` (the run's ``LoadedModel``) on ``data`` for
    ``config.encoder_epochs`` epochs, the head started from a probe of the ``frozen`` embeddings of
    the training texts; save them in ``out`` (peft's ``save_pretrained``) and return ``out``."""
    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm
    from transformers import AutoModel, get_linear_schedule_with_warmup

    torch.manual_seed(config.seed)
    multi = config.multi_label
    targets = np.asarray(label_targets(data.train_labels, data.labels, multi),
                         dtype=np.float32 if multi else np.int64)
    weights = None if data.train_weights is None else np.asarray(data.train_weights, dtype=np.float32)
    weight, bias = probe(frozen, targets, len(data.labels), multi, weights)
    device = encoder.runtime.device
    # Trained in float32 whatever the serving dtype: half-precision LoRA updates underflow.
    base = AutoModel.from_pretrained(encoder.resolved.location, local_files_only=encoder.resolved.local_files_only,
                                     dtype=torch.float32)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=TARGET_MODULES)
    pooling = getattr(encoder.model.config, "finassist_pooling", "mean")  # as the sentence-transformers files say
    model = _PooledClassifier(get_peft_model(base, lora), weight, bias, pooling).to(device)
    adapters = [p for p in model.encoder.parameters() if p.requires_grad]
    rate = config.effective_learning_rate
    optimiser = torch.optim.AdamW([{"params": adapters, "lr": rate},
                                   {"params": model.head.parameters(), "lr": rate * HEAD_LR_SHARE}],
                                  weight_decay=config.weight_decay)
    n, size = len(data.train_texts), config.batch_size
    per_epoch = -(-n // size)
    steps = max(1, round(config.encoder_epochs * per_epoch))
    schedule = get_linear_schedule_with_warmup(optimiser, round(config.warmup_ratio * steps), steps)
    loss_of = torch.nn.BCEWithLogitsLoss(reduction="none") if multi else torch.nn.CrossEntropyLoss(reduction="none")
    tokenizer, order = encoder.tokenizer, random.Random(config.seed)
    model.train()
    done = 0
    with tqdm(total=steps, desc="adapting the encoder", unit="step", disable=not config.progress) as bar:
        while done < steps:
            shuffled = list(range(n))
            order.shuffle(shuffled)
            # Batches of similar length (sorted within chunks of 50 batches, the batches then shuffled):
            # on a CPU the padding would otherwise be most of the work.
            batches = []
            for start in range(0, n, size * 50):
                chunk = sorted(shuffled[start : start + size * 50], key=lambda i: len(data.train_texts[i]))
                batches += [chunk[k : k + size] for k in range(0, len(chunk), size)]
            order.shuffle(batches)
            for rows in batches[: steps - done]:
                # Truncated, not windowed: adaptation needs the gist of a text, the head sees it whole.
                features = tokenizer([data.train_texts[i] for i in rows], padding=True, truncation=True,
                                     max_length=config.max_length, return_tensors="pt").to(device)
                features = {k: v for k, v in features.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
                target = torch.from_numpy(targets[rows]).to(device)
                loss = loss_of(model(features), target)
                loss = loss.mean(1) if multi else loss
                if weights is not None:
                    loss = loss * torch.from_numpy(weights[rows]).to(device)
                loss.mean().backward()
                torch.nn.utils.clip_grad_norm_(adapters + list(model.head.parameters()), 1.0)
                optimiser.step()
                schedule.step()
                optimiser.zero_grad()
                done += 1
                bar.update()
                bar.set_postfix(loss=f"{loss.mean().item():.4f}")
    log.info("adapted the encoder: %d steps (%.2g epochs) of LoRA r=%d", steps, steps / per_epoch, config.lora_r)
    model.encoder.save_pretrained(out)
    store_half(out / ADAPTER_FILE)  # the embeddings move by far less than the thresholds' steps
    return out
