"""The Prometheus metrics of one app, in a registry of its own (method and route labels from closed sets)."""

from __future__ import annotations


from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


#: Method labels of the request metrics: any other method is counted as "other" (a closed set, so
#: made-up methods cannot add label sets without bound).
METRIC_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# --------------------------------------------------------------------- metrics


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "finassist_http_requests", "HTTP requests by route, method and status code",
            ["route", "method", "status"], registry=r,
        )
        self.latency = Histogram(
            "finassist_http_request_duration_seconds", "Time from request to the last byte of the response",
            ["route"], registry=r, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )
        self.ttft = Histogram(
            "finassist_time_to_first_token_seconds", "Chat completions: time from submission to the first text",
            registry=r, buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.completion_tokens = Counter(
            "finassist_generated_tokens", "Chat completion tokens generated", registry=r
        )
        self.prompt_tokens = Counter("finassist_prompt_tokens", "Chat completion prompt tokens", registry=r)
        self.completions = Counter(
            "finassist_chat_completions", "Finished chat completions by finish reason (cancelled: client gone)",
            ["finish_reason"], registry=r,
        )
        self.batch_size = Histogram(
            "finassist_batch_size", "Requests per batched generate call", registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        )
        self.queue_depth = Gauge("finassist_queue_depth", "Chat requests waiting for a batch", registry=r)
        self.active = Gauge("finassist_active_requests", "Chat requests in the running batch", registry=r)
        self.models_loaded = Gauge("finassist_models_loaded", "1 once the generator and encoder are loaded", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
