"""The extractive reader: a transformers QA model over retrieved passages."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from pydantic import Field, model_validator

from rag_qa.choices import Precision, Runtime
from rag_qa.config import Config
from rag_qa.errors import InputError, ModelError
from rag_qa.models import check_model_dir
from rag_qa.reading.scoring import rank_answers, relative_retriever_scores
from rag_qa.reading.spans import Span, decode_window
from rag_qa.text import check_query, sentence_around
from rag_qa.types import Answer, Passage

logger = logging.getLogger(__name__)

READER_SETTINGS = "ragqa_reader.json"  # fitted settings saved beside a reader's weights


# Settings fitted on held-out data by `ragqa tune-reader`, saved in the reader
# directory, and what they are without a fitted file.
FITTED_DEFAULTS = {"temperature": 1.0, "retriever_weight": 0.0, "no_answer_threshold": 0.0}


class ReaderConfig(Config):
    """How the reader reads.

    ``temperature``, ``retriever_weight`` and ``no_answer_threshold`` left at
    None take the values fitted for the reader (its ``ragqa_reader.json``),
    or 1.0 / 0.0 / 0.0 when it has none; a value given here always wins.
    """

    max_seq_length: int = 384
    doc_stride: int = 128
    max_answer_length: int = Field(30, ge=1)  # tokens
    top_n: int = Field(20, ge=1)  # start and end candidates per window
    batch_size: int = Field(16, ge=1)
    max_windows_per_passage: int = Field(8, ge=1)  # a passage longer than this many windows is read in part
    temperature: Optional[float] = Field(None, gt=0)
    retriever_weight: Optional[float] = None  # logit bonus for the passage's relative retriever score
    no_answer_threshold: Optional[float] = None  # answer only when best span score - null score reaches this
    device: Optional[str] = None
    precision: Precision = "auto"  # torch runtime: as DenseConfig.precision
    runtime: Runtime = "auto"  # "torch", "onnx", "onnx-int8", or auto (see rag_qa.runtime)

    @model_validator(mode="after")
    def _check(self) -> "ReaderConfig":
        if self.doc_stride >= self.max_seq_length:
            raise InputError(
                f"doc_stride ({self.doc_stride}) must be smaller than max_seq_length ({self.max_seq_length})"
            )
        return self

    def with_fitted(self, fitted: dict[str, Any]) -> "ReaderConfig":
        """Fitted settings filled in where this config leaves them to the reader."""
        unset = {k: fitted.get(k, default) for k, default in FITTED_DEFAULTS.items() if getattr(self, k) is None}
        return self.replace(**unset) if unset else self


def default_reader_path() -> Path:
    """The reader shipped inside the package."""
    return Path(__file__).resolve().parent.parent / "resources" / "reader"


def _architectures(path: Path) -> list[str]:
    try:
        archs = json.loads((path / "config.json").read_text(encoding="utf-8")).get("architectures")
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelError(f"reader directory {path}: config.json could not be read ({exc})") from exc
    return [a for a in archs if isinstance(a, str)] if isinstance(archs, list) else []


def load_reader_settings(path: Path) -> dict[str, Any]:
    file = path / READER_SETTINGS
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelError(f"{file} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{file} is not a JSON object of reader settings")
    return {k: v for k, v in data.items() if k in FITTED_DEFAULTS}


class Reader:
    """Finds answer spans in passages. Loads its model on first use (or :meth:`warm_up`).

    Settings: ``config`` (default ``ReaderConfig()``) with ``overrides``
    applied; fitted settings it leaves unset come from the reader directory.
    """

    def __init__(self, path: str | Path | None = None, config: ReaderConfig | None = None, **overrides: Any):
        self.path = check_model_dir(path if path is not None else default_reader_path(), kind="reader")
        config = config if config is not None else ReaderConfig()
        if overrides:
            config = config.replace(**overrides)
        self.config = config.with_fitted(load_reader_settings(self.path))
        self._model = None
        self._tokenizer = None
        self.runtime: str | None = None  # resolved by warm_up

    def question_tokens(self, question: str) -> int:
        """How many of this reader's tokens ``question`` makes (special tokens aside), with the
        tokenizer it reads with (loaded with the model, if it is not yet)."""
        if self._tokenizer is None:
            self.warm_up()
        return self._tokenizer.count(question)

    def warm_up(self) -> "Reader":
        """Load the tokenizer and model now rather than on the first question."""
        if self._model is not None:
            return self
        from rag_qa.models import weights_sha256
        from rag_qa.runtime import FastTokenizer, OnnxModel, resolve_runtime

        archs = _architectures(self.path)
        if archs and not any(a.endswith("ForQuestionAnswering") for a in archs):
            raise ModelError(
                f"reader directory {self.path} holds a {', '.join(archs)} model, not a question-answering model: "
                "train one with `ragqa train-reader` or pass another --reader"
            )
        runtime = resolve_runtime(self.config.runtime, self.config.device, self.config.precision)
        self._tokenizer = FastTokenizer(self.path, kind="reader")
        if runtime == "torch":
            self._model = self._load_torch()
        else:
            self._model = OnnxModel(self.path, "reader", weights_sha256(self.path), quantized=runtime == "onnx-int8")
        self.runtime = runtime
        return self

    def _load_torch(self):
        import torch
        from transformers import AutoModelForQuestionAnswering

        from rag_qa.runtime import resolve_device, resolve_precision

        try:
            device = resolve_device(self.config.device)
            dtype = getattr(torch, resolve_precision(self.config.precision, device))
            model = AutoModelForQuestionAnswering.from_pretrained(
                str(self.path), local_files_only=True, trust_remote_code=False, use_safetensors=True, dtype=dtype
            )
        except (OSError, ValueError) as exc:
            raise ModelError(f"reader directory {self.path} could not be loaded: {exc}".replace("\n", " ")) from exc
        import inspect

        self._device = device
        self._input_names = set(inspect.signature(model.forward).parameters)
        return model.to(device).eval()

    @property
    def backend(self) -> str:
        """What runs the model, e.g. ``onnx float32`` or ``torch bfloat16``."""
        self.warm_up()
        if self.runtime == "torch":
            return f"torch {str(self._model.dtype).replace('torch.', '')}"
        return "onnx int8" if self.runtime == "onnx-int8" else "onnx float32"

    # ------------------------------------------------------------------ windows
    def _logits(self, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        starts, ends = [], []
        n = len(arrays["input_ids"])
        size = self.config.batch_size
        if self.runtime != "torch":
            for i in range(0, n, size):
                start, end = self._model.run({k: v[i : i + size] for k, v in arrays.items()})
                starts.append(start)
                ends.append(end)
            return np.concatenate(starts), np.concatenate(ends)
        import torch

        names = [k for k in arrays if k in self._input_names]
        with torch.inference_mode():
            for i in range(0, n, size):
                batch = {k: torch.as_tensor(arrays[k][i : i + size], device=self._device) for k in names}
                out = self._model(**batch)
                starts.append(out.start_logits.float().cpu().numpy())
                ends.append(out.end_logits.float().cpu().numpy())
        return np.concatenate(starts), np.concatenate(ends)

    def spans(self, question: str, contexts: Sequence[str]) -> tuple[list[list[Span]], list[float]]:
        """Candidate spans per context (character offsets into it, whole words) and each context's no-answer score."""
        return self.pair_spans([question] * len(contexts), contexts)

    def pair_spans(self, questions: Sequence[str], contexts: Sequence[str]) -> tuple[list[list[Span]], list[float]]:
        """:meth:`spans` for (question, context) pairs, batched across questions."""
        self.warm_up()
        if not contexts:
            return [], []
        windows = self._tokenizer.windows(questions, contexts, self.config.max_seq_length, self.config.doc_stride)
        windows = windows.first_per_sample(self.config.max_windows_per_passage)
        start_logits, end_logits = self._logits(windows.arrays)
        per_context: list[list[Span]] = [[] for _ in contexts]
        null = [float("inf")] * len(contexts)
        for w, ctx_index in enumerate(windows.sample_map):
            seq_ids = windows.sequence_ids[w]
            offsets = [o if seq_ids[j] == 1 else None for j, o in enumerate(windows.offsets[w])]
            found, null_score = decode_window(
                start_logits[w],
                end_logits[w],
                offsets,
                self.config.max_answer_length,
                self.config.top_n,
                window=w,
                context=contexts[ctx_index],
            )
            per_context[ctx_index].extend(found)
            # As in SQuAD 2.0 decoding: the window most sure that it holds an answer decides.
            null[ctx_index] = min(null[ctx_index], null_score)
        return per_context, null

    # ------------------------------------------------------------------ answers
    def read(
        self,
        question: str,
        passages: Sequence[Passage],
        top_k: int = 3,
        retriever_scores: Sequence[float] | None = None,
    ) -> list[Answer]:
        """The ``top_k`` best answers to ``question`` in ``passages``, best first.

        Spans are merged as :mod:`rag_qa.reading.scoring` says (a fragment
        into the span that holds it, then spans with the same normalised
        text), their probabilities added. An answer's ``text`` is its span
        with each run of white space shown as one space; ``start`` and
        ``end`` point at the span in the source as it is. Returns an empty
        list when the best span does not beat the no-answer score by
        ``no_answer_threshold``.
        """
        answers, _ = self.read_with_null(question, passages, top_k, retriever_scores)
        return answers

    def read_with_null(
        self,
        question: str,
        passages: Sequence[Passage],
        top_k: int = 3,
        retriever_scores: Sequence[float] | None = None,
        no_answer_threshold: float | None = None,
    ) -> tuple[list[Answer], float]:
        """Like :meth:`read`, also returning the margin of the best span over
        no-answer. ``no_answer_threshold`` overrides the configured one
        (``float("-inf")``: always answer)."""
        scores = [retriever_scores] if retriever_scores is not None else None
        return self.read_with_null_batch([question], [passages], top_k, scores, [no_answer_threshold])[0]

    def read_with_null_batch(
        self,
        questions: Sequence[str],
        passages: Sequence[Sequence[Passage]],
        top_k: int | Sequence[int] = 3,
        retriever_scores: Sequence[Sequence[float] | None] | None = None,
        no_answer_threshold: Sequence[float | None] | None = None,
    ) -> list[tuple[list[Answer], float]]:
        """:meth:`read_with_null` for several questions, each with its own
        passages, in one pass of the model over every (question, passage)
        pair: what ``read_with_null`` returns, per question, in order.
        ``top_k``, ``retriever_scores`` and ``no_answer_threshold`` are one
        value for all or one per question."""
        n = len(questions)
        if len(passages) != n:
            raise InputError(f"{n} questions but {len(passages)} lists of passages: pass one list per question")
        top_ks = [top_k] * n if isinstance(top_k, int) else list(top_k)
        scores = list(retriever_scores) if retriever_scores is not None else [None] * n
        thresholds = list(no_answer_threshold) if no_answer_threshold is not None else [None] * n
        if not len(top_ks) == len(scores) == len(thresholds) == n:
            raise InputError("top_k, retriever_scores and no_answer_threshold need one value per question")
        questions = [check_query(q) for q in questions]
        lists = [[_as_passage(p, i) for i, p in enumerate(ps)] for ps in passages]
        pair_questions = [q for q, ps in zip(questions, lists) for _ in ps]
        per_pair, null_pair = self.pair_spans(pair_questions, [p.text for ps in lists for p in ps])
        results, at = [], 0
        for ps, k, rs, threshold in zip(lists, top_ks, scores, thresholds):
            end = at + len(ps)
            results.append(self._rank(ps, per_pair[at:end], null_pair[at:end], k, rs, threshold))
            at = end
        return results

    def _rank(
        self,
        passages: list[Passage],
        per_passage: list[list[Span]],
        null: list[float],
        top_k: int,
        retriever_scores: Sequence[float] | None,
        no_answer_threshold: float | None,
    ) -> tuple[list[Answer], float]:
        """One question's spans and no-answer scores to its ranked answers and margin."""
        if not passages:
            return [], float("-inf")
        relative = relative_retriever_scores(retriever_scores, len(passages))
        cands = [(span, i) for i, spans in enumerate(per_passage) for span in spans]
        ranked = rank_answers(
            [passages[i].text[span.start : span.end] for span, i in cands],
            [span.score for span, _ in cands],
            [relative[i] for _, i in cands],
            min(null),
            self.config.retriever_weight,
            self.config.temperature,
            positions=[(i, span.start, span.end) for span, i in cands],
        )
        threshold = self.config.no_answer_threshold if no_answer_threshold is None else no_answer_threshold
        if not cands or ranked.margin < threshold:
            return [], ranked.margin
        answers = []
        for prob, j in ranked.answers[:top_k]:
            span, i = cands[j]
            answers.append(
                self._answer(prob, span, passages[i], retriever_scores[i] if retriever_scores is not None else None)
            )
        return answers, ranked.margin

    @staticmethod
    def _answer(prob: float, span: Span, passage: Passage, retriever_score: float | None) -> Answer:
        context_start, context_end = sentence_around(passage.text, span.start, span.end)
        return Answer(
            text=" ".join(passage.text[span.start : span.end].split()),
            score=float(prob),
            start=passage.start + span.start,
            end=passage.start + span.end,
            source=passage.source,
            passage=passage,
            logit=float(span.score),
            retriever_score=retriever_score,
            line=passage.line_at(span.start),
            context=passage.text[context_start:context_end],
            context_start=context_start,
        )


def _as_passage(passage: Passage | str, i: int) -> Passage:
    """Passages as given; a plain string is read as a passage of its own."""
    if isinstance(passage, Passage):
        return passage
    if isinstance(passage, str):
        return Passage(passage_id=f"text-{i}", doc_id=f"text-{i}", source="", text=passage, start=0, end=len(passage))
    raise InputError(f"passage {i} is a {type(passage).__name__}: pass strings or rag_qa.Passage objects")
