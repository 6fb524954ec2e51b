"""RagQA: retrieve passages from an index, then read answers out of them."""

from __future__ import annotations

import math
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rag_qa.errors import InputError
from rag_qa.reading.reader import Reader
from rag_qa.retrieval.index import Index
from rag_qa.text import check_query
from rag_qa.types import Answer, ScoredPassage

# A question longer than this many reader tokens draws a warning. The reader was
# trained on SQuAD's short, single questions; over the user guide, 8 questions
# that it answers 6 times as asked were answered 0 times once a preamble made
# them 22 tokens or longer (docs/asking.md, "Questions the reader reads well").
LONG_QUESTION_TOKENS = 32
# [CLS] question [SEP] passage [SEP]: a window must keep more than ``doc_stride``
# tokens of passage beside the question and these three special tokens.
_SPECIAL_TOKENS = 3

# Common English words, leaving out those that are as common in other languages
# written in Latin script (a, an, in, on, do, was, so, me, no, as, i, also, will).
_ENGLISH_WORDS = frozenset(
    """
    the of and to is are be been being what which who whom whose how when where why does did done
    for with from that this these those it its can could would should shall may might must many much
    there their they them you your we our my she his her has have had or not about into than then if
    all any some each every between after before during without within get use used make made more
    most other same one two first only just like way time here whether both either please show list
    give explain describe tell find name
    """.split()
)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
MIN_WORDS_FOR_LANGUAGE = 5


def not_english_reason(question: str) -> str | None:
    """Why ``question`` does not look like English, or None when it may be.

    A heuristic, no model: most of its letters are outside the Latin script
    (Cyrillic, Greek, Arabic, CJK, ...), or it has at least
    :data:`MIN_WORDS_FOR_LANGUAGE` words and none of them is one of the most
    common English words (:data:`_ENGLISH_WORDS`). It misses languages close to
    English in their small words, and it can flag a telegraphic English question.
    """
    letters = [c for c in question if c.isalpha()]
    if letters:
        latin = sum(unicodedata.name(c, "").startswith("LATIN") for c in letters)
        if latin / len(letters) < 0.5:
            return "most of its letters are not in the Latin script"
    words = _WORD.findall(question.lower())
    if len(words) >= MIN_WORDS_FOR_LANGUAGE and not any(w in _ENGLISH_WORDS for w in words):
        return f"none of its {len(words)} words is a common English word"
    return None


@dataclass(frozen=True)
class AskResult:
    """What one question produced.

    ``answers`` is empty when the reader abstains; ``best_candidate`` is the
    best span read all the same (``answers[0]`` when it answers; None when no
    passage gave a span). ``no_answer_margin`` is the best span's score minus
    the no-answer score, compared with ``no_answer_threshold``. ``warnings``
    say why the reader may read the question badly (a long question, one
    that does not look like English). ``source_root`` is the folder the
    index's relative sources start from (None for an index that did not record it).
    """

    question: str
    answers: list[Answer]
    passages: list[ScoredPassage]
    no_answer_margin: float  # best span score minus the no-answer score
    no_answer_threshold: float = 0.0
    best_candidate: Answer | None = None
    warnings: list[str] = field(default_factory=list)
    source_root: str | None = None  # the folder passages' relative sources start from (the index's manifest)

    @property
    def abstained(self) -> bool:
        """True when the reader gave no answer (no span beat no-answer by the threshold)."""
        return not self.answers

    def to_dict(self, with_passages: bool = False) -> dict[str, Any]:
        """The result as JSON-ready data: what ``ragqa ask --json`` prints and ``POST /ask`` returns.

        Answers carry ``path`` (their source as it opens from the working
        directory, :func:`openable_path`) and ``page``; the margin and the
        threshold are None where they are infinite (JSON has no infinities);
        ``passages`` (the passages read) is None unless ``with_passages``.
        """
        root = self.source_root
        best = self.best_candidate
        return {
            "question": self.question,
            "abstained": self.abstained,
            "answers": [answer_dict(a, root) for a in self.answers],
            "best_candidate": answer_dict(best, root) if best is not None else None,
            "no_answer_margin": finite_or_none(self.no_answer_margin),
            "no_answer_threshold": finite_or_none(self.no_answer_threshold),
            "warnings": list(self.warnings),
            "passages": [hit_dict(h, root) for h in self.passages] if with_passages else None,
        }


def openable_path(source: str, source_root: str | None) -> str:
    """A passage's ``source`` as a path that opens from the working directory.

    Sources are stored relative to the folder ``ragqa index`` ran in (the
    manifest's ``source_root``) when they lie under it: such a path is joined
    to that folder, then shown relative to the working directory when it lies
    under it, else absolute. Without a ``source_root`` (an index built before
    it was recorded) a relative source is shown as stored.
    """
    path = Path(source)
    if not path.is_absolute():
        if not source_root:
            return source
        path = Path(source_root) / path
    path = Path(os.path.normpath(path))
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def finite_or_none(value: float) -> float | None:
    """JSON has no infinities: a margin without any candidate, or a threshold of -inf, is None."""
    return value if math.isfinite(value) else None


def answer_dict(answer: Answer, source_root: str | None) -> dict[str, Any]:
    """:meth:`Answer.to_dict` with the ``path`` that opens from the working directory and the PDF ``page``."""
    return dict(answer.to_dict(), path=openable_path(answer.source, source_root), page=answer.page)


def hit_dict(hit: ScoredPassage, source_root: str | None) -> dict[str, Any]:
    """:meth:`ScoredPassage.to_dict` with the ``path`` that opens from the working directory."""
    return dict(hit.to_dict(), path=openable_path(hit.passage.source, source_root))


def index_source_root(index: Index) -> str | None:
    """The folder an index's relative sources start from (its manifest's ``source_root``), if recorded."""
    root = index.manifest.get("source_root")
    return root if isinstance(root, str) and root else None


@dataclass(frozen=True)
class PreparedQuestion:
    """A checked question with its retrieved passages, waiting for the reader (:meth:`RagQA.prepare`)."""

    question: str
    hits: list[ScoredPassage]
    top_k_answers: int
    no_answer_threshold: float
    warnings: list[str]


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
        reader_runtime: str | None = None,
        **reader_settings: Any,
    ) -> "RagQA":
        """Load the index and a reader (default: the reader shipped with ragqa).

        ``runtime`` runs both the query encoder and the reader: ``onnx`` (ONNX
        Runtime, the ``auto`` choice on a CPU-only machine), ``onnx-int8`` or
        ``torch``; None keeps the index's ``dense.runtime`` and the reader's
        default (``auto``). ``reader_runtime``, when given, runs the reader
        only and wins over ``runtime`` there. Other reader settings (see
        :class:`ReaderConfig`) are passed on to the reader.
        """
        index = Index.load(index_dir, encoder=encoder, runtime=runtime)
        if len(index) == 0:
            raise InputError(f"index at {index_dir} holds no passages: index some documents with `ragqa index`")
        if (reader_runtime or runtime) is not None:
            reader_settings["runtime"] = reader_runtime or runtime
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
        """:meth:`ask` with the retrieved passages, the no-answer margin and
        threshold, the best candidate (also when the reader abstains) and the
        warnings about the question; ``no_answer_threshold`` overrides the
        reader's (``float("-inf")``: always answer)."""
        prepared = self.prepare(question, top_k_passages, top_k_answers, mode, source, no_answer_threshold)
        return self.read_prepared([prepared])[0]

    def prepare(
        self,
        question: str,
        top_k_passages: int = 10,
        top_k_answers: int = 3,
        mode: str = "hybrid",
        source: str | None = None,
        no_answer_threshold: float | None = None,
    ) -> PreparedQuestion:
        """The first half of :meth:`ask_full`: check the question, warn about it and retrieve its passages.
        :meth:`read_prepared` reads several prepared questions in one pass of the reader."""
        question = check_query(question)
        if top_k_answers < 1:
            raise InputError(f"top_k_answers must be at least 1, got {top_k_answers}")
        warnings = self.question_warnings(question)
        threshold = self.reader.config.no_answer_threshold if no_answer_threshold is None else no_answer_threshold
        if math.isnan(threshold):
            raise InputError("the no-answer threshold is NaN: pass a number (-inf always answers)")
        hits = self.index.search(question, k=top_k_passages, mode=mode, source=source)
        return PreparedQuestion(question, hits, top_k_answers, float(threshold), warnings)

    def read_prepared(self, prepared: Sequence[PreparedQuestion]) -> list[AskResult]:
        """The second half of :meth:`ask_full`, for several questions: one pass of the reader over them all."""
        # Read without a threshold, so the best candidate is known when the reader abstains.
        read = self.reader.read_with_null_batch(
            [p.question for p in prepared],
            [[h.passage for h in p.hits] for p in prepared],
            top_k=[p.top_k_answers for p in prepared],
            retriever_scores=[[h.score for h in p.hits] for p in prepared],
            no_answer_threshold=[float("-inf")] * len(prepared),
        )
        root = index_source_root(self.index)
        results = []
        for p, (answers, margin) in zip(prepared, read):
            best = answers[0] if answers else None
            if margin < p.no_answer_threshold:
                answers = []
            results.append(
                AskResult(p.question, answers, p.hits, margin, p.no_answer_threshold, best, p.warnings, root)
            )
        return results

    # ------------------------------------------------------------------ the question
    def question_tokens(self, question: str) -> int:
        """How many of the reader's tokens ``question`` makes (special tokens aside)."""
        return self.reader.question_tokens(question)

    def question_limit(self) -> int:
        """The longest question, in tokens, that the reader can read beside a passage."""
        config = self.reader.config
        return config.max_seq_length - config.doc_stride - _SPECIAL_TOKENS - 1

    def question_warnings(self, question: str) -> list[str]:
        """Why the reader may read ``question`` badly; an error when it cannot read it at all."""
        warnings = []
        n = self.question_tokens(question)
        limit = self.question_limit()
        if n > limit:
            config = self.reader.config
            raise InputError(
                f"the question has {n} tokens, over the {limit} the reader reads beside a passage (max_seq_length "
                f"{config.max_seq_length} minus doc_stride {config.doc_stride} and {_SPECIAL_TOKENS + 1}): shorten it"
            )
        reason = not_english_reason(question)
        if reason:
            warnings.append(
                f"the question does not look like English ({reason}); the reader was trained on English questions "
                "and reads others poorly: ask it in English"
            )
        elif n > LONG_QUESTION_TOKENS:  # words of other languages are cut into many tokens: no length warning
            warnings.append(
                f"the question has {n} tokens; the reader was trained on short questions (SQuAD's) and often "
                f"abstains on longer ones: ask it in a short form (at most {LONG_QUESTION_TOKENS} tokens, "
                "without preamble)"
            )
        return warnings
