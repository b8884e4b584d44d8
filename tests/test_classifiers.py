"""Fine-tuned classifiers in the assistant (assistant/classifiers.py and the classify task):
runs of both kinds loaded through ``Assistant(classifiers=...)`` and ``--classifier``, window
aggregation, thresholds, model listing and errors. The runs are session fixtures trained on
the tiny random BERT (tests/conftest.py)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from assistant import Assistant
from assistant.classifiers import FineTunedClassifier, aggregate_windows
from assistant.device import cpu_has_amx_bf16
from assistant.errors import ModelLoadError, ModelNotFoundError, UnknownTaskError
from assistant.runs import RUN_FILE, read_run
from assistant.tasks.classify import Classification

SENTENCES = [
    "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007.",
    "The company reported a net loss and will cut 150 jobs.",
    "The annual general meeting will be held on 3 April in Helsinki.",
]
TOS = [
    "We may terminate your account at any time without notice.",
    "Any dispute shall be resolved by binding arbitration in California.",
    "Welcome to our service.",
]


def test_aggregate_windows_single_label_means_logits():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 3.0]])
    owner = torch.tensor([0, 0, 1])
    probs = aggregate_windows(logits, owner, 2, multi_label=False)
    assert torch.allclose(probs[0], torch.softmax(torch.tensor([1.0, 1.0]), -1))
    assert torch.allclose(probs[1], torch.softmax(torch.tensor([1.0, 3.0]), -1))


def test_aggregate_windows_multi_label_takes_the_max():
    logits = torch.tensor([[3.0, -3.0], [-3.0, 0.0], [0.0, 0.0]])
    probs = aggregate_windows(logits, torch.tensor([0, 0, 1]), 2, multi_label=True)
    assert torch.allclose(probs[0], torch.sigmoid(torch.tensor([3.0, 0.0])))
    assert torch.allclose(probs[1], torch.tensor([0.5, 0.5]))


@pytest.fixture(scope="module")
def assistant(tiny_gpt2_dir, tiny_bert_dir, sentiment_run, unfair_run):
    return Assistant(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu",
                     classifiers={"sentiment": sentiment_run, "unfair-tos": unfair_run})


def test_predict_scores_are_probabilities_and_windows_do_not_leak(sentiment_run):
    clf = FineTunedClassifier(sentiment_run, device="cpu", int8=False)
    assert not clf.loaded and clf.labels == ["negative", "neutral", "positive"]
    long_text = " ".join(SENTENCES * 30)  # hundreds of tokens: many 32-token windows
    probs = clf.predict_scores(SENTENCES + [long_text])
    assert clf.loaded and probs.shape == (4, 3)
    assert torch.allclose(probs.sum(1), torch.ones(4), atol=1e-5)
    alone = torch.cat([clf.predict_scores([t]) for t in SENTENCES + [long_text]])
    assert torch.allclose(probs, alone, atol=1e-5), "a text's scores must not depend on its batch"
    assert clf.predict_scores([]).shape == (0, 3)


@pytest.mark.parametrize("amx", [False, True])
def test_the_cpus_fast_path_is_int8_or_bfloat16_on_amx_tiles(sentiment_run, monkeypatch, amx):
    """By default a fine-tuned encoder on a CPU runs int8, or bfloat16 where the cores have AMX tiles
    (both branches, whatever this machine has); asked for explicitly, int8 or float32 it is."""
    import assistant.classifiers as classifiers

    monkeypatch.setattr(classifiers, "cpu_has_amx_bf16", lambda: amx)
    fast = FineTunedClassifier(sentiment_run, device="cpu")
    assert (fast.int8, fast.runtime.dtype_key) == ((False, "bfloat16") if amx else (True, "float32"))
    assert fast.describe()["dtype"] == ("bfloat16" if amx else "float32")
    fast.int8 = False  # as `finassist eval classify --no-int8` asks: the float model, on any CPU
    assert (fast.int8, fast.runtime.dtype_key) == (False, "float32")
    fast.int8 = None
    exact = FineTunedClassifier(sentiment_run, device="cpu", int8=False)
    texts = SENTENCES + [" ".join(SENTENCES * 30)]
    assert torch.allclose(fast.predict_scores(texts), exact.predict_scores(texts), atol=3e-2)
    assert FineTunedClassifier(sentiment_run, device="cpu", int8=True).int8


def test_int8_on_cpu_close_to_float(sentiment_run):
    """int8 activations are quantised per batch: a text's probabilities may move by quantisation
    noise with its batch and from the float model's, never by more than that."""
    fast = FineTunedClassifier(sentiment_run, device="cpu", int8=True)
    exact = FineTunedClassifier(sentiment_run, device="cpu", int8=False)
    assert fast.int8 and not exact.int8
    assert "int8" in fast.describe()["architecture"] and "int8" not in exact.describe()["architecture"]
    texts = SENTENCES + [" ".join(SENTENCES * 30)]
    batch, floats = fast.predict_scores(texts), exact.predict_scores(texts)
    alone = torch.cat([fast.predict_scores([t]) for t in texts])
    assert torch.allclose(batch, alone, atol=5e-3) and torch.allclose(batch, floats, atol=2e-2)
    assert not torch.equal(batch, floats), "the int8 model must actually be a different (quantised) model"


def test_fine_tuned_single_label_classification(assistant):
    result = assistant.classify(SENTENCES[0], task="sentiment")
    assert isinstance(result, Classification) and result.task == "sentiment" and not result.multi_label
    assert sorted(s.label for s in result.scores) == ["negative", "neutral", "positive"]
    values = [s.score for s in result.scores]
    assert values == sorted(values, reverse=True) and sum(values) == pytest.approx(1.0, abs=1e-5)
    assert result.labels == [result.scores[0].label]
    many = assistant.classify(SENTENCES, task="sentiment")
    assert len(many) == 3 and many[0].labels == result.labels
    # int8 on CPU (the default without AMX tiles) quantises activations per batch, bfloat16 rounds: the
    # same text in another batch moves by that noise only
    assert many[0].scores[0].score == pytest.approx(result.scores[0].score, abs=5e-3)
    assert assistant.engine.loaded("encoder") is None, "a fine-tuned run needs no zero-shot encoder"


def test_fine_tuned_multi_label_uses_tuned_thresholds(assistant, unfair_run):
    info = read_run(unfair_run)
    results = assistant.classify(TOS, task="unfair-tos")
    for r in results:
        assert r.task == "unfair-tos" and r.multi_label
        assert {s.label for s in r.scores} == set(info.labels)
        assert r.labels == [s.label for s in r.scores if s.score >= info.thresholds[s.label]]
        assert all(0.0 <= s.score <= 1.0 for s in r.scores)
    everything = assistant.classify(TOS[0], task="unfair-tos", threshold=0.0)
    assert set(everything.labels) == set(info.labels)
    assert assistant.classify(TOS[0], task="unfair-tos", threshold=1.01).labels == []


def test_run_tasks_are_listed(assistant):
    tasks = assistant.classification_tasks()
    assert "unfair-tos" in tasks and {"sentiment", "contract-clause"} <= set(tasks)
    assert tasks == sorted(tasks)
    with pytest.raises(UnknownTaskError, match="unfair-tos"):
        assistant.classify("text", task="nope")


def test_zero_shot_tasks_still_work_beside_runs(assistant):
    result = assistant.classify("The governing law is New York.", task="contract-clause")
    assert result.task == "contract-clause" and result.multi_label


def test_head_run_from_a_list_of_runs(sentiment_head_run, tiny_bert_dir):
    a = Assistant(encoder=tiny_bert_dir, device="cpu", classifiers=[sentiment_head_run])
    results = a.classify(SENTENCES, task="sentiment")
    assert all(r.labels and r.labels[0] in {"negative", "neutral", "positive"} for r in results)
    assert all(sum(s.score for s in r.scores) == pytest.approx(1.0, abs=1e-5) for r in results)
    # The head embeds with the run's own copy of the encoder, exactly as in training.
    clf = a.engine.classifier("sentiment")
    assert clf.info.kind == "classifier-head"


def test_models_lists_configured_and_discovered_runs(assistant, runs_dir, sentiment_head_run, monkeypatch):
    monkeypatch.setenv("FINASSIST_RUNS", str(runs_dir))
    rows = assistant.models()
    assert [r["role"] for r in rows[:2]] == ["generator", "encoder"]
    runs = {r["location"]: r for r in rows if r["role"] == "classifier"}
    configured = [r for r in runs.values() if r["configured"]]
    assert {r["task"] for r in configured} == {"sentiment", "unfair-tos"}
    for r in configured:
        assert r["kind"] == "classifier" and r["base_model"] and r["metric"]["name"] in ("accuracy", "macro_f1")
        # the CPU's fast path for a classifier's own model: bfloat16 on AMX tiles, else float32 with int8 layers
        assert r["device"] == "cpu" and r["dtype"] == ("bfloat16" if cpu_has_amx_bf16() else "float32")
    found = runs[str(sentiment_head_run)]
    assert found["configured"] is False and found["kind"] == "classifier-head" and found["loaded"] is False
    assert len(runs) == len({r["location"] for r in rows if r["role"] == "classifier"}), "no run listed twice"


def test_missing_or_broken_runs(tmp_path, sentiment_run):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        Assistant(classifiers={"sentiment": tmp_path / "nowhere"})
    with pytest.raises(ModelNotFoundError, match=RUN_FILE):
        Assistant(classifiers={"sentiment": tmp_path})
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / RUN_FILE).write_text("{not json")
    with pytest.raises(ModelLoadError, match="JSON"):
        Assistant(classifiers=[corrupt])
    # A run file whose weights are gone: found, but cannot load (on first use).
    hollow = tmp_path / "hollow"
    hollow.mkdir()
    shutil.copy(sentiment_run / RUN_FILE, hollow / RUN_FILE)
    a = Assistant(classifiers=[hollow], device="cpu")
    with pytest.raises(ModelLoadError, match="hollow"):
        a.classify("Profit rose.", task="sentiment")


def test_broken_head_file(tmp_path, sentiment_head_run):
    broken = tmp_path / "broken"
    shutil.copytree(sentiment_head_run, broken)
    (broken / "head.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="head.safetensors"):
        FineTunedClassifier(broken, device="cpu").predict_scores(["Profit rose."])


def test_label_count_mismatch(tmp_path, sentiment_run):
    tampered = tmp_path / "tampered"
    shutil.copytree(sentiment_run, tampered, ignore=shutil.ignore_patterns("checkpoints"))
    run = json.loads((tampered / RUN_FILE).read_text())
    run["labels"] = ["negative", "positive"]
    (tampered / RUN_FILE).write_text(json.dumps(run))
    with pytest.raises(ModelLoadError, match="3 outputs"):
        FineTunedClassifier(tampered, device="cpu").load()


def test_cli_classifier_option(run_cli, tiny_bert_dir, sentiment_run, unfair_run):
    proc = run_cli("classify", "--encoder", tiny_bert_dir, "--device", "cpu", "--classifier",
                   f"sentiment={sentiment_run}", "--classifier", str(unfair_run), "--task", "unfair-tos",
                   "--json", TOS[0])
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["task"] == "unfair-tos" and data["multi_label"] is True
    assert {s["label"] for s in data["scores"]} == set(read_run(unfair_run).labels)


def test_cli_bad_classifier_is_a_user_error(capsys, tmp_path):
    from assistant.cli import main

    # -v: no library silencing, so this in-process call leaves logging and warnings as they were.
    assert main(["classify", "-v", "--classifier", f"sentiment={tmp_path / 'none'}", "text"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["models", "-v", "--classifier", "=x"]) == 1
    assert "TASK=RUN_DIR" in capsys.readouterr().err


def test_cli_models_lists_runs(capsys, tiny_gpt2_dir, tiny_bert_dir, sentiment_run, unfair_run):
    from assistant.cli import main

    args = ["models", "-v", "--generator", str(tiny_gpt2_dir), "--encoder", str(tiny_bert_dir), "--device", "cpu",
            "--classifier", f"sentiment={sentiment_run}", "--classifier", str(unfair_run)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"classifier: {sentiment_run.name}  (classifier for task sentiment, accuracy " in out
    assert "for task unfair-tos, macro_f1 " in out and "in use" in out
    assert out.strip().splitlines()[-1] == "classification tasks: contract-clause, sentiment, unfair-tos"
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["classification_tasks"] == ["contract-clause", "sentiment", "unfair-tos"]
    assert {r["task"] for r in data["models"] if r["role"] == "classifier"} == {"sentiment", "unfair-tos"}


# ------------------------------------------------- runs that keep no copy of their base model


def _copy_with(run, target, **changes):
    """A copy of a run whose run file has ``changes`` applied (a hand-edited or swapped run)."""
    shutil.copytree(run, target)
    data = json.loads((target / RUN_FILE).read_text())
    data.update(changes)
    (target / RUN_FILE).write_text(json.dumps(data))
    return target


def test_lora_run_stores_the_adapter_and_names_its_base(sentiment_lora_run, tiny_bert_dir):
    info = read_run(sentiment_lora_run)
    assert info.kind == "classifier-lora" and info.base_model == str(tiny_bert_dir)
    assert info.base_fingerprint.startswith("sha256:")
    assert (sentiment_lora_run / "adapter_model.safetensors").is_file()
    assert not (sentiment_lora_run / "model.safetensors").exists(), "a LoRA run holds no copy of the encoder"
    stored = load_file(str(sentiment_lora_run / "adapter_model.safetensors"))
    assert {t.dtype for t in stored.values()} == {torch.float16}, "adapters are stored in half the bytes"
    clf = FineTunedClassifier(sentiment_lora_run, device="cpu", int8=False)
    probs = clf.predict_scores(SENTENCES)
    assert probs.shape == (3, 3) and torch.allclose(probs.sum(1), torch.ones(3), atol=1e-5)
    assert "LoRA" in clf.describe()["architecture"]


def test_loading_a_lora_run_says_nothing_misleading(sentiment_lora_run, capfd):
    """The base encoder loads without the run's head (the adapter brings it): transformers' report of
    a "newly initialized" classifier, and peft's deprecation warning, must not reach the user."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        FineTunedClassifier(sentiment_lora_run, device="cpu", int8=False).predict_scores(SENTENCES[:1])
    err = capfd.readouterr().err
    assert "newly initialized" not in err and "MISSING" not in err, err
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]


def test_lora_validation_is_scored_in_order(sentiment_lora_run, classify_data):
    """The validation figures in the run file are those of the saved model on the validation texts
    in their own order, although training batches were grouped by length."""
    from finetune.classification_data import load_classification_data as load_data
    from finetune.config import ClassifyTrainConfig

    info = read_run(sentiment_lora_run)
    config = ClassifyTrainConfig(**{k: v for k, v in info.config.items() if k in ClassifyTrainConfig.__dataclass_fields__})
    data = load_data(config)
    probs = FineTunedClassifier(sentiment_lora_run, device="cpu", int8=False).predict_scores(data.val_texts)
    predicted = [info.labels[i] for i in probs.argmax(1).tolist()]
    accuracy = sum(p == g[0] for p, g in zip(predicted, data.val_labels, strict=True)) / len(predicted)
    assert accuracy == pytest.approx(info.metrics["accuracy"], abs=1e-9)


def test_swapped_or_missing_base_weights_are_refused(tmp_path, sentiment_lora_run, compact_head_run):
    swapped = _copy_with(sentiment_lora_run, tmp_path / "swapped", base_fingerprint="sha256:" + "0" * 64)
    with pytest.raises(ModelLoadError, match="other weights"):
        FineTunedClassifier(swapped, device="cpu").predict_scores(["Profit rose."])
    gone = _copy_with(compact_head_run, tmp_path / "gone", base_model=str(tmp_path / "no-such-encoder"))
    with pytest.raises(ModelLoadError, match="no-such-encoder"):
        FineTunedClassifier(gone, device="cpu").predict_scores(["We may terminate your account."])
    hollow = tmp_path / "hollow"
    shutil.copytree(sentiment_lora_run, hollow)
    (hollow / "adapter_model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="adapter_model.safetensors"):
        FineTunedClassifier(hollow, device="cpu").predict_scores(["Profit rose."])


def test_compact_head_shares_the_engines_encoder(compact_head_run, tiny_gpt2_dir, tiny_bert_dir):
    info = read_run(compact_head_run)
    assert info.kind == "classifier-head" and info.base_fingerprint and not (compact_head_run / "encoder").exists()
    assistant = Assistant(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu",
                          classifiers={"unfair-tos": compact_head_run})
    clf = assistant.engine.classifier("unfair-tos")
    assert clf.sentence_encoder is assistant.engine.sentence_encoder, "the head embeds with the engine's own encoder"
    own = FineTunedClassifier(compact_head_run, device="cpu").predict_scores(TOS)
    shared = clf.predict_scores(TOS)
    assert torch.allclose(own, shared, atol=1e-5)


def test_classify_tasks_embeds_once_for_heads_on_one_encoder(compact_head_run, tiny_gpt2_dir, tiny_bert_dir,
                                                            sentiment_lora_run):
    assistant = Assistant(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu",
                          classifiers={"unfair-tos": compact_head_run, "sentiment": sentiment_lora_run})
    encoder = assistant.engine.sentence_encoder
    passes = []
    original = encoder.encode
    encoder.encode = lambda texts, **kw: passes.append(len(texts)) or original(texts, **kw)  # count passes
    try:
        both = assistant.classify_tasks(TOS, ["unfair-tos", "contract-clause", "sentiment"])
    finally:
        del encoder.encode
    assert set(both) == {"unfair-tos", "contract-clause", "sentiment"}
    # zero-shot contract-clause embeds the label descriptions once, then shares the texts' pass
    text_passes = [n for n in passes if n == len(TOS)]
    assert len(text_passes) == 1, passes
    separate = assistant.classify(TOS, task="unfair-tos")
    assert [r.labels for r in both["unfair-tos"]] == [r.labels for r in separate]
    assert [r.labels for r in both["sentiment"]] == [r.labels for r in assistant.classify(TOS, task="sentiment")]


def test_zero_shot_replaces_the_fine_tuned_model_per_call(assistant):
    tuned = assistant.classify(SENTENCES[0], task="sentiment")
    zero = assistant.classify(SENTENCES[0], task="sentiment", zero_shot=True)
    assert tuned.task == zero.task == "sentiment"
    assert assistant.engine.loaded("encoder") is not None, "zero-shot embeds with the engine's encoder"
    assert [s.score for s in tuned.scores] != pytest.approx([s.score for s in zero.scores])


@pytest.mark.slow
def test_an_ensemble_with_a_damaged_member_names_the_members_file(tmp_path, sentiment_ensemble):
    broken = tmp_path / "broken"
    shutil.copytree(sentiment_ensemble, broken)
    weights = broken / "lora" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match=str(weights)):
        Assistant(classifiers={"sentiment": broken}, device="cpu").classify("Profit rose.", task="sentiment")
    shutil.rmtree(broken / "head")
    with pytest.raises(ModelNotFoundError, match="broken/head does not exist"):
        FineTunedClassifier(broken, device="cpu")


@pytest.mark.slow
def test_an_ensemble_serves_like_any_run(sentiment_ensemble, tiny_gpt2_dir, tiny_bert_dir):
    a = Assistant(encoder=str(tiny_bert_dir), generator=str(tiny_gpt2_dir), device="cpu",
                  classifiers={"sentiment": sentiment_ensemble}, shipped_classifiers=False)
    result = a.classify(["Net sales doubled.", "Operating loss widened."], task="sentiment")
    clf = a.engine.classifier("sentiment")
    expected = clf.predict_scores(["Net sales doubled.", "Operating loss widened."])
    assert [r.label for r in result] == [clf.labels[int(i)] for i in expected.argmax(1)]
    row = next(m for m in a.models() if m.get("role") == "classifier")
    assert row["kind"] == "classifier-ensemble" and row["architecture"].startswith("average of ")
    assert [m["name"] for m in row["members"]] == ["lora", "head"]
