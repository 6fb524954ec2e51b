"""Pure span decoding: start/end logits and token offsets in, character spans out.

No model here, so every rule (context only, maximum length, no-answer) is
tested on hand-made logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Span:
    """A candidate answer in one window: character offsets into the context."""

    start: int
    end: int
    score: float  # start logit + end logit
    window: int = 0


def decode_window(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: Sequence[tuple[int, int] | None],
    max_answer_tokens: int = 30,
    top_n: int = 20,
    window: int = 0,
) -> tuple[list[Span], float]:
    """Best spans of one window, and its no-answer score.

    ``offsets[i]`` is the character span of token ``i`` in the context, or
    ``None`` for tokens outside the context (question, special tokens,
    padding). A span starts and ends on context tokens, ends at or after
    its start, and is at most ``max_answer_tokens`` long. The no-answer
    score is the score of the span (0, 0): the [CLS] token.
    """
    start_logits = np.asarray(start_logits, dtype=np.float64)
    end_logits = np.asarray(end_logits, dtype=np.float64)
    in_context = np.array([o is not None for o in offsets] + [False] * (len(start_logits) - len(offsets)))
    null_score = float(start_logits[0] + end_logits[0])
    if not in_context.any():
        return [], null_score
    masked_start = np.where(in_context, start_logits, -np.inf)
    masked_end = np.where(in_context, end_logits, -np.inf)
    n = min(top_n, int(in_context.sum()))
    starts = np.argsort(-masked_start, kind="stable")[:n]
    ends = np.argsort(-masked_end, kind="stable")[:n]
    spans = []
    for s in starts:
        for e in ends:
            if e < s or e - s + 1 > max_answer_tokens:
                continue
            spans.append(Span(offsets[s][0], offsets[e][1], float(start_logits[s] + end_logits[e]), window))
    spans.sort(key=lambda sp: (-sp.score, sp.start, sp.end))
    return spans, null_score


def softmax(scores: Sequence[float], temperature: float = 1.0) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64) / max(temperature, 1e-6)
    if values.size == 0:
        return values
    values = np.exp(values - values.max())
    return values / values.sum()
