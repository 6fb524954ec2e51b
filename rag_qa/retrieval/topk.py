"""The ``k`` best of an array of scores, in a stable order."""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indexes and values of the ``k`` largest scores, best first (ties by index)."""
    candidates = np.flatnonzero(keep) if keep is not None else np.arange(len(scores))
    if candidates.size == 0 or k <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    values = scores[candidates]
    if candidates.size > k:
        part = np.argpartition(-values, k - 1)[:k]
        candidates, values = candidates[part], values[part]
    order = np.lexsort((candidates, -values))
    return candidates[order], values[order].astype(np.float32)
