"""A langchain-core retriever over a ragqa index.

>>> from rag_qa.integrations.langchain import RagQARetriever
>>> docs = RagQARetriever(index_dir="index/", k=5).invoke("question")
"""

from __future__ import annotations

from typing import Any, Optional

from rag_qa.errors import require_extra

require_extra("langchain", "langchain_core", what="rag_qa.integrations.langchain")

from langchain_core.callbacks import CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from pydantic import ConfigDict, PrivateAttr  # noqa: E402

from rag_qa.retrieval.index import Index  # noqa: E402


class RagQARetriever(BaseRetriever):
    """Returns ``Document``s whose metadata carries the source, offsets and scores."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index_dir: str = "index"
    k: int = 5
    mode: str = "hybrid"
    source: Optional[str] = None  # a glob on the source path
    encoder: Optional[str] = None
    _index: Optional[Index] = PrivateAttr(default=None)

    @classmethod
    def from_index(cls, index: Index, **kwargs: Any) -> "RagQARetriever":
        """Wrap an :class:`Index` already loaded in this process."""
        retriever = cls(index_dir=str(index.directory), **kwargs)
        retriever._index = index
        return retriever

    @property
    def index(self) -> Index:
        if self._index is None:
            self._index = Index.load(self.index_dir, encoder=self.encoder)
        return self._index

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.index.search(query, k=self.k, mode=self.mode, source=self.source)
        return [
            Document(
                page_content=hit.passage.text,
                id=hit.passage.passage_id,
                # The passage's own metadata first: ragqa's fields are never overwritten by a record's.
                metadata={
                    **dict(hit.passage.metadata),
                    "source": hit.passage.source,
                    "title": hit.passage.title,
                    "start": hit.passage.start,
                    "end": hit.passage.end,
                    "doc_id": hit.passage.doc_id,
                    "passage_id": hit.passage.passage_id,
                    "score": hit.score,
                    "rank": hit.rank,
                    "bm25_score": hit.bm25_score,
                    "dense_score": hit.dense_score,
                },
            )
            for hit in hits
        ]
