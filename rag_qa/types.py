"""Frozen dataclasses that flow between the stages of ragqa."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Document:
    """A source document as read from disk.

    ``text`` is what passage offsets point into: the decoded file for plain
    text and Markdown, the extracted text for HTML and PDF. A large plain-text
    file is read as several parts; each part's ``metadata`` holds its
    character ``offset`` and ``first_line`` in the file, and its passages'
    offsets count from the start of the file.
    """

    doc_id: str
    source: str
    text: str
    title: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Passage:
    """A chunk of a document: ``text == document.text[start:end]`` (for a
    part of a large file, ``start`` and ``end`` are offsets into the file)."""

    passage_id: str
    doc_id: str
    source: str
    text: str
    start: int
    end: int
    title: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def line_at(self, offset: int) -> int | None:
        """The 1-based line of the source file at ``offset`` into :attr:`text`, when known.

        ``metadata["line"]`` is the line where the passage starts; each line
        break in the text is one more line, except past an anchor of
        ``metadata["line_map"]`` (``[offset, line]`` pairs, for text extracted
        from Markdown or HTML), which says the line again. A passage marked
        ``one_line`` (a JSONL record) lies on that line whole.
        """
        line = self.metadata.get("line")
        if not isinstance(line, int) or isinstance(line, bool):
            return None
        if self.metadata.get("one_line"):
            return line
        offset = max(offset, 0)
        since = 0
        for anchor, at in self.metadata.get("line_map") or ():
            if anchor > offset:
                break
            since, line = anchor, at
        return line + self.text.count("\n", since, offset)

    def page_at(self, offset: int) -> int | None:
        """The 1-based PDF page at ``offset`` into :attr:`text`, when the source has pages.

        ``metadata["page"]`` is the page where the passage starts and
        ``metadata["page_breaks"]`` the ``[offset, page]`` of each page that
        starts inside it.
        """
        page = self.metadata.get("page")
        if not isinstance(page, int) or isinstance(page, bool):
            return None
        for at, number in self.metadata.get("page_breaks") or ():
            if at > offset:
                break
            page = number
        return page

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.passage_id,
            "doc_id": self.doc_id,
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "title": self.title,
            "text": self.text,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> "Passage":
        return cls(
            passage_id=row["id"],
            doc_id=row["doc_id"],
            source=row["source"],
            text=row["text"],
            start=int(row["start"]),
            end=int(row["end"]),
            title=row.get("title", ""),
            metadata=row.get("metadata") or {},
        )


@dataclass(frozen=True)
class ScoredPassage:
    """A passage returned by a search, with the evidence behind its rank.

    ``score`` is the score of the mode that was asked for (BM25, cosine, or
    the fused score); ``bm25_score`` and ``dense_score`` are the raw scores of
    each retriever when it saw the passage, else ``None``.
    """

    passage: Passage
    score: float
    rank: int
    bm25_score: float | None = None
    dense_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        row = self.passage.to_dict()
        row.update(
            rank=self.rank,
            score=self.score,
            bm25_score=self.bm25_score,
            dense_score=self.dense_score,
        )
        return row


@dataclass(frozen=True)
class Answer:
    """An answer span found by the reader.

    ``start`` and ``end`` are character offsets into the source document
    (``passage.start + offset in passage``); ``score`` is the confidence in
    [0, 1] that this is the answer, over all candidates of the question;
    ``context`` is the sentence around the answer in the passage, and
    ``context_start`` where it starts in the passage text, so the answer sits
    at ``start - passage.start - context_start`` in it.
    """

    text: str
    score: float
    start: int
    end: int
    source: str
    passage: Passage
    logit: float  # the reader's start + end logit
    retriever_score: float | None = None
    line: int | None = None  # 1-based line of ``start`` in the source, when known
    context: str = ""
    context_start: int = 0

    @property
    def page(self) -> int | None:
        """The 1-based PDF page the answer starts on, when the source has pages."""
        return self.passage.page_at(self.start - self.passage.start)

    @property
    def offset_in_context(self) -> int:
        """Where the answer starts in :attr:`context`."""
        return self.start - self.passage.start - self.context_start

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "score": self.score,
            "start": self.start,
            "end": self.end,
            "source": self.source,
            "line": self.line,
            "logit": self.logit,
            "retriever_score": self.retriever_score,
            "context": self.context,
            "context_start": self.context_start,
            "passage_id": self.passage.passage_id,
            "doc_id": self.passage.doc_id,
        }
