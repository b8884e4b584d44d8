"""Device and dtype policy (assistant/device.py), and that the engine loads models with it."""

from __future__ import annotations

import pytest
import torch

from assistant.device import Runtime, parse_dtype, resolve_runtime
from assistant.engine import Engine
from assistant.errors import AssistantError, DeviceError

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_cpu_defaults_to_float32_and_sdpa():
    rt = resolve_runtime("cpu")
    assert rt.device == torch.device("cpu")
    assert rt.dtype is torch.float32
    assert rt.dtype_name == "float32"
    assert rt.attn_implementation == "sdpa"
    assert rt.describe() == "cpu, float32, attention=sdpa"


@pytest.mark.parametrize("device", [None, "auto"])
def test_auto_device_follows_cuda_availability(device):
    rt = resolve_runtime(device)
    assert rt.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if rt.device.type == "cpu":
        assert rt.dtype is torch.float32


@pytest.mark.parametrize("dtype", ["bf16", "bfloat16", "BFloat16", "torch.bfloat16", torch.bfloat16])
def test_explicit_bfloat16_is_accepted_on_cpu(dtype):
    assert resolve_runtime("cpu", dtype).dtype is torch.bfloat16


@pytest.mark.parametrize("dtype", ["fp32", "float32", "auto", None, torch.float32])
def test_float32_and_auto_on_cpu(dtype):
    assert resolve_runtime("cpu", dtype).dtype is torch.float32


@pytest.mark.parametrize("dtype", ["fp16", "float16", torch.float16])
def test_float16_on_cpu_is_refused(dtype):
    with pytest.raises(DeviceError, match="float16"):
        resolve_runtime("cpu", dtype)


@pytest.mark.parametrize("dtype", ["float64", "int4", "half-ish", ""])
def test_unknown_dtype_is_a_device_error_listing_the_choices(dtype):
    with pytest.raises(DeviceError) as info:
        parse_dtype(dtype)
    assert "bfloat16" in str(info.value) and "float32" in str(info.value)


@pytest.mark.parametrize("device", ["tpu", "banana", "cuda:x", "meta"])
def test_unknown_or_unsupported_device_is_a_device_error(device):
    with pytest.raises(DeviceError):
        resolve_runtime(device)


@no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_cuda_is_a_device_error(device):
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_runtime(device)


@no_cuda
def test_engine_refuses_cuda_at_construction_without_loading_anything(tiny_gpt2_dir):
    with pytest.raises(DeviceError):
        Engine(generator=tiny_gpt2_dir, device="cuda")


@no_cuda
def test_choosing_the_cpu_runtime_does_not_import_torch():
    # The ONNX path decides with the runtime's names; torch is imported by what runs a torch model.
    import subprocess
    import sys

    code = ("import sys; from assistant.device import resolve_runtime; r = resolve_runtime(None); "
            "from assistant.lazy import torch; "
            "print(r.device_type, r.dtype_name, torch.imported, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["cpu", "float32", "False", "False"]


def test_device_errors_are_user_errors():
    assert issubclass(DeviceError, AssistantError)


def test_engine_refuses_fp16_on_cpu(tiny_gpt2_dir):
    with pytest.raises(DeviceError):
        Engine(generator=tiny_gpt2_dir, device="cpu", dtype="fp16")


def test_engine_loads_in_the_resolved_dtype(tiny_gpt2_dir, tiny_bert_dir):
    engine = Engine(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu", dtype="bf16")
    assert engine.runtime == Runtime("cpu", "bfloat16")
    gen = engine.generator
    assert {p.dtype for p in gen.model.parameters()} == {torch.bfloat16}
    assert gen.runtime.dtype is torch.bfloat16
    emb = engine.encode(["Net sales rose 5 %."])
    assert emb.dtype is torch.float32  # embeddings come back as float32 whatever the model dtype
    assert torch.allclose(emb.norm(dim=-1), torch.ones(1), atol=1e-3)


def test_engine_default_on_cpu_loads_float32(tiny_engine):
    if tiny_engine.runtime.device.type != "cpu":
        pytest.skip("the shared tiny engine is pinned to CPU")
    assert {p.dtype for p in tiny_engine.generator.model.parameters()} == {torch.float32}


@pytest.mark.gpu
@needs_cuda
def test_cuda_policy_prefers_bfloat16_where_supported():
    rt = resolve_runtime("cuda")
    assert rt.device.type == "cuda"
    assert rt.dtype is (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


@pytest.mark.gpu
@needs_cuda
def test_cuda_index_beyond_the_gpus_is_a_device_error():
    with pytest.raises(DeviceError, match="does not exist"):
        resolve_runtime(f"cuda:{torch.cuda.device_count()}")


def test_int8_is_a_cpu_quantisation_loaded_from_fp32():
    runtime = resolve_runtime("cpu", "int8")
    assert runtime.dtype == torch.float32 and runtime.quantization == "int8" and runtime.dtype_name == "int8"
    assert resolve_runtime("cpu", "float32").quantization is None


def test_int8_generator_has_quantised_linear_layers_and_generates(tiny_smollm2_dir):
    from assistant.engine import Engine
    from assistant.types import SamplingParams

    engine = Engine(generator=tiny_smollm2_dir, device="cpu", dtype="int8")
    model = engine.generator.model
    quantised = [m for m in model.modules() if "quantized" in type(m).__module__]
    assert quantised, {type(m).__name__ for m in model.modules()}
    assert not any(type(m) is torch.nn.Linear for m in model.modules()), "a linear layer was left in fp32"
    out = engine.generate([{"role": "user", "content": "Revenue rose."}], SamplingParams(max_new_tokens=5))
    assert out.completion_tokens == 5 or out.finish_reason == "stop"
    assert engine.describe()[0]["dtype"] == "int8"
