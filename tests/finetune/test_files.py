"""Atomic writes (finetune/files.py), which run files, model cards and reports all go through."""

from __future__ import annotations

import os

import pytest

from finetune.files import atomic_write, atomic_write_text


def test_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "new" / "run.json"
    assert atomic_write_text(path, "first\n") == path and path.read_text() == "first\n"
    atomic_write_text(path, "second\n")
    assert path.read_text() == "second\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "report.md"
    atomic_write_text(path, "old\n")

    def half_then_fail(fh):
        fh.write(b"half of a rep")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_the_file_has_the_umasks_permissions(tmp_path):
    """Not tempfile's private 0600: run folders and reports are meant to be shared."""
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "card.md", "x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_store_half_keeps_names_and_values_in_half_the_bytes(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from finetune.files import store_half

    source = tmp_path / "adapter.safetensors"
    tensors = {"lora_A": torch.randn(8, 16), "steps": torch.arange(3)}
    save_file(tensors, str(source))
    half = store_half(source, tmp_path / "half.safetensors")
    stored = load_file(str(half))
    assert stored["lora_A"].dtype == torch.float16 and stored["steps"].dtype == torch.int64
    torch.testing.assert_close(stored["lora_A"].float(), tensors["lora_A"], atol=1e-2, rtol=1e-3)
    assert torch.equal(stored["steps"], tensors["steps"])
    assert half.stat().st_size < source.stat().st_size
    store_half(source)  # in place
    assert load_file(str(source))["lora_A"].dtype == torch.float16
