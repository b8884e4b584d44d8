"""Generation on an upstream OpenAI-compatible server (vLLM, TGI, another finassist).

With ``Engine(upstream=URL)`` every chat completion — the chat endpoint, the
summaries, the UI's chat — is sent to ``URL/chat/completions`` instead of the
local generator, so the task logic, guardrails and front doors of this service
run on top of a bigger cluster. The local generator's tokenizer still counts
tokens for chunking and limits (an approximation when the upstream model uses
another tokenizer). The upstream server does its own batching; here, each
request is one streaming HTTP call on its own thread, bounded like the local
batcher's queue.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence

from .chat import ChatModel
from .generation import GenerationRequest
from .settings import BatchSettings
from .types import Message, SamplingParams
from .errors import AssistantError, InputTooLongError, InvalidParameterError, ModelNotFoundError, QueueFullError

log = logging.getLogger(__name__)


class UpstreamError(AssistantError):
    """The upstream server failed or could not be reached."""

    http_status = 502


def _raise_for(status: int, body: bytes, url: str) -> None:
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = body[:300].decode("utf-8", "replace")
    text = f"upstream {url} answered {status}: {message}"
    if status == 404:
        raise ModelNotFoundError(text)
    if status == 413:
        raise InputTooLongError(text)
    if status == 429:
        raise QueueFullError(text)
    if 400 <= status < 500:
        raise InvalidParameterError(text)
    raise UpstreamError(text)


class UpstreamClient:
    """A small OpenAI Chat Completions client over httpx: each completion is streamed into its request."""

    def __init__(self, base_url: str, api_key: str | None = None, model: str | None = None, timeout: float = 300.0):
        import httpx

        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0), headers=headers)

    def _body(self, messages: Sequence[Message], params: SamplingParams, stream: bool) -> dict:
        body = {
            "messages": list(messages),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": stream,
        }
        if self.model:
            body["model"] = self.model
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.repetition_penalty != 1.0:
            # Not in OpenAI's API; vLLM's and llama.cpp's servers take it as an extra field (OpenAI ignores it).
            body["repetition_penalty"] = params.repetition_penalty
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def stream_into(self, messages: Sequence[Message], params: SamplingParams, request) -> None:
        """Stream a completion into a ``GenerationRequest`` (pieces, then its result)."""
        import httpx

        url = f"{self.base_url}/chat/completions"
        reason, usage = "length", {}
        try:
            with self._http.stream("POST", url, json=self._body(messages, params, stream=True)) as response:
                if response.status_code != 200:
                    _raise_for(response.status_code, response.read(), url)
                for line in response.iter_lines():
                    if request.cancelled:
                        reason = "cancelled"
                        break
                    if not line.startswith("data: ") or line.strip() == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        request.emit(choice.get("delta", {}).get("content") or "")
                        reason = choice.get("finish_reason") or reason
        except AssistantError as exc:
            request.fail(exc)
            return
        except httpx.ConnectError as exc:
            request.fail(UpstreamError(f"upstream {url} unreachable: {exc}"))
            return
        except (httpx.HTTPError, ValueError) as exc:
            request.fail(UpstreamError(f"upstream {url} failed: {exc}"))
            return
        request.finish(
            reason,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )

    def close(self) -> None:
        self._http.close()


class UpstreamBatcher:
    """The ``GenerationBackend`` over an upstream server: each request streams on its own thread, at
    most ``max_batch_size + max_queue`` in flight (more are refused, as the local batchers refuse)."""

    #: What decodes (``finassist models``).
    name = "upstream OpenAI-compatible server"

    def __init__(self, chat: ChatModel, client: UpstreamClient, settings: BatchSettings | None = None) -> None:
        settings = settings or BatchSettings()
        self.chat = chat
        self.client = client
        self.limit = settings.max_batch_size + settings.max_queue
        self.batch_listeners: list[Callable[[int], None]] = []
        self._in_flight = 0
        self._lock = threading.Lock()

    def submit(self, messages: Sequence[Message], params: SamplingParams, prompt_ids=None,
               deadline_s: float | None = None) -> GenerationRequest:
        """``deadline_s`` is not used: the upstream server queues and refuses on its own."""
        # The local tokenizer checks the window and estimates the prompt's tokens (the upstream counts its own).
        prompt_ids = self.chat.encode(messages, params, prompt_ids)
        request = GenerationRequest(prompt_ids[0], params, ())
        with self._lock:
            if self._in_flight >= self.limit:
                raise QueueFullError(f"the server is busy: {self._in_flight} upstream requests in flight", 1.0)
            self._in_flight += 1
        for listener in self.batch_listeners:
            listener(1)

        def run() -> None:
            try:
                self.client.stream_into(messages, params, request)
            finally:
                with self._lock:
                    self._in_flight -= 1

        threading.Thread(target=run, name=f"finassist-upstream-{request.id}", daemon=True).start()
        return request

    def queue_depth(self) -> int:
        return 0  # nothing waits here: the upstream queues

    def active(self) -> int:
        return self._in_flight

    def close(self) -> None:
        self.client.close()
