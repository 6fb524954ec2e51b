"""The request and response models of the HTTP API (the OpenAPI schema at ``/docs``).

Responses carry the JSON of :meth:`rag_qa.pipeline.AskResult.to_dict` and
:func:`rag_qa.pipeline.hit_dict`, the same as ``ragqa ask --json`` and
``ragqa search --json`` print.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rag_qa.choices import MODES

Mode = Literal[tuple(MODES)]  # type: ignore[valid-type]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AskRequest(_Request):
    question: str = Field(description="The question, in English.")
    answers: int = Field(1, ge=1, le=20, description="How many answers to return.")
    top_k: int = Field(10, ge=1, le=100, description="How many passages to read.")
    mode: Mode = Field("hybrid", description="Retriever: keyword (bm25), embedding (dense), or both fused.")
    source: str | None = Field(None, description="Only read passages whose source path matches this glob.")
    no_answer_threshold: float | None = Field(
        None, description="How far the best span must beat 'no answer' (default: the reader's fitted value)."
    )
    passages: bool = Field(False, description="Also return the passages read.")


class SearchRequest(_Request):
    query: str
    top_k: int = Field(5, ge=1, le=100)
    mode: Mode = "hybrid"
    source: str | None = None


class FeedbackRequest(_Request):
    question: str
    passage_id: str = Field(description="The `passage_id` of an answer, or the `id` of a passage read.")
    answer: str | None = Field(
        description="The right answer's exact text in the passage; null: the passage holds none."
    )
    answer_start: int | None = Field(None, ge=0, description="The answer's character offset in the passage's text.")


class AnswerOut(BaseModel):
    text: str
    score: float
    start: int
    end: int
    source: str
    line: int | None
    logit: float
    retriever_score: float | None
    context: str
    context_start: int
    passage_id: str
    doc_id: str
    path: str
    page: int | None


class PassageOut(BaseModel):
    id: str
    doc_id: str
    source: str
    start: int
    end: int
    title: str | None
    text: str
    metadata: dict[str, Any]
    rank: int
    score: float
    bm25_score: float | None
    dense_score: float | None
    path: str


class AskResponse(BaseModel):
    question: str
    abstained: bool
    answers: list[AnswerOut]
    best_candidate: AnswerOut | None
    no_answer_margin: float | None
    no_answer_threshold: float | None
    warnings: list[str]
    passages: list[PassageOut] | None


class FeedbackResponse(BaseModel):
    stored: str = Field(description="The file the record went to, relative to the feedback folder.")
    id: str
