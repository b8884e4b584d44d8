"""Device and precision, chosen in one place for every model the assistant loads.

Policy (the benchmark ``finassist bench decode`` is where the CPU choice comes from):

* CUDA: bf16 where the GPU supports it, else fp16 (mixed precision: weights and
  activations in half precision, reductions in fp32 inside the kernels), SDPA
  attention.
* CPU: fp32. bf16 decodes faster on CPUs with bf16 instructions, but its greedy output
  diverges from fp32 within a few dozen tokens (figures: docs/benchmarks/decode.md), and the
  policy is "fastest with equal greedy output". Fine-tuned classifiers refine this for their
  own tuned encoders (``assistant.classifiers.cpu_precision``): bf16 where the cores have AMX
  tiles (``cpu_has_amx_bf16``: classification scores as fp32 does there), else int8 layers.

``device``/``dtype`` arguments (``Assistant(device=..., dtype=...)``, ``--device``,
``--dtype``) override the policy. ``dtype="int8"`` (CPU only) loads in fp32 and then
quantises the generator's linear layers to int8 with torch's own dynamic quantisation
(int8 weights, activations quantised per batch at run time): faster decoding where
the CPU has fast int8 kernels, but greedy output differs from fp32 from the first
tokens (``finassist bench decode --dtypes float32,int8`` measures both), so it is
never chosen by default.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .lazy import torch

from .errors import DeviceError

#: The precisions a model may load in, by every name they are given, to torch's name.
DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}


@dataclass(frozen=True)
class Runtime:
    """Where and in which precision a model runs. Kept as names (``"cpu"``, ``"cuda:0"``; ``"float32"``)
    so that choosing them needs no torch (``assistant/lazy.py``); ``device`` and ``dtype`` are the torch
    objects, for the code that runs the model."""

    device_name: str
    dtype_key: str
    attn_implementation: str = "sdpa"
    #: "int8": linear layers of the generator quantised after loading (``dtype`` is then the
    #: precision of everything else, float32).
    quantization: str | None = None

    @property
    def device(self) -> torch.device:
        return torch.device(self.device_name)

    @property
    def dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype_key)

    @property
    def device_type(self) -> str:
        """``"cpu"`` or ``"cuda"``."""
        return self.device_name.split(":", 1)[0]

    @property
    def dtype_name(self) -> str:
        return self.quantization or self.dtype_key

    def describe(self) -> str:
        name = self.device_name
        if self.device_type == "cuda":
            name += f" ({torch.cuda.get_device_name(self.device)})"
        return f"{name}, {self.dtype_name}, attention={self.attn_implementation}"


#: Precisions that are a quantisation applied after loading, not a torch dtype to load in.
QUANTIZED = ("int8",)


def parse_dtype(dtype: str | torch.dtype | None) -> str | None:
    """A precision's torch name (``"float32"``), None for "auto" or nothing."""
    if dtype is None:
        return None
    key = str(dtype).lower().removeprefix("torch.")  # a torch.dtype too, by its name: no torch import
    if key == "auto":
        return None
    if key in QUANTIZED:
        return "float32"  # loaded in fp32, quantised afterwards (resolve_runtime records it)
    if key not in DTYPES:
        raise DeviceError(f"unknown dtype {dtype!r}; use one of: auto, {', '.join(sorted(DTYPES) + list(QUANTIZED))}")
    return DTYPES[key]


def cuda_available() -> bool:
    """Whether torch can use a GPU here. A CPU-only torch build says so in its version (``+cpu``), which is
    read without importing torch (a second of every start on the CPU path); otherwise torch is asked."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        if version("torch").endswith("+cpu"):
            return False
    except PackageNotFoundError:  # a torch not installed as a distribution (built from source): ask it
        pass
    return torch.cuda.is_available()


def parse_device(device: str | torch.device | None) -> str:
    """A device's name (``"cpu"``, ``"cuda"``, ``"cuda:1"``), checked against this machine."""
    if device is None or str(device) == "auto":
        return "cuda" if cuda_available() else "cpu"
    if str(device) == "cpu":
        return "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not cuda_available():
        raise DeviceError(f"device {device!r} was asked for but CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    if dev.type not in ("cpu", "cuda"):
        raise DeviceError(f"device type {dev.type!r} is not supported; use cpu or cuda")
    return str(dev)


def default_dtype(device_name: str) -> str:
    if device_name.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def resolve_runtime(device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> Runtime:
    """The one place that turns user overrides (or nothing) into a device and dtype."""
    dev = parse_device(device)
    on_cuda = dev.startswith("cuda")
    quantization = str(dtype).lower() if isinstance(dtype, str) and dtype.lower() in QUANTIZED else None
    if quantization and on_cuda:
        raise DeviceError(f"dtype {quantization} is the CPU's dynamic quantisation; on CUDA use bfloat16 or float16")
    chosen = parse_dtype(dtype) or default_dtype(dev)
    if on_cuda and chosen == "bfloat16" and not torch.cuda.is_bf16_supported():
        raise DeviceError("bfloat16 was asked for but this GPU does not support it; use float16")
    if not on_cuda and chosen == "float16":
        raise DeviceError("float16 on CPU is slow and numerically fragile; use float32 or bfloat16")
    return Runtime(device_name=dev, dtype_key=chosen, attn_implementation="sdpa", quantization=quantization)


@functools.cache  # the CPU does not change while the process runs; /proc/cpuinfo is read once
def cpu_has_amx_bf16() -> bool:
    """Whether this CPU's cores have AMX tiles for bfloat16 (Intel Sapphire Rapids and later): there
    torch's bfloat16 matrix products run on the tiles, faster than int8 dynamic quantisation and as
    accurate as float32 for the encoders measured (docs/results.md, "Shipped classifiers", the seventh
    session of 2026-12-07)."""
    from .machine import cpu_flags

    return "amx_bf16" in cpu_flags()


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """int8 dynamic quantisation of a model's linear layers (torch's own: int8 weights, activations
    quantised per batch at run time). CPU only."""
    import warnings

    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
