"""Fusing ranked lists: reciprocal-rank fusion and weighted normalised scores."""

from __future__ import annotations

from typing import Mapping, Sequence


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], k: int = 60, weights: Sequence[float] | None = None
) -> dict[int, float]:
    """``score(d) = sum_i w_i / (k + rank_i(d))`` with ranks starting at 1.

    ``rankings`` are lists of document ids, best first. Returns a dict from
    id to fused score (unsorted).
    """
    weights = weights if weights is not None else [1.0] * len(rankings)
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, doc in enumerate(ranking, start=1):
            fused[doc] = fused.get(doc, 0.0) + weight / (k + rank)
    return fused


def min_max(scores: Mapping[int, float]) -> dict[int, float]:
    """Scale scores to [0, 1]; all-equal scores map to 1."""
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi == lo:
        return {d: 1.0 for d in scores}
    return {d: (s - lo) / (hi - lo) for d, s in scores.items()}


def weighted_fusion(score_lists: Sequence[Mapping[int, float]], weights: Sequence[float]) -> dict[int, float]:
    """``score(d) = sum_i w_i * minmax_i(d)``; a list that lacks ``d`` adds 0."""
    fused: dict[int, float] = {}
    for scores, weight in zip(score_lists, weights):
        for doc, value in min_max(scores).items():
            fused[doc] = fused.get(doc, 0.0) + weight * value
    return fused


def rank_fused(fused: Mapping[int, float], k: int) -> list[tuple[int, float]]:
    """The ``k`` best (id, score) pairs, ties broken by the smaller id."""
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
