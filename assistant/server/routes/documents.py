"""The document library that grounds answers: ``POST /v1/documents`` (a file, base64 in JSON: the API
takes JSON only, so a web page cannot post a file to it cross-site), ``GET /v1/documents``,
``DELETE /v1/documents/{id}``. Adding reads and embeds the file: a blocking call, in the thread pool."""

from __future__ import annotations

import base64
import binascii
import tempfile
from pathlib import Path, PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ...library import DocumentInfo
from ...schemas import DocumentAdded, DocumentList, DocumentUpload
from ..errors import APIError
from ..service import Service, service_of

#: The upload route's path (the body limit middleware gives it the upload limit).
UPLOAD_PATH = "/v1/documents"

router = APIRouter()


def _store(service: Service):
    store = service.assistant.documents
    if store is None:
        raise APIError(404, "this server has no document library (FINASSIST_LIBRARY=off)", code="no_library")
    return store


@router.post(UPLOAD_PATH, response_model=DocumentAdded, status_code=201, tags=["documents"],
             responses={200: {"model": DocumentAdded, "description": "the same content was already in the library"}})
async def add_document(body: DocumentUpload, service: Annotated[Service, Depends(service_of)]):
    """Add a file to the library: parsed, cut into passages with their pages, indexed (BM25 and
    embeddings). 201 when added, 200 when the same content was already there."""
    store = _store(service)
    try:
        content = base64.b64decode(body.content_base64, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, "content_base64 is not base64", code="invalid_base64", param="content_base64") from None
    # The file is written under its own last name part only: a name never chooses a path on the server.
    filename = PurePosixPath(body.name.replace("\\", "/")).name
    if filename in ("", ".", ".."):
        raise APIError(400, f"name {body.name!r} names no file", code="invalid_name", param="name")
    with tempfile.TemporaryDirectory(prefix="finassist-upload-") as folder:
        path = Path(folder) / filename
        path.write_bytes(content)
        result = await service.blocking(store.add, path, name=body.name, source="upload")
    added = DocumentAdded(document=result.document, created=result.created, replaced=result.replaced)
    return JSONResponse(added.model_dump(mode="json"), status_code=201 if result.created else 200)


@router.get(UPLOAD_PATH, response_model=DocumentList, tags=["documents"])
async def list_documents(service: Annotated[Service, Depends(service_of)]) -> DocumentList:
    """The documents in the library: pages, passages, when added."""
    documents = await service.blocking(_store(service).list)
    return DocumentList(data=documents)


@router.delete(UPLOAD_PATH + "/{document_id}", response_model=DocumentInfo, tags=["documents"])
async def remove_document(document_id: int, service: Annotated[Service, Depends(service_of)]) -> DocumentInfo:
    """Remove a document and its passages (404 when there is none with that id)."""
    return await service.blocking(_store(service).remove, document_id)
