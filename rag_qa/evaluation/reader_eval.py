"""Reader quality on gold passages: SQuAD EM/F1 and passages per second, and,
with answerless paragraphs, how well the reader abstains (SQuAD v2.0 metrics)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from rag_qa.data import QAExample, answerless_examples, held_out_half, read_squad
from rag_qa.errors import InputError
from rag_qa.evaluation.metrics import exact_match, f1, squad_scores
from rag_qa.reading.reader import Reader
from rag_qa.reading.scoring import rank_answers


def predict_gold(reader: Reader, examples: list[QAExample], batch: int = 32) -> dict[str, str]:
    """The best span of each question in its own (gold) context."""
    return {qid: text for qid, (text, _) in predict_with_margin(reader, examples, batch).items()}


def predict_with_margin(reader: Reader, examples: list[QAExample], batch: int = 32) -> dict[str, tuple[str, float]]:
    """The best span of each question in its context, with the margin of the
    best span over the no-answer score (the quantity the threshold is compared to)."""
    predictions = {}
    for i in range(0, len(examples), batch):
        chunk = examples[i : i + batch]
        spans, nulls = reader.pair_spans([e.question for e in chunk], [e.context for e in chunk])
        for e, found, null in zip(chunk, spans, nulls):
            best = max(found, key=lambda s: s.score, default=None)
            ranked = rank_answers(
                [e.context[s.start : s.end] for s in found], [s.score for s in found], np.zeros(len(found)), null
            )
            predictions[e.qid] = (e.context[best.start : best.end] if best else "", ranked.margin)
    return predictions


def evaluate_reader(
    reader: Reader,
    data_path: str | Path,
    limit: int | None = None,
    held_out_only: bool = False,
    answerless: float = 0.0,
    answerless_from: str = "article",
) -> dict[str, Any]:
    """EM/F1 on gold passages. With ``answerless`` > 0 (or a SQuAD v2.0 file),
    also pairs questions with answerless paragraphs and reports abstention
    (:func:`abstention_scores`). ``answerless_from``: ``"article"`` takes
    other paragraphs of the question's article, ``"retrieved"`` the
    paragraphs of other articles that BM25 ranks highest for the question
    (both checked to hold none of its answers)."""
    examples = read_squad(data_path)
    if held_out_only:  # train-reader chooses checkpoints on the other half
        examples = held_out_half(examples, "test")
    if limit:
        examples = examples[:limit]
    answerable = [e for e in examples if not e.is_impossible]
    if answerless_from == "article":
        paired = answerless_examples(answerable, answerless, seed=0)
    elif answerless_from == "retrieved":
        from rag_qa.retrieval.negatives import retrieved_answerless_examples

        paired = retrieved_answerless_examples(answerable, answerless, seed=0)
    else:
        raise InputError(f"answerless_from must be 'article' or 'retrieved', not {answerless_from!r}")
    unanswerable = [e for e in examples if e.is_impossible] + paired
    reader.warm_up()
    start = time.perf_counter()
    predictions = predict_with_margin(reader, answerable + unanswerable)
    seconds = time.perf_counter() - start
    scores = squad_scores(
        {e.qid: predictions[e.qid][0] for e in answerable}, {e.qid: list(e.answer_texts) for e in answerable}
    )
    results = {
        "exact_match": scores["exact_match"],
        "f1": scores["f1"],
        "questions": scores["count"],
        "seconds": seconds,
        "passages_per_s": (len(answerable) + len(unanswerable)) / seconds if seconds else 0.0,
        "reader": str(reader.path),
        "max_seq_length": reader.config.max_seq_length,
    }
    if unanswerable:
        results["abstention"] = abstention_scores(
            answerable, unanswerable, predictions, reader.config.no_answer_threshold
        )
    return results


def abstention_scores(
    answerable: list[QAExample],
    unanswerable: list[QAExample],
    predictions: dict[str, tuple[str, float]],
    threshold: float,
) -> dict[str, Any]:
    """SQuAD v2.0 scores: HasAns EM/F1, NoAns accuracy and overall EM/F1, at
    ``threshold`` (the reader's) and at the threshold that maximises overall EM.

    The reader answers when the margin of its best span over no-answer
    reaches the threshold; an abstention is right on an unanswerable question
    and wrong on an answerable one.
    """
    margins = np.asarray([predictions[e.qid][1] for e in answerable + unanswerable])
    has_em = np.asarray([max(exact_match(predictions[e.qid][0], g) for g in e.answer_texts) for e in answerable])
    has_f1 = np.asarray([max(f1(predictions[e.qid][0], g) for g in e.answer_texts) for e in answerable])
    n_has = len(answerable)

    def at(t: float) -> dict[str, float]:
        answered = margins >= t
        no_ans = float(np.mean(~answered[n_has:])) if len(unanswerable) else 0.0
        em = np.concatenate([np.where(answered[:n_has], has_em, 0.0), (~answered[n_has:]).astype(float)])
        f = np.concatenate([np.where(answered[:n_has], has_f1, 0.0), (~answered[n_has:]).astype(float)])
        return {
            "threshold": float(t),
            "has_ans_exact_match": 100 * float(np.mean(em[:n_has])) if n_has else 0.0,
            "has_ans_f1": 100 * float(np.mean(f[:n_has])) if n_has else 0.0,
            "no_ans_accuracy": 100 * no_ans,
            "exact_match": 100 * float(np.mean(em)),
            "f1": 100 * float(np.mean(f)),
            "answered_answerable": 100 * float(np.mean(answered[:n_has])) if n_has else 0.0,
        }

    rows = [at(t) for t in np.concatenate([[-np.inf], np.unique(margins), [np.inf]])]
    always = rows[0]["has_ans_exact_match"]
    return {
        "answerable": n_has,
        "unanswerable": len(unanswerable),
        "at_reader_threshold": at(threshold),
        "at_best_threshold": max(rows, key=lambda r: (r["exact_match"], r["f1"])),
        # the most abstention that costs answerable questions at most 2 EM points
        "at_2_points_has_ans_cost": max(
            (r for r in rows if r["has_ans_exact_match"] >= always - 2), key=lambda r: r["no_ans_accuracy"]
        ),
        "always_abstain_exact_match": 100 * len(unanswerable) / (n_has + len(unanswerable)),
    }
