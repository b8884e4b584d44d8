"""Settings with one set of defaults: how concurrent chat requests are batched, and the limits the
HTTP service enforces. The engine, the CLI, the server, the web UI and the benchmarks all take
these dataclasses (or read their defaults from here), so a default is written once.

The sampling bounds (temperature, max tokens, ...) live beside ``SamplingParams`` in
``assistant/types.py``; the summary styles and lengths beside the summary task.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .errors import InvalidParameterError

#: Generation backends: "dynamic" (torch, batches over ``generate``, ``assistant/batching.py``),
#: "continuous" (torch, transformers' continuous batching, ``assistant/continuous.py``), "onnx"
#: (ONNX Runtime GenAI with token-level scheduling, CPU, ``assistant/onnx_backend.py``), "auto"
#: (the engine chooses: onnx on a CPU where the model exports, else dynamic; ``Engine._build_backend``).
BATCHING_BACKENDS = ("auto", "dynamic", "continuous", "onnx")

#: Weight precisions of the ONNX backend's export ("int8": greedy output closest to fp32 torch at
#: 5x its speed; "int4": faster, drifts sooner; figures in docs/benchmarks/decode.md).
ONNX_PRECISIONS = ("int8", "int4", "fp32")

#: The largest file a user may hand over (the web UI's uploads, ``read_document``).
MAX_UPLOAD_BYTES = 20_000_000


@dataclass(frozen=True)
class BatchSettings:
    """How the engine serves concurrent chat requests."""

    backend: str = "auto"
    #: Chat requests decoded together.
    max_batch_size: int = 16
    #: Requests that may wait for a place in a batch; more are refused (``QueueFullError``, HTTP 429).
    max_queue: int = 64
    #: How long a lone request waits for others to share its batch.
    max_wait_ms: float = 5.0
    #: The ONNX backend's weight precision.
    onnx_precision: str = "int8"

    def __post_init__(self) -> None:
        if self.backend not in BATCHING_BACKENDS:
            raise InvalidParameterError(
                f"unknown generation backend {self.backend!r}: {', '.join(BATCHING_BACKENDS)}")
        if self.onnx_precision not in ONNX_PRECISIONS:
            raise InvalidParameterError(
                f"unknown ONNX precision {self.onnx_precision!r}: {', '.join(ONNX_PRECISIONS)}")
        for name in ("max_batch_size", "max_queue"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameterError(f"{name} must be an integer of at least 1, got {value!r}")
        if not self.max_wait_ms >= 0:
            raise InvalidParameterError(f"max_wait_ms must be 0 or more, got {self.max_wait_ms!r}")

    def options(self) -> dict:
        """The settings a batcher takes (all but the backend's name and the export's precision)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("backend", "onnx_precision")}


@dataclass(frozen=True)
class ServiceSettings:
    """Limits of the HTTP service (``finassist serve``, ``create_app``)."""

    #: Larger API request bodies are refused (413).
    max_body_bytes: int = 1_000_000
    #: Largest file the web UI accepts; the UI's other request bodies have the same limit.
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    #: Longest chat prompt accepted, in tokens (None: only the model's context window).
    max_input_tokens: int | None = None
    #: Largest ``max_tokens`` a chat request may ask for, and the cap when it asks for none.
    max_tokens_limit: int = 1024
    #: A request that takes longer is answered 504 (its generation is cancelled).
    request_timeout_s: float = 300.0
    #: Seconds a client has to send a request's headers (from connecting, or from the previous response).
    header_timeout_s: float = 10.0
    #: Seconds a client has to send a request's body, from the end of its headers (then 408).
    body_timeout_s: float = 60.0
    #: Open connections at most; more are closed as they arrive (None: no limit).
    max_connections: int | None = 512

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in ("max_input_tokens", "max_connections"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InvalidParameterError(f"{f.name} must be a positive number, got {value!r}")
