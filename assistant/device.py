"""Device and precision, chosen in one place for every model the assistant loads.

Policy (the benchmark ``finassist bench decode`` is where the CPU choice comes from):

* CUDA: bf16 where the GPU supports it, else fp16 (mixed precision: weights and
  activations in half precision, reductions in fp32 inside the kernels), SDPA
  attention.
* CPU: fp32. bf16 decodes faster on CPUs with bf16 instructions, but its greedy output
  diverges from fp32 within a few dozen tokens (figures: docs/benchmarks/decode.md), and the
  policy is "fastest with equal greedy output".

``device``/``dtype`` arguments (``Assistant(device=..., dtype=...)``, ``--device``,
``--dtype``) override the policy. ``dtype="int8"`` (CPU only) loads in fp32 and then
quantises the generator's linear layers to int8 with torch's own dynamic quantisation
(int8 weights, activations quantised per batch at run time): faster decoding where
the CPU has fast int8 kernels, but greedy output differs from fp32 from the first
tokens (``finassist bench decode --dtypes float32,int8`` measures both), so it is
never chosen by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import DeviceError

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


@dataclass(frozen=True)
class Runtime:
    """Where and in which precision a model runs."""

    device: torch.device
    dtype: torch.dtype
    attn_implementation: str = "sdpa"
    #: "int8": linear layers of the generator quantised after loading (``dtype`` is then the
    #: precision of everything else, float32).
    quantization: str | None = None

    @property
    def dtype_name(self) -> str:
        return self.quantization or str(self.dtype).removeprefix("torch.")

    def describe(self) -> str:
        name = str(self.device)
        if self.device.type == "cuda":
            name += f" ({torch.cuda.get_device_name(self.device)})"
        return f"{name}, {self.dtype_name}, attention={self.attn_implementation}"


#: Precisions that are a quantisation applied after loading, not a torch dtype to load in.
QUANTIZED = ("int8",)


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key == "auto":
        return None
    if key in QUANTIZED:
        return torch.float32  # loaded in fp32, quantised afterwards (resolve_runtime records it)
    if key not in DTYPES:
        raise DeviceError(f"unknown dtype {dtype!r}; use one of: auto, {', '.join(sorted(DTYPES) + list(QUANTIZED))}")
    return DTYPES[key]


def parse_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {device!r} was asked for but CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    if dev.type not in ("cpu", "cuda"):
        raise DeviceError(f"device type {dev.type!r} is not supported; use cpu or cuda")
    return dev


def default_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def resolve_runtime(device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> Runtime:
    """The one place that turns user overrides (or nothing) into a device and dtype."""
    dev = parse_device(device)
    quantization = str(dtype).lower() if isinstance(dtype, str) and dtype.lower() in QUANTIZED else None
    if quantization and dev.type != "cpu":
        raise DeviceError(f"dtype {quantization} is the CPU's dynamic quantisation; on CUDA use bfloat16 or float16")
    chosen = parse_dtype(dtype) or default_dtype(dev)
    if dev.type == "cuda" and chosen == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise DeviceError("bfloat16 was asked for but this GPU does not support it; use float16")
    if dev.type == "cpu" and chosen == torch.float16:
        raise DeviceError("float16 on CPU is slow and numerically fragile; use float32 or bfloat16")
    return Runtime(device=dev, dtype=chosen, attn_implementation="sdpa", quantization=quantization)


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """int8 dynamic quantisation of a model's linear layers (torch's own: int8 weights, activations
    quantised per batch at run time). CPU only."""
    import warnings

    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
