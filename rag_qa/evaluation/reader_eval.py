"""Reader quality on gold passages: SQuAD EM/F1 and passages per second."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rag_qa.evaluation.metrics import squad_scores
from rag_qa.reading.reader import Reader
from rag_qa.data import QAExample, held_out_half, read_squad


def predict_gold(reader: Reader, examples: list[QAExample], batch: int = 32) -> dict[str, str]:
    """The best span of each question in its own (gold) context."""
    predictions = {}
    for i in range(0, len(examples), batch):
        chunk = examples[i : i + batch]
        spans, _ = reader.pair_spans([e.question for e in chunk], [e.context for e in chunk])
        for e, found in zip(chunk, spans):
            best = max(found, key=lambda s: s.score, default=None)
            predictions[e.qid] = e.context[best.start : best.end] if best else ""
    return predictions


def evaluate_reader(reader: Reader, data_path: str | Path, limit: int | None = None, held_out_only: bool = False) -> dict[str, Any]:
    examples = read_squad(data_path)
    if held_out_only:  # train-reader chooses checkpoints on the other half
        examples = held_out_half(examples, "test")
    if limit:
        examples = examples[:limit]
    reader.warm_up()
    start = time.perf_counter()
    predictions = predict_gold(reader, examples)
    seconds = time.perf_counter() - start
    scores = squad_scores(predictions, {e.qid: list(e.answer_texts) for e in examples})
    return {
        "exact_match": scores["exact_match"],
        "f1": scores["f1"],
        "questions": scores["count"],
        "seconds": seconds,
        "passages_per_s": len(examples) / seconds if seconds else 0.0,
        "reader": str(reader.path),
        "max_seq_length": reader.config.max_seq_length,
    }
