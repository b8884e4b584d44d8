"""The recipes of the shipped classifiers (finetune/recipes.py): the data they carve from
../shared/data, their training options, and installing a compact run into the package."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from assistant.errors import InvalidParameterError
from assistant.runs import read_run
from finetune.recipes import RECIPES, TWEET_LABELS, install, prepare_sentiment, prepare_unfair_tos, training_config


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


@pytest.fixture(scope="module")
def sentiment_files(tmp_path_factory, shared_data):
    return prepare_sentiment(shared_data, tmp_path_factory.mktemp("sentiment-data"))


def test_sentiment_data_keeps_its_held_out_sets_out_of_training(sentiment_files):
    train = _rows(sentiment_files["train"])
    fpb_held, tweets_held = _rows(sentiment_files["fpb-allagree-heldout"]), _rows(sentiment_files["tweets-heldout"])
    assert len(fpb_held) == 844 and 1400 <= len(tweets_held) <= 1450
    seen = {r["text"] for r in train}
    assert not seen & {r["text"] for r in fpb_held} and not seen & {r["text"] for r in tweets_held}
    sources = Counter(r["source"] for r in train)
    assert sources["fpb"] > 3000 and sources["tweets"] > 7500
    assert {r["label"] for r in train} == {"negative", "neutral", "positive"} == set(TWEET_LABELS.values())
    weights = {r["weight"] for r in train if r["source"] == "fpb"}
    assert weights == {0.5, 0.66, 0.75, 1.0}, "FPB sentences weigh their annotators' agreement"
    assert {r["weight"] for r in train if r["source"] == "tweets"} == {1.0}


def test_sentiment_data_is_the_same_on_every_build(sentiment_files, tmp_path, shared_data):
    again = prepare_sentiment(shared_data, tmp_path)
    for name, path in sentiment_files.items():
        assert again[name].read_bytes() == path.read_bytes(), name


def test_the_sentiment_validation_file_is_the_split_the_lora_run_carves(sentiment_files, tmp_path):
    """``val`` holds exactly the texts the shipped LoRA run validated on (the split its trainer carves by
    default), so a second model trained with ``--exclude`` on it never saw them (docs/results.md: the
    ensemble experiment)."""
    from finetune.classification_data import load_classification_data

    recipe = RECIPES["sentiment"]
    lora = load_classification_data(training_config(recipe, recipe.options, sentiment_files, tmp_path,
                                                    progress=False))
    val = _rows(sentiment_files["val"])
    assert lora.val_texts == [r["text"] for r in val] and len(val) == 1156
    other = load_classification_data(training_config(
        recipe, {"train": "{train}", "exclude": "{val}", "head_only": True, "cv_folds": 5}, sentiment_files,
        tmp_path, progress=False))
    assert not set(other.train_texts) & set(lora.val_texts)
    assert len(other.train_texts) >= len(lora.train_texts) - 50  # the same training texts otherwise


def test_unfair_tos_holds_out_whole_documents(tmp_path, shared_data):
    files = prepare_unfair_tos(shared_data, tmp_path)
    train, held, everything = (_rows(files[k]) for k in ("train", "heldout-docs", "all"))
    assert not {r["document"] for r in train} & {r["document"] for r in held}
    assert len({r["document"] for r in held}) == 9 and len(train) + len(held) == len(everything)


@pytest.mark.parametrize("task", sorted(RECIPES))
def test_every_recipe_is_a_valid_training_configuration(task, tmp_path):
    recipe = RECIPES[task]
    files = {name: tmp_path / f"{name}.jsonl" for name in ("train", "all", "val", "heldout-docs",
                                                           "fpb-allagree-heldout", "tweets-heldout")}
    for options in (recipe.options, {**recipe.options, **recipe.refit}):
        config = training_config(recipe, options, files, tmp_path / "out", progress=False)
        assert config.task == task and config.train.startswith(str(tmp_path))
        # what is shipped is compact: an adapter, or a head without a copy of the encoder
        assert config.lora or (config.head_only and not config.copy_encoder)
        # legal texts (the multi-label tasks) come in documents: folds hold whole contracts / Terms of Service
        # out, or the thresholds are tuned on clauses whose siblings were in training; sentiment's sentences
        # and tweets stand alone
        assert not (config.cv_folds and config.multi_label) or config.group_field in ("contract", "document")
    for held in recipe.held_out:
        assert held.file in files


def test_install_copies_a_compact_run_and_refuses_a_self_contained_one(tmp_path, compact_head_run,
                                                                      sentiment_head_run):
    target = install(compact_head_run, "unfair-tos", tmp_path)
    assert target == tmp_path / "unfair-tos" and read_run(target).kind == "classifier-head"
    assert sorted(p.name for p in target.iterdir()) == sorted(
        ["README.md", "chars.json", "finassist-run.json", "head.safetensors", "words.json"])
    with pytest.raises(InvalidParameterError, match="self-contained"):
        install(sentiment_head_run, "sentiment", tmp_path)
    with pytest.raises(InvalidParameterError, match="serves"):
        install(compact_head_run, "sentiment", tmp_path)


def test_install_states_the_size_of_what_ships(tmp_path, sentiment_lora_run):
    """A LoRA run folder also holds its tokenizer's files, which are not shipped: the installed card
    and run file give the size of the files that are."""
    from assistant.runs import model_bytes

    target = install(sentiment_lora_run, "sentiment", tmp_path)
    assert not (target / "tokenizer.json").exists() and (sentiment_lora_run / "tokenizer.json").is_file()
    shipped = model_bytes(target)
    recorded = json.loads((target / "finassist-run.json").read_text())["size_bytes"]
    assert recorded == shipped < model_bytes(sentiment_lora_run)
    assert f"- size: {shipped / 1e6:.2f} MB" in (target / "README.md").read_text()
    assert "license: \"cc-by-nc-sa-3.0\"" in (target / "README.md").read_text()
