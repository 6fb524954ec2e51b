"""From candidate spans to ranked answers: the one scoring path that
``Reader.read_with_null`` answers with and ``ragqa tune-reader`` fits.

A question's candidates are spans from all of its passages. Each scores its
start + end logit plus a bonus for its passage's retriever score (relative
to the best passage's, as BERTserini mixes both); a softmax at the fitted
temperature over all candidates and the no-answer score (the lowest null
score of the question's windows) gives probabilities, and spans with the
same normalised text are merged, their probabilities added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rag_qa.reading.spans import softmax
from rag_qa.text import normalize_answer


@dataclass(frozen=True)
class RankedAnswers:
    """``answers``: (probability, index of the best-scoring candidate) per
    distinct answer, most probable first; ``margin``: the best span's logit
    minus the no-answer score (what the no-answer threshold is compared to)."""

    answers: list[tuple[float, int]]
    margin: float
    scores: np.ndarray  # each candidate's logit + retriever bonus


def relative_retriever_scores(scores: Sequence[float] | None, n: int) -> np.ndarray:
    """Each passage's retriever score over the best passage's (zeros without scores)."""
    if scores is None:
        return np.zeros(n)
    values = np.asarray(scores, dtype=np.float64)
    top = values.max() if len(values) else 0.0
    return values / top if top > 0 else np.zeros(n)


def rank_answers(
    texts: Sequence[str],
    logits: Sequence[float],
    relative_retriever: Sequence[float],
    null_score: float,
    retriever_weight: float = 0.0,
    temperature: float = 1.0,
) -> RankedAnswers:
    """Rank the candidates of one question.

    ``texts[i]``, ``logits[i]`` and ``relative_retriever[i]`` describe
    candidate ``i`` (the last is its passage's relative retriever score).
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.size == 0:
        return RankedAnswers([], float("-inf"), logits)
    scores = logits + retriever_weight * np.asarray(relative_retriever, dtype=np.float64)
    probs = softmax(list(scores) + [null_score], temperature)[:-1]
    merged: dict[str, list] = {}
    for i, (text, prob) in enumerate(zip(texts, probs)):
        entry = merged.setdefault(normalize_answer(text) or text, [0.0, i])
        entry[0] += prob
        if scores[i] > scores[entry[1]]:
            entry[1] = i
    answers = sorted(((float(p), i) for p, i in merged.values()), key=lambda m: (-m[0], -scores[m[1]]))
    return RankedAnswers(answers, float(logits.max() - null_score), scores)
