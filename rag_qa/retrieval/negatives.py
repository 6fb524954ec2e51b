"""Answerless training paragraphs a retriever would show: for each question,
the paragraphs of other articles that BM25 ranks highest for it and that
hold none of its answers (the hard negatives open-domain readers train on).
"""

from __future__ import annotations

import random

import numpy as np

from rag_qa.data import QAExample, unanswerable
from rag_qa.text import normalize_answer


def retrieved_answerless_examples(
    examples: list[QAExample],
    per_question: float,
    seed: int,
    pool: list[QAExample] | None = None,
    depth: int = 10,
) -> list[QAExample]:
    """No-answer examples from BM25: each question paired with the
    best-ranked paragraphs of *other* articles (the top ``depth`` of them,
    its own article left out before ranking) whose normalised text holds
    none of its answers; fewer where fewer match its words.

    ``per_question`` paragraphs per question on average (the fraction draws
    one more with that probability). ``pool`` gives the paragraphs searched
    (default: those of ``examples``). Paragraphs of the question's own
    article are left to :func:`rag_qa.data.answerless_examples`.
    """
    if per_question <= 0:
        return []
    from rag_qa.retrieval.bm25 import BM25Retriever

    contexts: list[str] = []
    titles: list[str] = []
    seen: set[str] = set()
    for e in pool if pool is not None else examples:
        if e.context not in seen:
            seen.add(e.context)
            contexts.append(e.context)
            titles.append(e.title)
    if not contexts:
        return []
    bm25 = BM25Retriever.build(contexts)
    article_of: dict[str, int] = {}
    articles = np.asarray([article_of.setdefault(t, len(article_of)) for t in titles])
    rng = random.Random(seed)
    normalised: dict[int, str] = {}
    negatives = []
    for e in examples:
        if e.is_impossible or not e.answer_texts:
            continue
        n = int(per_question) + (rng.random() < per_question - int(per_question))
        if n == 0:
            continue
        answers = [a for a in (normalize_answer(t) for t in e.answer_texts) if a]
        # the question's own article is left out before ranking, so its paragraphs take no place in the top
        others = articles != article_of.get(e.title, -1)
        rows, _ = bm25.search(e.question, depth, mask=others)
        taken = 0
        for row in rows.tolist():
            if taken >= n:
                break
            text = normalised.get(row)
            if text is None:
                text = normalised[row] = normalize_answer(contexts[row])
            if any(a in text for a in answers):
                continue
            negatives.append(unanswerable(e, f"{e.qid}-bm25neg{taken}", titles[row], contexts[row]))
            taken += 1
    return negatives


__all__ = ["retrieved_answerless_examples"]
