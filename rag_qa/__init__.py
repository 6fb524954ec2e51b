"""ragqa: offline-first question answering over your own documents.

The public API is re-exported lazily so that ``import rag_qa`` (and the
CLI's ``--help``) stays fast and does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "Document",
    "Index",
    "IndexConfig",
    "Passage",
    "RagQA",
    "RagQAError",
    "Reader",
    "ScoredPassage",
    "__version__",
]

_EXPORTS = {
    "Answer": "rag_qa.types",
    "RagQA": "rag_qa.pipeline",
    "Reader": "rag_qa.reading.reader",
    "Document": "rag_qa.types",
    "Passage": "rag_qa.types",
    "ScoredPassage": "rag_qa.types",
    "Index": "rag_qa.retrieval.index",
    "IndexConfig": "rag_qa.config",
    "RagQAError": "rag_qa.errors",
}

if TYPE_CHECKING:  # pragma: no cover
    from rag_qa.config import IndexConfig
    from rag_qa.errors import RagQAError
    from rag_qa.pipeline import RagQA
    from rag_qa.reading.reader import Reader
    from rag_qa.retrieval.index import Index
    from rag_qa.types import Answer, Document, Passage, ScoredPassage


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rag_qa' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
