"""The extractive reader: a transformers QA model over retrieved passages."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rag_qa.errors import InputError, ModelError
from rag_qa.evaluation.metrics import normalize_answer
from rag_qa.models import check_model_dir
from rag_qa.reading.spans import Span, decode_window, softmax
from rag_qa.types import Answer, Passage

logger = logging.getLogger(__name__)

READER_SETTINGS = "ragqa_reader.json"  # fitted settings saved beside a reader's weights


@dataclass(frozen=True)
class ReaderConfig:
    """How the reader reads. ``temperature``, ``retriever_weight`` and
    ``no_answer_threshold`` are fitted on held-out data and stored in the
    reader directory's ``ragqa_reader.json``; arguments given here win."""

    max_seq_length: int = 384
    doc_stride: int = 128
    max_answer_length: int = 30  # tokens
    top_n: int = 20  # start and end candidates per window
    batch_size: int = 16
    temperature: float = 1.0
    retriever_weight: float = 0.0  # logit bonus for the passage's normalised retriever score
    no_answer_threshold: float = 0.0  # answer only when best span score - null score exceeds this
    device: str | None = None
    precision: str = "auto"  # torch runtime: as DenseConfig.precision
    runtime: str = "auto"  # "torch", "onnx", "onnx-int8", or auto (see rag_qa.runtime)


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
    known = set(ReaderConfig.__dataclass_fields__)
    return {k: v for k, v in data.items() if k in known}


class Reader:
    """Finds answer spans in passages. Loads its model on first use."""

    def __init__(self, path: str | Path | None = None, config: ReaderConfig | None = None, **overrides: Any):
        self.path = check_model_dir(path if path is not None else default_reader_path(), kind="reader")
        fitted = load_reader_settings(self.path)
        base = config if config is not None else ReaderConfig(**fitted)
        self.config = replace(base, **overrides) if overrides else base
        if self.config.doc_stride >= self.config.max_seq_length:
            raise InputError(f"doc_stride ({self.config.doc_stride}) must be smaller than max_seq_length ({self.config.max_seq_length})")
        self._model = None
        self._tokenizer = None
        self.runtime: str | None = None  # resolved by warm_up

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

        from rag_qa.retrieval.dense import resolve_device, resolve_precision

        try:
            device = resolve_device(self.config.device)
            dtype = getattr(torch, resolve_precision(self.config.precision, device))
            model = AutoModelForQuestionAnswering.from_pretrained(str(self.path), local_files_only=True, trust_remote_code=False, use_safetensors=True, dtype=dtype)
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
        """Candidate spans per context (character offsets into it) and each context's no-answer score."""
        return self.pair_spans([question] * len(contexts), contexts)

    def pair_spans(self, questions: Sequence[str], contexts: Sequence[str]) -> tuple[list[list[Span]], list[float]]:
        """:meth:`spans` for (question, context) pairs, batched across questions."""
        self.warm_up()
        if not contexts:
            return [], []
        windows = self._tokenizer.windows(questions, contexts, self.config.max_seq_length, self.config.doc_stride)
        start_logits, end_logits = self._logits(windows.arrays)
        per_context: list[list[Span]] = [[] for _ in contexts]
        null = [float("inf")] * len(contexts)
        for w, ctx_index in enumerate(windows.sample_map):
            seq_ids = windows.sequence_ids[w]
            offsets = [o if seq_ids[j] == 1 else None for j, o in enumerate(windows.offsets[w])]
            found, null_score = decode_window(start_logits[w], end_logits[w], offsets, self.config.max_answer_length, self.config.top_n, window=w)
            per_context[ctx_index].extend(found)
            # As in SQuAD 2.0 decoding: the window most sure that it holds an answer decides.
            null[ctx_index] = min(null[ctx_index], null_score)
        return per_context, null

    # ------------------------------------------------------------------ answers
    def read(self, question: str, passages: Sequence[Passage], top_k: int = 3, retriever_scores: Sequence[float] | None = None) -> list[Answer]:
        """The ``top_k`` best answers to ``question`` in ``passages``, best first.

        Spans with the same normalised text are merged (their probabilities
        add up). Returns an empty list when the best span does not beat the
        no-answer score by ``no_answer_threshold``.
        """
        answers, _ = self.read_with_null(question, passages, top_k, retriever_scores)
        return answers

    def read_with_null(
        self, question: str, passages: Sequence[Passage], top_k: int = 3, retriever_scores: Sequence[float] | None = None, no_answer_threshold: float | None = None
    ) -> tuple[list[Answer], float]:
        """Like :meth:`read`, also returning the margin of the best span over
        no-answer. ``no_answer_threshold`` overrides the configured one
        (``float("-inf")``: always answer)."""
        if not isinstance(question, str) or not question.strip():
            raise InputError("the question is empty: ask something")
        if not passages:
            return [], float("-inf")
        per_passage, null = self.spans(question.strip(), [p.text for p in passages])
        bonus = self._retriever_bonus(retriever_scores, len(passages))
        cands: list[tuple[float, Span, int]] = []
        for i, spans in enumerate(per_passage):
            cands.extend((sp.score + bonus[i], sp, i) for sp in spans)
        if not cands:
            return [], float("-inf")
        cands.sort(key=lambda c: -c[0])
        null_score = min(null)
        margin = max(c[1].score for c in cands) - null_score
        threshold = self.config.no_answer_threshold if no_answer_threshold is None else no_answer_threshold
        if margin < threshold:
            return [], margin
        texts = [passages[i].text[span.start : span.end] for _, span, i in cands]
        merged = merge_by_text(texts, [c[0] for c in cands], null_score, self.config.temperature)[:top_k]
        return [
            self._answer(prob, cands[j][0], cands[j][1], passages[cands[j][2]], retriever_scores[cands[j][2]] if retriever_scores is not None else None)
            for prob, j in merged
        ], margin

    def _retriever_bonus(self, scores: Sequence[float] | None, n: int) -> np.ndarray:
        if scores is None or self.config.retriever_weight == 0:
            return np.zeros(n)
        values = np.asarray(scores, dtype=np.float64)
        top = values.max()
        return self.config.retriever_weight * (values / top if top > 0 else np.zeros(n))

    @staticmethod
    def _answer(prob: float, score: float, span: Span, passage: Passage, retriever_score: float | None) -> Answer:
        line = passage.metadata.get("line")
        if isinstance(line, int) and not passage.source.endswith(".jsonl"):
            line += passage.text.count("\n", 0, span.start)
        return Answer(
            text=passage.text[span.start : span.end],
            score=float(prob),
            start=passage.start + span.start,
            end=passage.start + span.end,
            source=passage.source,
            passage=passage,
            logit=float(span.score),
            retriever_score=retriever_score,
            line=line if isinstance(line, int) else None,
        )


def merge_by_text(texts: Sequence[str], scores: Sequence[float], null_score: float, temperature: float) -> list[tuple[float, int]]:
    """Softmax over candidate spans (and no-answer), merged by normalised text.

    Returns ``(probability, index of the best-scoring span)`` per distinct
    answer, most probable first: the same answer found in several passages
    adds up its probability.
    """
    probs = softmax(list(scores) + [null_score], temperature)[:-1]
    merged: dict[str, list] = {}
    for i, (text, prob) in enumerate(zip(texts, probs)):
        key = normalize_answer(text) or text
        entry = merged.setdefault(key, [0.0, i])
        entry[0] += prob
        if scores[i] > scores[entry[1]]:
            entry[1] = i
    return sorted(((float(p), i) for p, i in merged.values()), key=lambda m: -m[0])
