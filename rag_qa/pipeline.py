"""RagQA: retrieve passages from an index, then read answers out of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag_qa.errors import InputError
from rag_qa.reading.reader import Reader
from rag_qa.retrieval.index import Index
from rag_qa.text import check_query
from rag_qa.types import Answer, ScoredPassage


@dataclass(frozen=True)
class AskResult:
    """What one question produced: the answers and the passages they came from."""

    question: str
    answers: list[Answer]
    passages: list[ScoredPassage]
    no_answer_margin: float  # best span score minus the no-answer score


class RagQA:
    """The question-answering pipeline over one index.

    >>> qa = RagQA.load("index/")
    >>> answers = qa.ask("what does the manifest record?")
    >>> answers[0].text if answers else "no answer in the documents"
    """

    def __init__(self, index: Index, reader: Reader):
        self.index = index
        self.reader = reader

    @classmethod
    def load(
        cls,
        index_dir: str | Path = "index",
        reader: str | Path | None = None,
        encoder: str | Path | None = None,
        runtime: str | None = None,
        **reader_settings: Any,
    ) -> "RagQA":
        """Load the index and a reader (default: the reader shipped with ragqa).

        ``runtime`` runs both the query encoder and the reader: ``onnx`` (ONNX
        Runtime, the ``auto`` choice on a CPU-only machine), ``onnx-int8`` or
        ``torch``; None keeps the index's ``dense.runtime`` and the reader's
        default (``auto``). Other reader settings (see :class:`ReaderConfig`) are
        passed on to the reader.
        """
        index = Index.load(index_dir, encoder=encoder, runtime=runtime)
        if len(index) == 0:
            raise InputError(f"index at {index_dir} holds no passages: index some documents with `ragqa index`")
        if runtime is not None:
            reader_settings["runtime"] = runtime
        return cls(index, Reader(reader, **reader_settings))

    def ask(
        self,
        question: str,
        top_k_passages: int = 10,
        top_k_answers: int = 3,
        mode: str = "hybrid",
        source: str | None = None,
        no_answer_threshold: float | None = None,
    ) -> list[Answer]:
        """The best answers to ``question``, best first; an empty list when the
        reader abstains (the documents do not seem to hold the answer).
        ``no_answer_threshold`` overrides the reader's, as ``ragqa ask
        --no-answer-threshold`` does (``float("-inf")``: always answer)."""
        return self.ask_full(question, top_k_passages, top_k_answers, mode, source, no_answer_threshold).answers

    def ask_full(
        self,
        question: str,
        top_k_passages: int = 10,
        top_k_answers: int = 3,
        mode: str = "hybrid",
        source: str | None = None,
        no_answer_threshold: float | None = None,
    ) -> AskResult:
        """:meth:`ask` with the retrieved passages and the no-answer margin;
        ``no_answer_threshold`` overrides the reader's (``float("-inf")``: always answer)."""
        question = check_query(question)
        if top_k_answers < 1:
            raise InputError(f"top_k_answers must be at least 1, got {top_k_answers}")
        hits = self.index.search(question, k=top_k_passages, mode=mode, source=source)
        answers, margin = self.reader.read_with_null(
            question,
            [h.passage for h in hits],
            top_k=top_k_answers,
            retriever_scores=[h.score for h in hits],
            no_answer_threshold=no_answer_threshold,
        )
        return AskResult(question, answers, hits, margin)
