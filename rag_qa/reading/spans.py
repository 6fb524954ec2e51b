"""Pure span decoding: start/end logits and token offsets in, character spans out.

No model here, so every rule (context only, maximum length, no-answer, whole
words) is tested on hand-made logits.

Whole words: a tokenizer cuts a word into pieces (``DPKG`` into ``DP ##KG``,
``DPKG_FRONTEND_LOCKED`` into a dozen), and the model may start or end a span
on any piece. Given the context, a span that starts or ends inside a word is
widened to the whole word (:func:`word_bounds`). A word is a run of letters,
digits and underscores; a number keeps its separators (``3,086,000``,
``33.7``); a CJK ideograph or kana is a word by itself. Anything else
separates words and is never pulled in: spaces, punctuation after a word
(``.`` ``,`` ``;`` ``)``), and the ``/`` ``-`` ``'`` between words, so
``audio/x-midi`` is three words and ``x-midi`` may be a span of its own, as
``16`` may be in ``16-bit`` (SQuAD's answers often are such a part: widening
across ``-`` and ``/`` would change twice as many of its gold answers).
Spans that become the same are one span, with the best score.

One block: a span never crosses a blank line. Extracted text puts every
block (a paragraph, a list item, a table row) after a blank line, so a span
across one joins the end of a row to the start of the next (``4; meaning: the
input format is not supported. status: 5``); such spans are dropped.
"""

from __future__ import annotations

import re
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


# Scripts written without spaces, whose characters the tokenizer reads one by one
# (CJK ideographs, kana): each character is a word of its own.
_UNSPACED = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F))


def _is_word_char(ch: str) -> bool:
    if ch == "_":
        return True
    return ch.isalnum() and not any(lo <= ord(ch) <= hi for lo, hi in _UNSPACED)


def _joined(text: str, left: int, right: int) -> bool:
    """Whether the characters at ``left`` and ``right`` (adjacent, or around one
    number separator) belong to one word."""
    if left < 0 or right >= len(text):
        return False
    if right == left + 1:
        return _is_word_char(text[left]) and _is_word_char(text[right])
    return text[left].isdigit() and text[left + 1] in ".," and text[right].isdigit()


def word_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` of ``text`` widened to the whole words it starts and ends in."""
    while start > 0 and (_joined(text, start - 1, start) or _joined(text, start - 2, start)):
        start -= 1 if _joined(text, start - 1, start) else 2
    while end < len(text) and (_joined(text, end - 1, end) or _joined(text, end - 1, end + 1)):
        end += 1 if _joined(text, end - 1, end) else 2
    return start, end


_BLOCK_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")


def whole_word_spans(spans: Sequence[Span], context: str) -> list[Span]:
    """``spans`` widened to whole words of ``context``; spans that become the same
    are kept once, with their best score. Best first."""
    best: dict[tuple[int, int], Span] = {}
    for span in spans:
        start, end = word_bounds(context, span.start, span.end)
        if _BLOCK_BREAK.search(context, start, end):
            continue
        if (start, end) not in best or span.score > best[start, end].score:
            best[start, end] = Span(start, end, span.score, span.window)
    return sorted(best.values(), key=lambda sp: (-sp.score, sp.start, sp.end))


def decode_window(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: Sequence[tuple[int, int] | None],
    max_answer_tokens: int = 30,
    top_n: int = 20,
    window: int = 0,
    context: str | None = None,
) -> tuple[list[Span], float]:
    """Best spans of one window, and its no-answer score.

    ``offsets[i]`` is the character span of token ``i`` in the context, or
    ``None`` for tokens outside the context (question, special tokens,
    padding). A span starts and ends on context tokens, ends at or after
    its start, and is at most ``max_answer_tokens`` long. The no-answer
    score is the score of the span (0, 0): the [CLS] token. Given the
    ``context`` itself, spans are widened to whole words (:func:`whole_word_spans`).
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
    if context is not None:
        return whole_word_spans(spans, context), null_score
    spans.sort(key=lambda sp: (-sp.score, sp.start, sp.end))
    return spans, null_score


def softmax(scores: Sequence[float], temperature: float = 1.0) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64) / max(temperature, 1e-6)
    if values.size == 0:
        return values
    values = np.exp(values - values.max())
    return values / values.sum()
