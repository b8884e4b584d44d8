"""``GET /v1/models``, ``/healthz`` (200 once the models are loaded and the web UI, where served, is built;
503 before or when loading failed) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from ...schemas import Health, ModelCard, ModelList
from ..service import Service, service_of

router = APIRouter()


@router.get("/v1/models", response_model=ModelList, tags=["models"])
async def list_models(service: Annotated[Service, Depends(service_of)]) -> ModelList:
    """The generator (chat, summarize) and the encoder (classify) this server runs."""
    rows = await service.blocking(service.assistant.models)
    return ModelList(data=[
        ModelCard(id=row["name"], role=row["role"], origin=row["origin"], loaded=row["loaded"]) for row in rows
    ])


@router.get("/healthz", response_model=Health, tags=["operations"], responses={503: {"model": Health}})
async def healthz(service: Annotated[Service, Depends(service_of)]):
    """200 once the models are loaded (and the web UI built, where served); 503 while they load or when loading failed."""
    status, detail = service.health()
    return JSONResponse(Health(status=status, detail=detail).model_dump(), 200 if status == "ok" else 503)


@router.get("/metrics", tags=["operations"], response_class=Response)
async def prometheus_metrics(service: Annotated[Service, Depends(service_of)]) -> Response:
    """Prometheus text format."""
    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)
