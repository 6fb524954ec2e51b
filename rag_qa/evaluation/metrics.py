"""SQuAD exact match and F1, with the official answer normalisation."""

from __future__ import annotations

import collections
from typing import Iterable

from rag_qa.text import normalize_answer


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1(prediction: str, truth: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    true_tokens = normalize_answer(truth).split()
    if not pred_tokens or not true_tokens:
        # SQuAD 2.0 convention: both empty (no answer) is a match.
        return float(pred_tokens == true_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(true_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(true_tokens)
    return 2 * precision * recall / (precision + recall)


def best_over(metric, prediction: str, truths: Iterable[str]) -> float:
    truths = list(truths) or [""]
    return max(metric(prediction, t) for t in truths)


def squad_scores(predictions: dict[str, str], references: dict[str, list[str]]) -> dict[str, float]:
    """EM and F1 in percent over the questions in ``references``; a missing prediction scores 0."""
    if not references:
        return {"exact_match": 0.0, "f1": 0.0, "count": 0}
    em = sum(best_over(exact_match, predictions.get(qid, ""), truths) for qid, truths in references.items())
    f = sum(best_over(f1, predictions.get(qid, ""), truths) for qid, truths in references.items())
    n = len(references)
    return {"exact_match": 100 * em / n, "f1": 100 * f / n, "count": n}
