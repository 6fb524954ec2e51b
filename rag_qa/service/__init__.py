"""`ragqa serve`: the HTTP service over one index (needs the ``serve`` extra: FastAPI and uvicorn)."""

from rag_qa.service.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
