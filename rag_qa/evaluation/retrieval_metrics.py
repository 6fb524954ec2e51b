"""Ranking metrics: recall@k, MRR@k and nDCG@k (binary relevance, as BEIR)."""

from __future__ import annotations

import math
from typing import Mapping, Sequence


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Share of the relevant documents found in the top ``k``."""
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & relevant) / len(relevant)


def hit_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """1 if any relevant document is in the top ``k`` (recall@k for one answer paragraph)."""
    return float(any(d in relevant for d in ranked[:k]))


def mrr_at_k(ranked: Sequence[str], relevant: set[str], k: int = 10) -> float:
    for rank, doc in enumerate(ranked[:k], start=1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: set[str] | Mapping[str, float], k: int = 10) -> float:
    """Normalised discounted cumulative gain with gains from ``relevant``."""
    gains = relevant if isinstance(relevant, Mapping) else {d: 1.0 for d in relevant}
    dcg = sum(gains.get(doc, 0.0) / math.log2(rank + 1) for rank, doc in enumerate(ranked[:k], start=1))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def dedupe(ranked: Sequence[str]) -> list[str]:
    """Document ids in order of first appearance (passages -> documents)."""
    seen: set[str] = set()
    out = []
    for doc in ranked:
        if doc not in seen:
            seen.add(doc)
            out.append(doc)
    return out
