"""Fine-tuning generators (``finetune/train_generator.py``) on real ECTSum pairs with tiny random models:
the 2-layer GPT-2 (plain template) and a 2-layer Llama with the real SmolLM2 tokenizer and chat
template. Weights are random, so the tests check the mechanics (prompt format, loss mask,
truncation, LoRA merge, resume, loading by the assistant), never what a model writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from assistant import Assistant
from assistant.chat import render_chat
from assistant.engine import Engine
from assistant.errors import DeviceError, InvalidParameterError
from assistant.prompts import load_prompt
from finetune.data import DataError
from finetune.config import GenerateTrainConfig
from finetune.train_generator import PairEncoder, TaskPrompt, task_prompt, train_generator


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "model.safetensors"))


# ------------------------------------------------------------------ prompts


def test_finetune_instruction_is_the_summarisers_bullets_prompt():
    """Training and inference prompts stay the same words: the [finetune] instruction is the
    bullets prompt, with its default budget."""
    config = load_prompt("summarize")
    assert config["finetune"]["instruction"] == config["styles"]["bullets"]["instruction"]
    assert config["finetune"]["max_words"] == config["styles"]["bullets"]["default_max_words"]
    prompt = task_prompt("summarize")
    assert prompt.system == config["system"]
    user = prompt.user_turn("Revenue rose 5% to {x}.")
    assert user == config["styles"]["bullets"]["instruction"].format(text="Revenue rose 5% to {x}.", max_words=120)


def test_task_without_prompt_file_and_instruction_without_placeholder():
    assert task_prompt("no-such-task") == TaskPrompt()
    assert task_prompt("../summarize").system is None  # a task name is never a path
    assert TaskPrompt().messages("hello") == [{"role": "user", "content": "hello"}]
    assert TaskPrompt(instruction="Summarise:").user_turn("the text") == "Summarise:\n\nthe text"


# ------------------------------------------------------- loss mask and truncation


def test_plain_template_pair_masks_the_prompt_and_ends_with_eos(tiny_gpt2_dir, pairs):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    prompt = task_prompt("summarize")
    encoder = PairEncoder(tok, prompt, max_input_tokens=64, max_target_tokens=200)
    record = pairs[0]
    features = encoder(record["transcript"], record["summary"])
    ids, labels = features["input_ids"], features["labels"]
    n_prompt = sum(1 for label in labels if label == -100)
    assert labels[:n_prompt] == [-100] * n_prompt and -100 not in labels[n_prompt:]
    assert labels[n_prompt:] == ids[n_prompt:]
    assert ids[-1] == tok.eos_token_id
    assert features["attention_mask"] == [1] * len(ids)
    # The prompt is token for token what the engine sends at inference for the (cut) transcript.
    kept, cut = encoder.truncate(record["transcript"], 64)
    assert cut and features["input_truncated"] and not features["target_truncated"]
    engine = Engine(generator=tiny_gpt2_dir, device="cpu")
    assert ids[:n_prompt] == engine.prompt_ids(prompt.messages(kept))[0].tolist()
    # The answer is " summary" (after "Assistant:") and EOS.
    assert tok.decode(ids[n_prompt:]) == " " + record["summary"].strip() + tok.eos_token


def test_chat_template_pair_ends_the_assistant_turn(tiny_smollm2_dir, pairs):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_smollm2_dir)
    prompt = task_prompt("summarize")
    record = pairs[1]
    features = PairEncoder(tok, prompt, max_input_tokens=64, max_target_tokens=200)(
        record["transcript"], record["summary"])
    ids, labels = features["input_ids"], features["labels"]
    n_prompt = labels.count(-100)
    assert -100 not in labels[n_prompt:] and labels[n_prompt:] == ids[n_prompt:]
    prompt_text = tok.decode(ids[:n_prompt])
    assert prompt_text.startswith("<|im_start|>system\n" + prompt.system)
    assert prompt_text.endswith("<|im_start|>assistant\n")
    # The target, then <|im_end|> (SmolLM2's EOS, the token the engine stops on), nothing after it.
    assert tok.decode(ids[n_prompt:]) == record["summary"].strip() + "<|im_end|>"
    assert ids[-1] == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert labels[-1] == tok.eos_token_id


def test_truncation_sides_keep_the_beginning_or_the_end(tiny_gpt2_dir, pairs):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    text = pairs[0]["transcript"]
    encoder = PairEncoder(tok, TaskPrompt(), max_input_tokens=30, max_target_tokens=10)
    head, cut_head = encoder.truncate(text, 30, "end")
    tail, cut_tail = encoder.truncate(text, 30, "start")
    assert cut_head and cut_tail
    assert text.startswith(head) and text.endswith(tail) and head != tail
    assert 20 < encoder.count(head) <= 30 and 20 < encoder.count(tail) <= 30
    assert encoder.truncate("Revenue rose.", 30) == ("Revenue rose.", False)

    # In a pair: the default side keeps the transcript's opening; "start" keeps its close.
    first_words, last_words = " ".join(text.split()[:5]), " ".join(text.split()[-5:])
    for side, present, absent in (("end", first_words, last_words), ("start", last_words, first_words)):
        features = PairEncoder(tok, TaskPrompt(), 30, 200, truncate_side=side)(text, "Revenue rose.")
        prompt_text = tok.decode([i for i, lab in zip(features["input_ids"], features["labels"]) if lab == -100])
        assert present in prompt_text and absent not in prompt_text, side
    # A target over its budget is cut at the end and gets no EOS: the model must not learn to stop mid-summary.
    summary = pairs[0]["summary"]
    features = encoder(text, summary)
    answer = [lab for lab in features["labels"] if lab != -100]
    assert features["target_truncated"] and len(answer) <= 11 and answer[-1] != tok.eos_token_id
    with pytest.raises(InvalidParameterError, match="truncate_side"):
        PairEncoder(tok, TaskPrompt(), truncate_side="middle")


# --------------------------------------------------------------------- training


def test_full_finetune_writes_a_run_the_assistant_loads(gpt2_run, tiny_gpt2_dir, pairs):
    run = json.loads((gpt2_run / "finassist-run.json").read_text())
    assert run["kind"] == "generator" and run["task"] == "summarize" and run["base_model"] == str(tiny_gpt2_dir)
    metrics = run["metrics"]
    assert metrics["global_step"] == 4 and metrics["train_examples"] == 6 and metrics["val_examples"] == 2
    assert metrics["perplexity"] == pytest.approx(2.718281828 ** metrics["eval_loss"], rel=1e-6)
    assert "eval_loss_before" in metrics and metrics["inputs_truncated"] == 6
    assert [d["role"] for d in run["data"]] == ["train", "validation"] and run["data"][0]["licence"] == "GPL-3.0"
    assert (gpt2_run / "README.md").is_file()
    assert (gpt2_run / "checkpoints" / "checkpoint-4").is_dir()
    # Every weight matrix was trained (full fine-tuning), and the tokenizer came along.
    before, after = _weights(tiny_gpt2_dir), _weights(gpt2_run)
    assert not torch.equal(before["transformer.h.0.attn.c_attn.weight"], after["transformer.h.0.attn.c_attn.weight"])
    assert (gpt2_run / "tokenizer.json").is_file()

    assistant = Assistant(generator=gpt2_run, device="cpu")
    summary = assistant.summarize("\n".join(pairs[0]["transcript"].splitlines()[:3]), max_words=12)
    assert assistant.engine.generator.resolved.location == str(gpt2_run)
    assert isinstance(summary.text, str) and summary.chunks == 1
    reply = assistant.engine.generate([{"role": "user", "content": "Revenue?"}])
    assert reply.completion_tokens > 0 and reply.text.strip()


def test_lora_on_chat_model_is_merged_into_a_plain_model(tiny_smollm2_dir, pairs_file, tmp_path, pairs,
                                                         generator_config):
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    out = tmp_path / "smollm2-lora"
    train_generator(generator_config(pairs_file, out, tiny_smollm2_dir, lora=True, max_steps=3, save_steps=10,
                            learning_rate=5e-2, gradient_checkpointing=True), command="test")
    files = {p.name for p in out.iterdir()}
    assert "adapter_config.json" not in files and "adapter_model.safetensors" not in files
    weights = _weights(out)
    assert not any("lora" in key or "base_layer" in key for key in weights)
    base = _weights(tiny_smollm2_dir)
    assert set(weights) == set(base)
    # peft's default targets for Llama (q_proj, v_proj) changed by the merge; the rest did not.
    assert not torch.equal(weights["model.layers.0.self_attn.q_proj.weight"], base["model.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(weights["model.layers.0.mlp.up_proj.weight"], base["model.layers.0.mlp.up_proj.weight"])
    model = AutoModelForCausalLM.from_pretrained(out)
    assert type(model) is LlamaForCausalLM and model.config.use_cache
    assert AutoTokenizer.from_pretrained(out).chat_template == AutoTokenizer.from_pretrained(tiny_smollm2_dir).chat_template

    assistant = Assistant(generator=out, device="cpu")
    summary = assistant.summarize("\n".join(pairs[0]["transcript"].splitlines()[:3]), max_words=12)
    assert isinstance(summary.text, str)
    assert assistant.engine.render_chat([{"role": "user", "content": "x"}]).startswith("<|im_start|>")


def test_lora_all_linear_without_validation(tiny_gpt2_dir, pairs_file, tmp_path, generator_config):
    out = tmp_path / "gpt2-lora"
    train_generator(generator_config(pairs_file, out, tiny_gpt2_dir, lora=True, lora_target_modules="all-linear",
                            val_fraction=0, max_steps=2, learning_rate=5e-2), command="test")
    weights, base = _weights(out), _weights(tiny_gpt2_dir)
    assert set(weights) == set(base)
    assert not torch.equal(weights["transformer.h.1.mlp.c_fc.weight"], base["transformer.h.1.mlp.c_fc.weight"])
    run = json.loads((out / "finassist-run.json").read_text())
    assert "eval_loss" not in run["metrics"] and run["metrics"]["val_examples"] == 0
    assert [d["role"] for d in run["data"]] == ["train"] and run["config"]["learning_rate"] == 5e-2


class _Interrupted(Exception):
    pass


def _interrupt_at(step: int):
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise _Interrupted(f"killed before step {step + 1}")

    return Interrupt()


def test_resume_continues_from_the_last_checkpoint_exactly(gpt2_run, tiny_gpt2_dir, pairs_file, tmp_path,
                                                           generator_config):
    out = tmp_path / "resumed"
    config = generator_config(pairs_file, out, tiny_gpt2_dir)
    with pytest.raises(_Interrupted):
        train_generator(config, callbacks=[_interrupt_at(2)])
    assert (out / "checkpoints" / "checkpoint-2").is_dir() and not (out / "finassist-run.json").exists()

    with pytest.raises(InvalidParameterError, match="--resume"):  # a fresh run never mixes into old checkpoints
        train_generator(config)
    with pytest.raises(InvalidParameterError, match="learning_rate"):  # a resumed run keeps its configuration
        train_generator(generator_config(pairs_file, out, tiny_gpt2_dir, resume=True, learning_rate=1e-4))

    train_generator(generator_config(pairs_file, out, tiny_gpt2_dir, resume=True))
    metrics = json.loads((out / "finassist-run.json").read_text())["metrics"]
    assert metrics["resumed_from"] == "checkpoint-2" and metrics["global_step"] == 4
    state = json.loads((out / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2, 3, 4]
    # Same weights as the run that was never interrupted (optimizer, schedule, data order, RNG restored).
    uninterrupted, resumed = _weights(gpt2_run), _weights(out)
    for key in uninterrupted:
        torch.testing.assert_close(resumed[key], uninterrupted[key], rtol=0, atol=1e-6, msg=key)


def test_resume_without_checkpoint_is_refused(tiny_gpt2_dir, pairs_file, tmp_path, generator_config):
    with pytest.raises(InvalidParameterError, match="no checkpoint"):
        train_generator(generator_config(pairs_file, tmp_path / "new", tiny_gpt2_dir, resume=True))


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(("broken", "message"), [
    ({"transcript": "Revenue rose."}, "missing field 'summary'"),
    ({"transcript": "Revenue rose.", "summary": "  "}, "field 'summary' is empty"),
    ({"transcript": "Revenue rose.", "summary": 5}, "field 'summary' must be non-empty text"),
])
def test_bad_records_name_file_and_line(pairs, tmp_path, tiny_gpt2_dir, broken, message, generator_config):
    path = tmp_path / "broken.jsonl"
    rows = [pairs[0], pairs[1], broken, pairs[2]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        train_generator(generator_config(path, tmp_path / "out", tiny_gpt2_dir))
    assert f"{path}:3" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_bad_settings_are_refused_before_loading(pairs_file, tmp_path, tiny_gpt2_dir, generator_config):
    for overrides, field in (({"truncate_side": "left"}, "truncate_side"), ({"val_fraction": 1.0}, "val_fraction"),
                             ({"max_input_tokens": 0}, "max_input_tokens"), ({"lora_dropout": 1.5}, "lora_dropout")):
        with pytest.raises(InvalidParameterError, match=field):
            train_generator(generator_config(pairs_file, tmp_path / "out", tiny_gpt2_dir, **overrides))
    with pytest.raises(InvalidParameterError, match="--out"):
        train_generator(GenerateTrainConfig(train=str(pairs_file)))
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="cuda"):
            train_generator(generator_config(pairs_file, tmp_path / "out", tiny_gpt2_dir, device="cuda"))
    assert not (tmp_path / "out").exists()


def test_render_chat_finished_conversation_extends_the_prompt(tiny_gpt2_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    messages = [{"role": "user", "content": "Revenue?"}]
    prompt = render_chat(tok, messages)
    full = render_chat(tok, [*messages, {"role": "assistant", "content": "Up 5%."}], add_generation_prompt=False)
    assert full.startswith(prompt) and full[len(prompt):].strip() == "Up 5%."


def test_examples_are_fitted_into_the_context_window(tiny_gpt2_dir, pairs, tmp_path, generator_config):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    record = pairs[0]
    features = PairEncoder(tok, task_prompt("summarize"), max_input_tokens=500, max_target_tokens=500,
                           context_window=400)(record["transcript"], record["summary"])
    assert 390 <= len(features["input_ids"]) <= 400 and features["input_truncated"]
    assert features["input_ids"][-1] == tok.eos_token_id  # the input gave way, not the answer

    # A target that cannot fit at all (the tiny GPT-2 has 1024 positions) names its record.
    path = tmp_path / "long.jsonl"
    rows = [pairs[1], {"transcript": record["transcript"], "summary": record["summary"] * 40}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(DataError, match="context window") as info:
        train_generator(generator_config(path, tmp_path / "out", tiny_gpt2_dir, val_fraction=0, max_target_tokens=5000))
    assert f"{path}:2" in str(info.value)
