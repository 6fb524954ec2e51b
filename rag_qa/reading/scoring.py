"""From candidate spans to ranked answers: the one scoring path that
``Reader.read_with_null`` answers with and ``ragqa tune-reader`` fits.

A question's candidates are spans from all of its passages. Each scores its
start + end logit plus a bonus for its passage's retriever score (relative
to the best passage's, as BERTserini mixes both); a softmax at the fitted
temperature over all candidates and the no-answer score (the lowest null
score of the question's windows) gives probabilities.

Candidates are then merged into answers, their probabilities added, by two rules:

- a candidate that lies inside a better-scoring candidate of the same passage
  (it starts at or after that one's start and ends at or before its end) and
  cuts one of that span's words (a word: a run of characters between white
  space) is a fragment of that span, not an answer: it adds nothing to any
  answer. So ``x-midi`` of ``audio/x-midi`` never collects, over many windows
  and passages, more than the span it came from; where the fragment stands
  alone, or scores better than every span around it, it is an answer. Whole
  words inside a longer span (``the Dutch`` inside a sentence that ends
  ``... by the Dutch``) stay answers of their own: merging them by text is
  what lets the short, repeated answer beat a long span (end to end on 500
  held-out SQuAD questions, top-10 hybrid: EM 43.6 when whole words too were
  parts, 44.2 with this rule; on the gold passages of the 1,511 test-half
  questions EM 49.90 / F1 67.56, against 49.83 / 67.48 merging by text alone);
- the other candidates are merged by their normalised text (SQuAD's
  normalisation), across windows and passages; the same span proposed by
  two windows counts twice, with its best score deciding whether it is a part.

A candidate that holds a better-scoring one (``in 1998`` around ``1998``)
stays an answer of its own, but does not collect the better one's
probability. Giving a part's probability to the span around it instead was
measured worse: a long span gathers its many parts and outranks the best
span (EM of the top answer on gold SQuAD passages, 2,500 held-out
questions: 47.65 against 50.03; merging by text alone: 49.83). Within one
passage every candidate has the same retriever bonus, so which candidate is
a part of which does not depend on the retriever weight or the temperature.
Without the candidates' positions, only the text rule applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rag_qa.errors import InputError
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


def _cuts_a_word(outer: str, start: int, end: int) -> bool:
    """Whether ``outer[start:end]`` begins or ends inside one of ``outer``'s
    white-space separated words (``x-midi`` in ``audio/x-midi``)."""
    return (start > 0 and not outer[start - 1].isspace()) or (end < len(outer) and not outer[end].isspace())


def parts(
    positions: Sequence[tuple[int, int, int]], order: np.ndarray, texts: Sequence[str] | None = None
) -> np.ndarray:
    """Which candidates are parts of a better span: for each candidate, the
    first candidate in ``order`` (best first) whose span holds its span, a
    different one, in the same passage, and (given ``texts``) cuts one of
    that span's white-space separated words; -1 where there is none.

    ``positions[i]`` is candidate ``i``'s (passage, start, end); a span
    proposed more than once is judged by its best proposal.
    """
    n = len(order)
    pos = np.asarray(positions, dtype=np.int64).reshape(n, 3)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    first: dict[tuple[int, int, int], int] = {}  # each distinct span's best proposal
    for i in order:
        first.setdefault(tuple(pos[i]), int(i))
    distinct = np.fromiter(first.values(), dtype=np.int64, count=len(first))
    holder = dict.fromkeys(first.values(), -1)
    for passage in np.unique(pos[distinct, 0]):
        ids = distinct[pos[distinct, 0] == passage]
        if len(ids) < 2:
            continue
        starts, ends, ranks = pos[ids, 1], pos[ids, 2], rank[ids]
        # holds[a, b]: span b holds span a (they differ, being distinct) and scores better
        holds = (
            (starts[None, :] <= starts[:, None]) & (ends[:, None] <= ends[None, :]) & (ranks[None, :] < ranks[:, None])
        )
        for a in np.flatnonzero(holds.any(axis=1)):
            for b in sorted(np.flatnonzero(holds[a]), key=lambda b: ranks[b]):
                if texts is None or _cuts_a_word(texts[int(ids[b])], starts[a] - starts[b], ends[a] - starts[b]):
                    holder[int(ids[a])] = int(ids[b])
                    break
    return np.asarray([holder[first[tuple(pos[i])]] for i in range(n)], dtype=np.int64)


def rank_answers(
    texts: Sequence[str],
    logits: Sequence[float],
    relative_retriever: Sequence[float],
    null_score: float,
    retriever_weight: float = 0.0,
    temperature: float = 1.0,
    positions: Sequence[tuple[int, int, int]] | None = None,
) -> RankedAnswers:
    """Rank the candidates of one question.

    ``texts[i]``, ``logits[i]`` and ``relative_retriever[i]`` describe
    candidate ``i`` (the last is its passage's relative retriever score);
    ``positions[i]``, when given, is its (passage index, start, end), which
    keeps a part of a better span from counting as an answer.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.size == 0:
        return RankedAnswers([], float("-inf"), logits)
    if positions is not None and len(positions) != logits.size:
        raise InputError(
            f"{len(positions)} positions for {logits.size} candidates: give one (passage, start, end) each"
        )
    scores = logits + retriever_weight * np.asarray(relative_retriever, dtype=np.float64)
    probs = softmax(list(scores) + [null_score], temperature)[:-1]
    order = np.lexsort((np.arange(logits.size), -scores))  # best first, ties in the given order
    part_of = parts(positions, order, texts) if positions is not None else np.full(logits.size, -1)
    merged: dict[str, list] = {}  # answer -> [probability, best-scoring candidate]
    for i in order:
        if part_of[i] < 0:
            merged.setdefault(normalize_answer(texts[i]) or texts[i], [0.0, int(i)])[0] += probs[i]
    answers = sorted(((float(p), i) for p, i in merged.values()), key=lambda m: (-m[0], -scores[m[1]]))
    return RankedAnswers(answers, float(logits.max() - null_score), scores)
