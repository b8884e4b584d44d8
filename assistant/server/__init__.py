"""The HTTP service (``finassist serve``): an OpenAI-compatible chat API plus the assistant's own tasks.

``app`` builds the FastAPI app and runs it; ``protocol`` is ``assistant/schemas.py`` (the request and
response bodies); ``errors``, ``middleware``, ``metrics``, ``service`` (the one handler the routes
call) and ``streaming`` (Server-Sent Events) are its parts.
"""

from .app import create_app, serve

__all__ = ["create_app", "serve"]
