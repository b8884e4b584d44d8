"""Fine-tuning a causal LM on input -> target pairs (``finassist finetune generate``).

``train_generator`` teaches a generator (SmolLM2 by default, GPT-2 or any causal LM) to answer a
task's prompt with the reference output. Each pair is written as a conversation with the same
function the engine renders prompts with (``assistant.chat.render_chat``: the model's chat
template, or the plain template of ``prompts/chat.toml`` for models without one), with the
task's system prompt and instruction from ``prompts/<task>.toml``, so the model is trained on
exactly the prompt the assistant later sends it. The loss is on the answer only (prompt tokens
are labelled -100) and on the end-of-turn token, so the model learns where to stop. Training is
transformers' ``Trainer`` (checkpoints, exact resume, mixed precision on CUDA, ``accelerate
launch`` for several GPUs); LoRA adapters (peft) are merged into the weights when saved, so a
run directory is a plain model directory: ``Assistant(generator="runs/ectsum-smollm2")`` loads
it like any other.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from assistant.errors import InvalidParameterError, ModelLoadError
from assistant.models import GENERATOR, context_window

from .config import TRUNCATE_SIDES, GenerateTrainConfig
from .data import ORIGIN, DataError, load_records, split_validation, text_of
from .runs import config_command, write_run

log = logging.getLogger(__name__)

#: The training configuration saved beside the checkpoints (``--resume`` checks it is unchanged).
_CONFIG_FILE = "generate-config.json"


# ------------------------------------------------------------------- prompts


@dataclass(frozen=True)
class TaskPrompt:
    """How a task's training pairs are worded: system prompt, instruction, word budget."""

    system: str | None = None
    #: ``{text}`` marks the input; ``None``: the user turn is the input alone.
    instruction: str | None = None
    max_words: int | None = None

    def user_turn(self, text: str) -> str:
        """The user message for one input. Literal replacement, so braces in the input are safe."""
        if not self.instruction:
            return text
        if "{text}" not in self.instruction:
            return self.instruction.rstrip() + "\n\n" + text
        words = "" if self.max_words is None else str(self.max_words)
        return self.instruction.replace("{max_words}", words).replace("{text}", text)

    def messages(self, text: str) -> list[dict[str, str]]:
        turns = [{"role": "system", "content": self.system}] if self.system else []
        return turns + [{"role": "user", "content": self.user_turn(text)}]


def task_prompt(task: str, instruction: str | None = None) -> TaskPrompt:
    """The task's system prompt and ``[finetune]`` instruction from ``prompts/<task>.toml`` (a
    task without a prompt file has neither); ``instruction`` replaces the file's."""
    from assistant.prompts import load_prompt

    config: dict = {}
    if re.fullmatch(r"[a-z0-9][a-z0-9_-]*", task or ""):  # never a path: "../x" reads no other file
        try:
            config = load_prompt(task)
        except FileNotFoundError:
            config = {}
    system = config.get("system") if isinstance(config.get("system"), str) else None
    finetune = config.get("finetune") or {}
    return TaskPrompt(system=system, instruction=instruction or finetune.get("instruction"),
                      max_words=finetune.get("max_words"))


# ----------------------------------------------------------------- encoding


class PairEncoder:
    """Turns one (input, target) pair into ``input_ids``/``attention_mask``/``labels``.

    The prompt is ``render_chat(tokenizer, messages)``, tokenised exactly as the engine
    tokenises prompts at inference; the answer is what the chat template writes for an
    assistant turn after that prompt, cut after the end-of-sequence token (the plain template:
    the target and EOS). Prompt tokens get label -100, so the loss is on the answer only.
    """

    def __init__(self, tokenizer, prompt: TaskPrompt, max_input_tokens: int = 600, max_target_tokens: int = 256,
                 truncate_side: str = "end", context_window: int | None = None) -> None:
        if truncate_side not in TRUNCATE_SIDES:
            raise InvalidParameterError(f"truncate_side must be one of {', '.join(TRUNCATE_SIDES)}, "
                                        f"got {truncate_side!r}")
        if not tokenizer.eos_token:
            raise ModelLoadError("the tokenizer has no end-of-sequence token: the model could not learn to stop")
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.max_input_tokens = max_input_tokens
        self.max_target_tokens = max_target_tokens
        self.truncate_side = truncate_side
        self.context_window = context_window

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def truncate(self, text: str, max_tokens: int, side: str = "end") -> tuple[str, bool]:
        """``text`` cut to ``max_tokens`` tokens at a token boundary: ``side="end"`` keeps the
        beginning, ``"start"`` keeps the end. Cut on the original characters (offsets), so what is
        kept is the source text itself, not a decode of it."""
        tok = self.tokenizer
        if getattr(tok, "is_fast", False):
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)  # long is expected
            ids, offsets = enc["input_ids"], enc["offset_mapping"]
            if len(ids) <= max_tokens:
                return text, False
            if side == "end":
                return text[: offsets[max_tokens][0]].rstrip(), True
            return text[offsets[len(ids) - max_tokens][0]:].lstrip(), True
        ids = tok(text, add_special_tokens=False, verbose=False)["input_ids"]
        if len(ids) <= max_tokens:
            return text, False
        kept = ids[:max_tokens] if side == "end" else ids[len(ids) - max_tokens:]
        return tok.decode(kept).strip(), True

    def answer_text(self, messages: list[dict[str, str]], target: str, complete: bool = True) -> tuple[str, str]:
        """(prompt, answer) as text: the answer is what follows the generation prompt when the
        conversation goes on with ``target`` as the assistant's turn, ending with EOS. A target
        that was cut (``complete=False``) ends where the cut is, with no EOS."""
        from assistant.chat import render_chat

        tok = self.tokenizer
        prompt = render_chat(tok, messages)
        full = render_chat(tok, [*messages, {"role": "assistant", "content": target}], add_generation_prompt=False)
        answer = full[len(prompt):] if full.startswith(prompt) and target in full[len(prompt):] else target
        if not complete:
            return prompt, answer[: answer.index(target) + len(target)]
        if tok.eos_token in answer:  # the template ends the turn with EOS (<|im_end|>): stop right after it
            return prompt, answer[: answer.index(tok.eos_token) + len(tok.eos_token)]
        return prompt, answer.rstrip() + tok.eos_token

    def __call__(self, input_text: str, target_text: str) -> dict:
        """Features of one pair, plus ``input_truncated``/``target_truncated`` flags."""
        source, target = input_text.strip(), target_text.strip()
        target, target_cut = self.truncate(target, self.max_target_tokens, "end")
        budget = self.max_input_tokens
        for _ in range(3):  # shrink the input if prompt and answer overflow the context window
            text, input_cut = self.truncate(source, budget, self.truncate_side)
            prompt, answer = self.answer_text(self.prompt.messages(text), target, complete=not target_cut)
            prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            answer_ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
            total = len(prompt_ids) + len(answer_ids)
            if self.context_window is None or total <= self.context_window:
                break
            budget = max(1, min(budget, self.count(source)) - (total - self.context_window))
        else:
            raise DataError(f"an example of {total} tokens does not fit the model's context window of "
                            f"{self.context_window} tokens: lower --max-target-tokens")
        return {
            "input_ids": prompt_ids + answer_ids,
            "attention_mask": [1] * total,
            "labels": [-100] * len(prompt_ids) + answer_ids,
            "input_truncated": input_cut,
            "target_truncated": target_cut,
        }


# ------------------------------------------------------------------- training


def _pairs(records: Sequence[dict], input_field: str, target_field: str) -> list[dict]:
    """Input/target text of every record; a missing, empty or non-text field names file and line."""
    return [{"input": text_of(r, input_field), "target": text_of(r, target_field), "origin": r.get(ORIGIN, "?")}
            for r in records]


def _load_pairs(config: GenerateTrainConfig) -> tuple[list[dict], list[dict], str]:
    """Training and validation pairs, and where the validation pairs came from."""
    required = (config.input_field, config.target_field)
    records = load_records(config.train, split="train", required=required)
    if config.val:
        val_records, val_source = load_records(config.val, split="validation", required=required), config.val
    elif config.val_fraction > 0:
        records, val_records = split_validation(records, fraction=config.val_fraction, seed=config.seed)
        val_source = f"{config.train} (held out: {config.val_fraction:g} of the records, seed {config.seed})"
    else:
        val_records, val_source = [], ""
    if config.max_train_samples:
        records = records[: config.max_train_samples]
    if config.max_val_samples:
        val_records = val_records[: config.max_val_samples]
    train = _pairs(records, config.input_field, config.target_field)
    val = _pairs(val_records, config.input_field, config.target_field)
    return train, val, val_source


def _tokenize(pairs: list[dict], encoder: PairEncoder, desc: str):
    """A ``datasets.Dataset`` of features (``.map``; a progress bar for large sets)."""
    import datasets

    def encode(row: dict) -> dict:
        try:
            return encoder(row["input"], row["target"])
        except DataError as exc:  # name the record, as every data problem does
            raise DataError(f"{row['origin']}: {exc}") from exc

    dataset = datasets.Dataset.from_list(pairs)
    return dataset.map(encode, remove_columns=dataset.column_names, desc=desc)


def _lora_targets(value: str | None) -> str | list[str] | None:
    if value is None or not value.strip():
        return None
    if value.strip() == "all-linear":
        return "all-linear"
    return [name.strip() for name in value.split(",") if name.strip()]


def _apply_lora(model, config: GenerateTrainConfig):
    """Wrap ``model`` with LoRA adapters: peft's default target modules for the architecture,
    or every linear layer for architectures peft has no default for."""
    from peft import LoraConfig, get_peft_model
    from transformers.pytorch_utils import Conv1D

    targets = _lora_targets(config.lora_target_modules)
    # GPT-2's layers are Conv1D (weights stored transposed): peft must be told, or it warns and guesses.
    transposed = any(isinstance(m, Conv1D) for m in model.modules())

    def wrap(target_modules):
        lora = LoraConfig(task_type="CAUSAL_LM", r=config.lora_r, lora_alpha=config.lora_alpha,
                          lora_dropout=config.lora_dropout, target_modules=target_modules,
                          fan_in_fan_out=transposed)
        return get_peft_model(model, lora)

    try:
        peft_model = wrap(targets)
    except ValueError as exc:
        if targets is not None:
            raise InvalidParameterError(f"LoRA target modules {config.lora_target_modules!r}: {exc}") from exc
        peft_model = wrap("all-linear")  # "Please specify target_modules": no default for this architecture
    trainable, total = peft_model.get_nb_trainable_parameters()
    log.info("LoRA: %d of %d parameters trainable (%.2f%%)", trainable, total, 100 * trainable / max(total, 1))
    return peft_model


def _precision(device: str) -> dict:
    """TrainingArguments device/precision flags from the project's one device policy
    (``assistant.device``): bf16 on CUDA where supported, else fp16; fp32 on CPU."""
    import torch

    from assistant.device import resolve_runtime

    runtime = resolve_runtime(None if device in ("", "auto") else device, None)
    if runtime.device.type == "cuda" and runtime.device.index not in (None, 0):
        raise InvalidParameterError(f"device {device!r}: choose the GPU with CUDA_VISIBLE_DEVICES="
                                    f"{runtime.device.index} and --device cuda (Trainer trains on the first visible)")
    cuda = runtime.device.type == "cuda"
    return {"use_cpu": not cuda, "bf16": cuda and runtime.dtype == torch.bfloat16,
            "fp16": cuda and runtime.dtype == torch.float16}


def _check_resume(config: GenerateTrainConfig, checkpoints: Path) -> str | None:
    """The checkpoint to resume from (``--resume``), or None for a fresh run. A fresh run never
    mixes into an earlier run's checkpoints, and a resumed one must keep its configuration."""
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if not config.resume:
        if last is not None:
            raise InvalidParameterError(f"{checkpoints} holds checkpoints of an earlier run ({Path(last).name}): "
                                        f"pass --resume to continue it, or choose another --out")
        return None
    if last is None:
        raise InvalidParameterError(f"--resume: no checkpoint to resume from in {checkpoints}")
    saved = checkpoints / _CONFIG_FILE
    if saved.is_file():
        before = json.loads(saved.read_text())
        now = asdict(config)
        changed = [k for k in now if k not in ("resume", "device") and before.get(k) != now[k]]
        if changed:
            raise InvalidParameterError(
                "--resume needs the configuration the run started with; changed: "
                + ", ".join(f"{k} ({before.get(k)!r} -> {now[k]!r})" for k in changed))
    return last


def train_generator(config: GenerateTrainConfig, *, callbacks: Sequence | None = None,
                    command: str | None = None) -> Path:
    """Fine-tune ``config.model`` on ``config.train`` and save a plain model directory in
    ``config.out`` (LoRA merged), with its tokenizer and run file. Returns the run directory.

    ``callbacks``: extra ``transformers.TrainerCallback``s (progress in a UI, early stop).
    ``command``: the command line recorded in the run file (default: the ``finassist finetune
    generate`` options that reproduce ``config``).
    """
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from assistant.models import resolve_model

    config.validate()
    started = time.perf_counter()
    out = Path(config.out).expanduser()
    checkpoints = out / "checkpoints"
    resume_from = _check_resume(config, checkpoints)
    precision = _precision(config.device)

    train_pairs, val_pairs, val_source = _load_pairs(config)
    transformers.set_seed(config.seed)
    resolved = resolve_model(config.model, GENERATOR)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.location, local_files_only=resolved.local_files_only)
        model = AutoModelForCausalLM.from_pretrained(resolved.location, local_files_only=resolved.local_files_only,
                                                     dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"could not load generator {config.model!r} from {resolved.origin}: {exc}") from exc
    if tokenizer.pad_token is None:  # GPT-2: pad with EOS (padding is masked out of attention and loss)
        tokenizer.pad_token = tokenizer.eos_token

    encoder = PairEncoder(tokenizer, task_prompt(config.task, config.instruction), config.max_input_tokens,
                          config.max_target_tokens, config.truncate_side, context_window(model.config))
    train_set = _tokenize(train_pairs, encoder, "tokenising training pairs")
    val_set = _tokenize(val_pairs, encoder, "tokenising validation pairs") if val_pairs else None
    truncated = {"inputs_truncated": int(sum(train_set["input_truncated"])),
                 "targets_truncated": int(sum(train_set["target_truncated"]))}
    train_set = train_set.remove_columns(["input_truncated", "target_truncated"])
    if val_set is not None:
        val_set = val_set.remove_columns(["input_truncated", "target_truncated"])

    model.config.use_cache = False  # the KV cache is useless (and wasted memory) in training
    if config.lora:
        if config.gradient_checkpointing:
            model.enable_input_require_grads()  # frozen embeddings: let checkpointed blocks get gradients
        model = _apply_lora(model, config)

    eval_during = val_set is not None and config.eval_steps > 0
    args = TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.effective_learning_rate,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=config.weight_decay,
        lr_scheduler_type="linear",
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        eval_strategy="steps" if eval_during else "no",
        eval_steps=config.eval_steps if eval_during else None,
        seed=config.seed,
        data_seed=config.seed,
        activation_checkpointing=config.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        report_to="none",
        **precision,
    )
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100,
                                      pad_to_multiple_of=8 if not precision["use_cpu"] else None)
    trainer = Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=val_set, data_collator=collator,
                      processing_class=tokenizer, callbacks=list(callbacks or []))

    before: dict = {}
    if trainer.is_world_process_zero():
        checkpoints.mkdir(parents=True, exist_ok=True)
        (checkpoints / _CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2) + "\n")
    if val_set is not None and config.baseline_eval and resume_from is None:
        before["eval_loss_before"] = float(trainer.evaluate()["eval_loss"])
        before["perplexity_before"] = _perplexity(before["eval_loss_before"])
    result = trainer.train(resume_from_checkpoint=resume_from)
    metrics: dict = {}  # validation loss first: it is the run's headline metric (assistant/runs.py)
    if val_set is not None:
        metrics["eval_loss"] = float(trainer.evaluate()["eval_loss"])
        metrics["perplexity"] = _perplexity(metrics["eval_loss"])
    metrics.update(before)
    metrics.update({"train_loss": float(result.training_loss), "global_step": int(result.global_step),
                    "epochs": float(trainer.state.epoch or 0.0)})
    metrics.update(train_examples=len(train_set), val_examples=len(val_set) if val_set is not None else 0,
                   resumed_from=Path(resume_from).name if resume_from else None, **truncated)

    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        _save_model(trainer.accelerator.unwrap_model(trainer.model), tokenizer, out, config.lora,
                    merge=config.merge_lora)
        _write_run_file(config, out, resolved, metrics, len(train_pairs), len(val_pairs), val_source,
                        command, time.perf_counter() - started)
    trainer.accelerator.wait_for_everyone()
    return out


def _perplexity(loss: float) -> float | None:
    """exp(loss), or None where it overflows (a diverged run): JSON has no infinity."""
    try:
        return float(math.exp(loss))
    except OverflowError:
        return None


def _save_model(model, tokenizer, out: Path, lora: bool, merge: bool = True) -> None:
    """A plain transformers model directory: LoRA merged into the weights, the KV cache back on,
    and the tokenizer with its chat template, so the engine loads it by path. Unmerged, the
    adapter alone (``adapter_model.safetensors`` and ``adapter_config.json``, which names the base
    model) and the tokenizer: the engine merges it into its base when it loads it."""
    if lora and not merge:
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        return
    if lora:
        model = model.merge_and_unload()
    model.config.use_cache = True
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _write_run_file(config: GenerateTrainConfig, out: Path, resolved, metrics: dict, n_train: int, n_val: int,
                    val_source: str, command: str | None, seconds: float) -> Path:
    data = [{"source": config.train, "records": n_train, "role": "train"}]
    if n_val:
        data.append({"source": val_source, "records": n_val, "role": "validation"})
    return write_run(
        out,
        kind="generator",
        task=config.task,
        base_model=config.model,
        config={**asdict(config), "learning_rate": config.effective_learning_rate,
                "base_model_location": resolved.location, "base_model_origin": resolved.origin},
        data=data,
        metrics=metrics,
        command=command or config_command("finassist finetune generate", config),
        seconds=round(seconds, 1),
    )
