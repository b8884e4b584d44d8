"""Fine-tuned classifiers: a run directory (``finassist finetune classify``) as a model the
classify task can use instead of zero-shot label descriptions.

Four kinds of run, one interface (``predict_scores`` → probabilities, one column per label):

* ``classifier``: a fully fine-tuned encoder with a classification head, saved with
  ``save_pretrained`` (loads with ``AutoModelForSequenceClassification``);
* ``classifier-lora``: LoRA adapters and a classification head (peft) over a base encoder the
  run names; merged into the base weights when loaded, so prediction costs what a plain model does;
* ``classifier-head``: an encoder (copied into ``encoder/``; or named by the run and shared with
  the engine's own encoder; or named and adapted for the task by the run's LoRA adapter,
  ``adapter_model.safetensors``, from ``finassist finetune classify --head-only --encoder-epochs``)
  whose sentence embeddings (``SentenceEncoder.encode``, the same pooling as zero-shot) feed a
  linear head (``head.safetensors``);
  optionally with TF-IDF text features beside them: words and bigrams (``words.json``) and
  character 3-5-grams (``chars.json``), each stored as vocabulary and IDF (data, not pickled
  objects). Legal clause types need them: their wording is formulaic ("arbitration",
  "governing law"), and character n-grams also catch inflections and defined terms;
* ``classifier-ensemble``: runs of the kinds above in its subfolders (``finassist finetune
  ensemble``), whose probabilities are averaged with the shares its run file gives (chosen on
  validation data): models that err differently, such as a LoRA-tuned encoder and a head over
  another adapted encoder, correct each other.

Texts longer than the window are not truncated: they are cut into overlapping windows,
aggregated as in training (mean of logits for single-label, max of probabilities for
multi-label: a clause anywhere in a long text counts).

Runs that store no copy of their base model record its fingerprint; loading them checks it, so
a different model behind the same name is an error, not silently wrong answers. On a CPU the
fine-tuned encoders (``classifier``, ``classifier-lora``) run with int8 linear layers
(``INT8_ON_CPU``) and texts are batched by length, so little time goes to padding.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .lazy import torch

from .device import Runtime, cpu_has_amx_bf16, quantize_int8, resolve_runtime
from .encoder import SentenceEncoder
from .errors import ModelLoadError, ModelNotFoundError
from .runs import ADAPTER_FILE, ENSEMBLE, RunInfo, read_run
from . import shipped

log = logging.getLogger(__name__)

HEAD_FILE = "head.safetensors"
#: A fine-tuned (LoRA or full) run's TF-IDF text head, whose probabilities are mixed with the model's
#: (``RunInfo.text_mix``, ``finetune.text_mix``): a bias and one weight tensor per text feature.
TEXT_HEAD_FILE = "text_head.safetensors"
ENCODER_DIR = "encoder"
#: Fine-tuned encoders on a CPU run with int8 linear layers (torch dynamic quantisation): faster, at
#: a quality cost ``finassist eval classify --no-int8`` measures (figures: docs/results.md).
INT8_ON_CPU = True
#: On a CPU with AMX-BF16 tiles a classifier's fine-tuned encoders (its LoRA or fully tuned model, a head
#: run's adapted encoder) run in bfloat16 instead of int8 or float32 (a frozen encoder stays as asked, so
#: its embeddings are the engine's): measured there, 1.5-1.8x int8's speed and 2.8x float32's, with
#: float32's accuracy (docs/results.md, the seventh session of 2026-12-07). Other CPUs lack such units.
BF16_ON_AMX = True
WORDS_FILE = "words.json"
#: How word features are computed (scikit-learn ``TfidfVectorizer`` arguments), shared by training
#: and prediction. Sublinear TF and L2-normalised rows put them on the embeddings' scale.
WORD_FEATURE_SETTINGS = {"ngram_range": [1, 2], "min_df": 2, "max_features": 50000, "sublinear_tf": True,
                         "strip_accents": "unicode", "lowercase": True}
#: Character 3-5-grams inside word boundaries: "terminat" matches terminate, termination, terminating.
CHAR_FEATURE_SETTINGS = {"analyzer": "char_wb", "ngram_range": [3, 5], "min_df": 3, "max_features": 100000,
                         "sublinear_tf": True, "lowercase": True}


def cpu_precision(runtime: Runtime, int8: bool | None) -> tuple[Runtime, bool]:
    """(the runtime a classifier's own models load on, whether its fine-tuned encoders get int8 linear
    layers). ``int8`` None: the CPU's fast path when ``runtime`` is the CPU in float32 (bfloat16 on AMX
    tiles, else int8); True or False: int8 or the runtime's own precision, as asked."""
    cpu_float32 = runtime.device_type == "cpu" and runtime.dtype_key == "float32"
    if int8 is not None:
        return runtime, bool(int8)
    if cpu_float32 and BF16_ON_AMX and cpu_has_amx_bf16():
        from dataclasses import replace

        return replace(runtime, dtype_key="bfloat16"), False
    return runtime, INT8_ON_CPU and cpu_float32


@dataclass(frozen=True)
class TextFeature:
    """One kind of TF-IDF input a head run may read beside the embeddings."""

    name: str
    #: The vectorizer's state (settings, vocabulary, IDF) in the run directory.
    file: str
    #: Its columns of the head in ``head.safetensors``: (n_labels, vocabulary).
    tensor: str
    settings: dict
    description: str


#: The text features, in the order their columns follow the embedding columns.
TEXT_FEATURES = {
    "words": TextFeature("words", WORDS_FILE, "word_weight", WORD_FEATURE_SETTINGS, "TF-IDF words and bigrams"),
    "chars": TextFeature("chars", "chars.json", "char_weight", CHAR_FEATURE_SETTINGS, "character 3-5-grams"),
}


def word_vectorizer(settings: dict | None = None, vocabulary: Sequence[str] | None = None, idf=None):
    """A ``TfidfVectorizer`` with the given settings (default: the word features): unfitted
    (training), or rebuilt from a saved vocabulary and IDF (prediction), giving the same features
    as the fitted one."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    settings = dict(settings or WORD_FEATURE_SETTINGS)
    settings["ngram_range"] = tuple(settings["ngram_range"])
    if vocabulary is None:
        return TfidfVectorizer(dtype=np.float32, **settings)
    for fitting_only in ("min_df", "max_features"):  # they chose the vocabulary, which is given here
        settings.pop(fitting_only, None)
    vectorizer = TfidfVectorizer(dtype=np.float32, vocabulary=list(vocabulary), **settings)
    vectorizer.idf_ = np.asarray(idf, dtype=np.float64)
    return vectorizer


def word_vectorizer_state(vectorizer, settings: dict | None = None) -> dict:
    """What ``word_vectorizer`` needs to rebuild a vectorizer fitted with ``settings`` (default:
    the word features), as JSON-able data."""
    order = sorted(vectorizer.vocabulary_.items(), key=lambda item: item[1])
    return {"settings": dict(settings or WORD_FEATURE_SETTINGS), "vocabulary": [term for term, _ in order],
            "idf": vectorizer.idf_.tolist()}


def chosen_labels(scores, cut, min_labels: int = 0):
    """The multi-label decision, shared by the engine and evaluation: a boolean mask (n, labels)
    of each text's ``min_labels`` best-scoring labels and every other label whose score reaches
    its threshold in ``cut``. For data where every text has a label (contract clauses), the best
    label is always one of them; the thresholds decide only the labels beside it."""
    import numpy as np

    scores = np.asarray(scores, dtype=float)
    hits = scores >= np.asarray(cut, dtype=float)[None, :]
    if min_labels > 0 and scores.size:
        best = np.argsort(-scores, axis=1, kind="stable")[:, :min_labels]
        hits[np.arange(len(scores))[:, None], best] = True
    return hits


def aggregate_windows(logits: torch.Tensor, owner: torch.Tensor, n: int, multi_label: bool) -> torch.Tensor:
    """Per-text probabilities from per-window logits: softmax of the mean logit (single-label),
    max of the sigmoid over windows (multi-label). ``owner[i]``: the text of window ``i``."""
    logits = logits.float()
    owner = owner.long()
    if multi_label:
        probs = torch.sigmoid(logits)
        index = owner.unsqueeze(1).expand_as(probs)
        out = torch.zeros(n, logits.shape[1]).scatter_reduce_(0, index, probs, reduce="amax", include_self=False)
        return out
    sums = torch.zeros(n, logits.shape[1]).index_add_(0, owner, logits)
    counts = torch.bincount(owner, minlength=n).clamp(min=1).unsqueeze(1)
    return torch.softmax(sums / counts, dim=-1)


def _check_safetensors(path: Path, missing: str) -> None:
    """A weights file that is there and whole (readable header and tensors), else ModelLoadError naming it."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise ModelLoadError(f"{path} is missing: {missing}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            for name in fh.keys():
                fh.get_slice(name)[:]  # reads the bytes: a truncated file fails here
    except (OSError, SafetensorError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(f"{path} cannot be read: {exc}") from exc


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a head's safetensors file as float32 (stored fp16 or fp32); an unreadable file
    is a ``ModelLoadError`` naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return {name: t.float() for name, t in load_file(str(path)).items()}
    except (OSError, SafetensorError) as exc:
        raise ModelLoadError(f"{path} cannot be read: {exc}") from exc


def _text_logits(features: Sequence[tuple[TextFeature, object, object]], texts: list[str]) -> torch.Tensor | float:
    """The logits a head's TF-IDF text features add, (len(texts), labels); 0.0 with none."""
    logits = 0.0
    for _, vectorizer, weight in features:
        logits = logits + torch.from_numpy(vectorizer.transform(texts) @ weight.T)
    return logits


def window_settings(info: RunInfo, context_window: int) -> tuple[int, int]:
    """(max_length, stride) the run was trained with, fitted to the model's positions."""
    max_length = int(info.config.get("max_length") or 512)
    max_length = min(max_length, context_window)
    stride = int(info.config.get("stride") or max_length // 4)
    return max_length, min(stride, max_length // 2)


class FineTunedClassifier:
    """A classifier run, loaded lazily (on the first prediction) on the given runtime."""

    def __init__(
        self,
        run: str | Path | RunInfo,
        runtime: Runtime | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        shared_encoder: SentenceEncoder | None = None,
        int8: bool | None = None,
    ) -> None:
        """``shared_encoder``: an engine whose encoder a head run uses when the run's base model
        resolves to that engine's encoder (the same directory; the fingerprint is checked before),
        so several tasks embed a text once. ``int8``: int8 linear layers for fine-tuned encoders
        (default: the CPU's fast path, ``cpu_precision``: bfloat16 on AMX tiles, else int8)."""
        self.info = run if isinstance(run, RunInfo) else read_run(run)
        if not self.info.is_classifier:
            raise ModelLoadError(f"{self.info.path} is a {self.info.kind} run, not a classifier")
        # the runtime asked for; ``runtime`` is the one the models load on (``cpu_precision``)
        self._requested_runtime = runtime or resolve_runtime(device, dtype)
        self._shared_encoder = shared_encoder
        # An ensemble's runs, each loaded as a classifier of its own, choosing its precision the same way
        self._members = [(FineTunedClassifier(m.info, runtime=self._requested_runtime, shared_encoder=shared_encoder,
                                              int8=int8), m.share) for m in self.info.members]
        self.int8 = int8
        self._lock = threading.Lock()
        self._loaded = False
        self._model = None
        self._tokenizer = None
        self._sentence_encoder: SentenceEncoder | None = None
        self._head: tuple[torch.Tensor, torch.Tensor] | None = None
        # (feature, vectorizer, weight (n_labels, vocabulary)) per text feature the head reads
        self._text_features: list[tuple[TextFeature, object, object]] = []
        # A fine-tuned run's text head: (bias, text features as above), mixed in at ``info.text_mix``
        self._text_mix: tuple[torch.Tensor, list[tuple[TextFeature, object, object]]] | None = None
        self.load_seconds: float | None = None

    # ---------------------------------------------------------------- metadata

    @property
    def task(self) -> str:
        return self.info.task

    @property
    def labels(self) -> list[str]:
        return list(self.info.labels)

    @property
    def multi_label(self) -> bool:
        return self.info.multi_label

    @property
    def thresholds(self) -> dict[str, float]:
        """Per-label decision thresholds (multi-label; 0.5 where the run has none)."""
        return {label: float(self.info.thresholds.get(label, 0.5)) for label in self.labels}

    @property
    def min_labels(self) -> int:
        """Multi-label: the fewest labels a prediction has (0: only those over their thresholds)."""
        return self.info.min_labels if self.multi_label else 0

    @property
    def path(self) -> Path:
        return self.info.path

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def _own_encoder_tuned(self) -> bool:
        """Whether the run's own model is a tuned encoder (fully, by LoRA, or adapted under a head), or an
        ensemble of such: what the CPU's fast path applies to."""
        if self.info.kind == "classifier-head":
            return self.info.encoder_adapted
        if self._members:
            return any(member._own_encoder_tuned for member, _ in self._members)
        return True

    @property
    def int8(self) -> bool:
        """Whether the fine-tuned encoders run with int8 linear layers (a head run's encoder never does;
        an ensemble: whether any of its members does). Set before the first prediction loads the model."""
        if self._members:
            return any(member.int8 for member, _ in self._members)
        return self._int8

    @int8.setter
    def int8(self, value: bool | None) -> None:
        """True or False: int8 or the asked-for runtime's precision; None: the CPU's fast path."""
        self.runtime, int8 = cpu_precision(self._requested_runtime, value)
        if not self._own_encoder_tuned:  # a frozen encoder embeds as the engine's does
            self.runtime = self._requested_runtime
        self._int8 = int8 and self.info.kind not in ("classifier-head", ENSEMBLE)
        for member, _ in self._members:
            member.int8 = value

    # ------------------------------------------------------------------ loading

    def load(self) -> FineTunedClassifier:
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    started = time.perf_counter()
                    if self._members:
                        for member, _ in self._members:
                            member.load()
                    elif self.info.kind == "classifier-head":
                        self._load_head()
                    else:
                        self._load_full()
                        if self.info.text_mix > 0:
                            self._load_text_mix()
                    self.load_seconds = time.perf_counter() - started
                    self._loaded = True
                    log.info("loaded %s classifier %s in %.1fs", self.task, self.path, self.load_seconds)
        return self

    def _base(self):
        """The base model a run that stores no copy of it names, resolved and checked against the
        fingerprint recorded at training time."""
        from .models import ENCODER, resolve_model, weights_fingerprint

        try:
            resolved = resolve_model(self.info.base_model, ENCODER)
        except ModelNotFoundError as exc:
            raise ModelLoadError(f"{self.path} needs its base model {self.info.base_model!r}: {exc}") from exc
        expected = self.info.base_fingerprint
        if expected:
            found = weights_fingerprint(resolved)
            if found is not None and found != expected:
                raise ModelLoadError(
                    f"{self.path} was trained on other weights than those of {self.info.base_model!r} at "
                    f"{resolved.location} (fingerprint {found}, expected {expected}): install the base model it "
                    "names, or retrain the run on this one"
                )
        return resolved

    def _load_full(self) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        lora = self.info.kind == "classifier-lora"
        if lora:
            _check_safetensors(self.path / ADAPTER_FILE, "the LoRA run is incomplete")
        base = self._base() if lora else None
        # A second-long load: its progress bar would only be noise in the CLI's output (as in the engine).
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        # A LoRA run's head comes with its adapter, so the base encoder's load report ("classifier.weight
        # MISSING ... newly initialized ... consider training") is wrong here and would alarm a user.
        verbosity = hf_logging.get_verbosity()
        if lora:
            hf_logging.set_verbosity_error()
        try:
            if lora:
                from peft import PeftModel

                has_tokenizer = (self.path / "tokenizer_config.json").is_file()
                tokenizer = AutoTokenizer.from_pretrained(self.path if has_tokenizer else base.location,
                                                          local_files_only=base.local_files_only)
                model = AutoModelForSequenceClassification.from_pretrained(
                    base.location, local_files_only=base.local_files_only, dtype=torch.float32,
                    num_labels=len(self.labels), id2label=dict(enumerate(self.labels)),
                    label2id={label: i for i, label in enumerate(self.labels)},
                )
                # Merged once here: prediction then runs a plain model, no adapter overhead. peft asks
                # transformers a deprecated question while loading (a FutureWarning meant for peft's authors).
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
                    model = PeftModel.from_pretrained(model, self.path).merge_and_unload().to(self.runtime.dtype)
            else:
                tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
                model = AutoModelForSequenceClassification.from_pretrained(
                    self.path, local_files_only=True, dtype=self.runtime.dtype
                )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            # safetensors and peft report a truncated or mismatched file as one of these
            raise ModelLoadError(f"could not load the fine-tuned classifier in {self.path}: {exc}") from exc
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        if model.config.num_labels != len(self.labels):
            raise ModelLoadError(
                f"{self.path}: the model has {model.config.num_labels} outputs but the run file names "
                f"{len(self.labels)} labels"
            )
        model = model.to(self.runtime.device).eval()
        self._model = quantize_int8(model) if self.int8 else model
        self._tokenizer = tokenizer

    def _load_head(self) -> None:
        head_file, encoder_dir = self.path / HEAD_FILE, self.path / ENCODER_DIR
        compact = self.info.base_fingerprint is not None and not encoder_dir.is_dir()
        if not head_file.is_file():
            raise ModelLoadError(f"{head_file} is missing: a head run keeps its weights there")
        if not (compact or (encoder_dir / "config.json").is_file()):
            raise ModelLoadError(f"{self.path} is incomplete: a head run needs its encoder in {ENCODER_DIR}/ "
                                 "(or a base model and its fingerprint in its run file)")
        tensors = _read_weights(head_file)
        weight, bias = tensors.get("weight"), tensors.get("bias")
        if weight is None or bias is None or weight.shape[0] != len(self.labels) or bias.shape != (len(self.labels),):
            raise ModelLoadError(f"{head_file}: expected weight ({len(self.labels)}, dim) and bias ({len(self.labels)},)")
        # A run trained with --encoder-epochs records it: its adapter missing would silently give the
        # frozen encoder's embeddings, which its head was not fitted on.
        adapted = self.info.encoder_adapted
        if adapted and not (self.path / ADAPTER_FILE).is_file():
            raise ModelLoadError(f"{self.path / ADAPTER_FILE} is missing: the run's head was fitted on the embeddings "
                                 "of its adapted encoder")
        if adapted and not compact:
            raise ModelLoadError(f"{self.path}: a head run with an encoder adapter ({ADAPTER_FILE}) names its base "
                                 f"model and fingerprint instead of a copy in {ENCODER_DIR}/")
        if adapted:  # its encoder fine-tuned for the task: its own embeddings, never the engine's
            sentence_encoder = SentenceEncoder.from_spec(self._base().location, self.runtime, adapter=self.path)
        elif compact:
            base = self._base()
            shared = self._shared_encoder
            if shared is not None and Path(shared.loaded.resolved.location).resolve() == Path(base.location).resolve():
                sentence_encoder = shared  # the engine's own encoder: texts classified for several tasks embed once
            else:  # the frozen encoder in the precision asked for: the same embeddings as the engine's
                sentence_encoder = SentenceEncoder.from_spec(base.location, self._requested_runtime)
        else:
            sentence_encoder = SentenceEncoder.from_spec(str(encoder_dir), self._requested_runtime)
        encoder = sentence_encoder.loaded  # loads now, so a broken encoder fails here with ModelLoadError
        if encoder.model.config.hidden_size != weight.shape[1]:
            raise ModelLoadError(
                f"{self.path}: the head expects {weight.shape[1]}-dim embeddings, the encoder gives "
                f"{encoder.model.config.hidden_size}"
            )
        self._text_features = self._load_text_features(tensors, head_file)
        self._sentence_encoder = sentence_encoder
        self._head = (weight.float(), bias.float())

    def _load_text_mix(self) -> None:
        text_head = self.path / TEXT_HEAD_FILE
        if not text_head.is_file():
            raise ModelLoadError(f"{text_head} is missing: the run file mixes a text head into its scores "
                                 f"(text_mix {self.info.text_mix:g})")
        tensors = _read_weights(text_head)
        bias = tensors.get("bias")
        features = self._load_text_features(tensors, text_head)
        if bias is None or bias.shape != (len(self.labels),) or not features:
            raise ModelLoadError(f"{text_head}: expected a bias ({len(self.labels)},) and the weights of at least "
                                 f"one text feature ({', '.join(f.tensor for f in TEXT_FEATURES.values())})")
        self._text_mix = (bias, features)

    def _load_text_features(self, tensors: dict, weights_file: Path) -> list[tuple[TextFeature, object, object]]:
        # A feature is in use when its state file or its weights are there; one without the other is a
        # damaged run (dropping the feature would silently change every score).
        return [(f, *self._load_text_feature(f, tensors.get(f.tensor), weights_file))
                for f in TEXT_FEATURES.values() if (self.path / f.file).is_file() or f.tensor in tensors]

    def _load_text_feature(self, feature: TextFeature, weight: torch.Tensor | None, weights_file: Path):
        import json

        state_file = self.path / feature.file
        if not state_file.is_file():
            raise ModelLoadError(f"{state_file} is missing: {weights_file} has {feature.tensor} for it")
        try:
            state = json.loads(state_file.read_text())
            vectorizer = word_vectorizer(state["settings"], state["vocabulary"], state["idf"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{state_file} cannot be read: {exc}") from exc
        shape = (len(self.labels), len(state["vocabulary"]))
        if weight is None or tuple(weight.shape) != shape:
            raise ModelLoadError(f"{weights_file}: expected {feature.tensor} {shape} for {feature.file}")
        return vectorizer, weight.float().numpy()

    # --------------------------------------------------------------- prediction

    @property
    def sentence_encoder(self) -> SentenceEncoder | None:
        """The encoder a head run embeds with (None for fine-tuned encoders); loads the run."""
        self.load()
        return self._sentence_encoder

    def predict_scores(self, texts: Sequence[str], batch_size: int = 32,
                       embeddings: torch.Tensor | None = None) -> torch.Tensor:
        """Probabilities, shape (len(texts), len(labels)), in ``labels`` order (float32, CPU).
        ``embeddings``: a head run's sentence embeddings of ``texts``, already computed by its
        ``sentence_encoder`` (one pass shared by several tasks)."""
        with torch.inference_mode():  # (not a decorator: that would import torch with this module)
            return self._predict_scores(texts, batch_size, embeddings)

    def _predict_scores(self, texts: Sequence[str], batch_size: int, embeddings: torch.Tensor | None) -> torch.Tensor:
        self.load()
        texts = list(texts)
        if not texts:
            return torch.empty(0, len(self.labels))
        if self._members:  # each member embeds the texts itself (an adapted encoder's embeddings are its own)
            return sum(share * member._predict_scores(texts, batch_size, None) for member, share in self._members)
        if self._head is not None:
            weight, bias = self._head
            if embeddings is None:
                embeddings = self._sentence_encoder.encode(texts, batch_size=batch_size)
            logits = embeddings @ weight.T + bias + _text_logits(self._text_features, texts)
            return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
        # Batches of similar length (shortest first): padding, not text, is most of the work otherwise.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        scores = torch.cat([self._predict_full([texts[i] for i in order[s : s + batch_size]], batch_size)
                            for s in range(0, len(order), batch_size)])
        out = torch.empty_like(scores)
        out[torch.tensor(order)] = scores
        if self._text_mix is not None:
            bias, features = self._text_mix
            mix = self.info.text_mix
            out = (1 - mix) * out + mix * torch.softmax(bias + _text_logits(features, texts), dim=-1)
        return out

    def _predict_full(self, batch: list[str], batch_size: int) -> torch.Tensor:
        model, tok = self._model, self._tokenizer
        positions = getattr(model.config, "max_position_embeddings", 512)
        max_length, stride = window_settings(self.info, positions)
        features = tok(batch, truncation=True, max_length=max_length, stride=stride,
                       return_overflowing_tokens=True, padding=True, return_tensors="pt")
        owner = features.pop("overflow_to_sample_mapping")
        inputs = {k: v for k, v in features.items() if k in tok.model_input_names}
        logits = []
        # A long text makes many windows: run them in slices of batch_size, not all at once.
        for start in range(0, len(owner), batch_size):
            part = {k: v[start : start + batch_size].to(self.runtime.device) for k, v in inputs.items()}
            logits.append(model(**part).logits.float().cpu())
        return aggregate_windows(torch.cat(logits), owner, len(batch), self.multi_label)

    def _architecture(self) -> str:
        if self._members:
            return "average of " + "; ".join(f"{share:.0%} {member._architecture()} ({member.path.name})"
                                             for member, share in self._members)
        if self.info.kind != "classifier-head":
            kind = "LoRA-adapted sequence classification" if self.info.kind == "classifier-lora" else \
                "sequence classification"
            kind += " (int8 linear layers)" if self.int8 else ""
            if self.info.text_mix > 0:
                read = " and ".join(self._text_descriptions())
                kind += f", mixed with a linear head over {read} ({self.info.text_mix:.0%})"
            return kind
        embeddings = "sentence embeddings of a LoRA-adapted encoder" if self.info.encoder_adapted \
            else "sentence embeddings"
        return " and ".join([f"linear head over {embeddings}", *self._text_descriptions()])

    def _text_descriptions(self) -> list[str]:
        """What the run's text features are (those whose vocabulary it holds)."""
        return [f.description for f in TEXT_FEATURES.values() if (self.path / f.file).is_file()]

    def describe(self) -> dict:
        """A row for ``Assistant.models()``."""
        return {
            "role": "classifier",
            "name": self.path.name,
            "origin": f"fine-tuned run ({self.info.kind})",
            "location": str(self.path),
            "device": self.runtime.device_name,
            "dtype": self.runtime.dtype_name,
            "attention": self.runtime.attn_implementation,
            "architecture": self._architecture(),
            "loaded": self._loaded,
            "configured": True,
            "shipped": self.path.resolve().parent == shipped.SHIPPED_DIR,
            **self.info.describe(),
        }
