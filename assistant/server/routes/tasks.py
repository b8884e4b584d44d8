"""The assistant's own tasks: ``POST /v1/ask``, ``/v1/summarize``, ``/v1/classify`` (blocking calls in the
thread pool, within the request timeout)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from ...models import ENCODER, GENERATOR
from ...schemas import (
    AskRequest,
    AskResponse,
    ClassificationResult,
    ClassifyRequest,
    ClassifyResponse,
    SummarizeRequest,
    SummarizeResponse,
)
from ..errors import APIError
from ..service import Service, service_of

router = APIRouter()


@router.post("/v1/ask", response_model=AskResponse, tags=["tasks"])
async def ask(body: AskRequest, service: Annotated[Service, Depends(service_of)]) -> AskResponse:
    """One advisory question, answered as ``finassist ask`` and the web chat answer it."""
    await service.ready(GENERATOR)
    requested = body.max_tokens
    if requested is not None and requested > service.max_tokens_limit:
        raise APIError(400, f"max_tokens is {requested}; this server allows at most {service.max_tokens_limit}",
                       code="max_tokens_too_large", param="max_tokens")
    answer = await service.blocking(service.assistant.ask, body.question, history=body.history_messages(),
                                    user=service.who(body.user), documents=body.documents,
                                    **body.sampling_overrides())
    return AskResponse(model=service.model_name(GENERATOR), **answer.to_dict())

@router.post("/v1/summarize", response_model=SummarizeResponse, tags=["tasks"])
async def summarize(body: SummarizeRequest, service: Annotated[Service, Depends(service_of)]) -> SummarizeResponse:
    """Summarise a text as bullets, a headline or a paragraph, each bullet with the sentences of the text it
    was written from (any length: sentences are scored one by one, or chunked, never cut)."""
    await service.ready(GENERATOR)
    summary = await service.blocking(service.assistant.summarize, body.text, style=body.style, max_words=body.max_words,
                                     method=body.method, user=service.who(None))
    return SummarizeResponse(model=service.model_name(GENERATOR), **summary.to_dict())

@router.post("/v1/classify", response_model=ClassifyResponse, tags=["tasks"])
async def classify(body: ClassifyRequest, service: Annotated[Service, Depends(service_of)]) -> ClassifyResponse:
    """Classification (``sentiment``, ``contract-clause``, ``unfair-tos``, ...) of one text or a batch by
    the fine-tuned classifier serving the task (shipped, or ``--classifier``), or ``zero_shot`` with
    the encoder against the task's label descriptions."""
    fine_tuned = None if body.zero_shot else service.assistant.engine.classifier(body.task)
    if fine_tuned is None:
        await service.ready(ENCODER)
    results = await service.blocking(service.assistant.classify, body.inputs(), task=body.task, threshold=body.threshold,
                                     zero_shot=body.zero_shot)
    results = results if isinstance(results, list) else [results]
    return ClassifyResponse(
        model=fine_tuned.info.path.name if fine_tuned is not None else service.model_name(ENCODER),
        task=body.task,
        results=[ClassificationResult.model_validate(r.to_dict()) for r in results],
    )
