"""Fit a reader's answer settings on held-out questions, open-domain style.

Each question is asked of an index built over held-out paragraphs: the
retriever brings the top passages, the reader scores spans in all of them.
On one half of the questions we choose

- ``retriever_weight``: the bonus, in logits, for a passage's retriever score
  (relative to the best passage's), as BERTserini mixes both scores;
- ``temperature``: so that the confidence shown for the top answer is
  calibrated (it minimises the log-loss of "the top answer is right");
- ``no_answer_threshold``: the margin of the best span over the no-answer
  score below which ragqa abstains: the highest that still keeps 95% of the
  answers the reader gets right, so that it rarely hides a right answer; the
  report says how often it then abstains on the same questions asked with
  their own article filtered out (no answer in the documents);

and the other half reports exact match and calibration (ECE) with them.
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag_qa.data import QAExample, article_title, held_out_role, read_squad, split_by_article, squad_paragraphs
from rag_qa.evaluation.metrics import exact_match
from rag_qa.reading.reader import READER_SETTINGS, Reader
from rag_qa.reading.scoring import rank_answers, relative_retriever_scores

logger = logging.getLogger(__name__)

WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
# The no-answer threshold keeps this share of the answers the reader gets right.
KEEP_RIGHT_ANSWERS = 0.95


@dataclass
class Candidates:
    """Every span the reader proposed for one question, over its top passages."""

    texts: list[str]
    logits: np.ndarray
    retriever: np.ndarray  # the passage's retriever score / best passage's
    null: float
    gold: list[str]
    positions: list[tuple[int, int, int]]  # (passage, start, end) of each candidate
    nulls: list[float]  # each passage's no-answer score, in retrieval order (``null`` is their lowest)
    passages: list  # the passages read, best first

    def first(self, k: int) -> "Candidates":
        """The candidates of the first ``k`` passages alone, as if only those were read."""
        keep = [i for i, (passage, _, _) in enumerate(self.positions) if passage < k]
        return Candidates(
            [self.texts[i] for i in keep],
            self.logits[keep],
            self.retriever[keep],
            float(min(self.nulls[:k])) if self.nulls[:k] else np.inf,
            self.gold,
            [self.positions[i] for i in keep],
            self.nulls[:k],
            self.passages[:k],
        )


def collect(reader: Reader, index, examples: list[QAExample], k: int, exclude_gold: bool) -> list[Candidates]:
    out = []
    for e in examples:
        hits = index.search(e.question, k=k if not exclude_gold else k * 5, mode="hybrid")
        if exclude_gold:
            hits = [h for h in hits if h.passage.title != article_title(e.title)][:k]
        passages = [h.passage for h in hits]
        relative = relative_retriever_scores([h.score for h in hits], len(hits))
        per_passage, null = reader.spans(e.question, [p.text for p in passages]) if passages else ([], [np.inf])
        texts, logits, retr, positions = [], [], [], []
        for i, spans in enumerate(per_passage):
            for sp in spans:
                texts.append(passages[i].text[sp.start : sp.end])
                positions.append((i, sp.start, sp.end))
                logits.append(sp.score)
                retr.append(relative[i])
        out.append(
            Candidates(
                texts,
                np.asarray(logits),
                np.asarray(retr),
                float(min(null)) if len(null) else np.inf,
                list(e.answer_texts),
                positions,
                [float(x) for x in null],
                passages,
            )
        )
    return out


def top_answer(c: Candidates, w: float, t: float = 1.0) -> tuple[str, float]:
    """The top answer and its probability, scored as the reader scores them."""
    prob, index = rank_answers(c.texts, c.logits, c.retriever, c.null, w, t, positions=c.positions).answers[0]
    return c.texts[index], prob


def no_answer_margin(c: Candidates) -> float:
    """The best span's score over the lowest no-answer score, what the threshold is compared with."""
    return rank_answers(c.texts, c.logits, c.retriever, c.null, positions=c.positions).margin


def exact(c: Candidates, text: str) -> float:
    """Whether ``text`` matches one of the question's answers exactly (1.0 or 0.0)."""
    return max(exact_match(text, g) for g in c.gold)


def ece(confidences: list[float], correct: list[float], bins: int = 10) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error and the reliability table."""
    conf, corr = np.asarray(confidences), np.asarray(correct)
    table, err = [], 0.0
    edges = np.linspace(0, 1, bins + 1)
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (conf >= lo) & ((conf < hi) | (hi == 1.0))
        if sel.any():
            table.append(
                {
                    "from": float(lo),
                    "to": float(hi),
                    "count": int(sel.sum()),
                    "confidence": float(conf[sel].mean()),
                    "accuracy": float(corr[sel].mean()),
                }
            )
            err += sel.sum() / len(conf) * abs(conf[sel].mean() - corr[sel].mean())
    return float(err), table


def ece_interval(
    confidences: list[float], correct: list[float], bins: int = 10, rounds: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """A 95% basic bootstrap interval of :func:`ece` over the questions. The error of a
    resample runs above that of the sample (each bin's gap is taken as an absolute value),
    so the interval is the sample's error minus the resamples' spread around it,
    ``(2e - q97.5, 2e - q2.5)``, clipped at 0, not the resamples' percentiles themselves.
    On a few hundred questions it is a few hundredths wide."""
    conf, corr = np.asarray(confidences), np.asarray(correct)
    if not len(conf):
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    error = ece(conf, corr, bins)[0]
    draws = [ece(conf[i], corr[i], bins)[0] for i in rng.integers(0, len(conf), size=(rounds, len(conf)))]
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(max(0.0, 2 * error - high)), float(max(0.0, 2 * error - low))


def held_out_index(held: list[QAExample], directory: Path, show_progress: bool = True):
    """An index in ``directory`` of the paragraphs of the held-out questions ``held``, titled by their article."""
    from rag_qa.retrieval.index import Index

    corpus = directory / "heldout.jsonl"
    paragraphs = squad_paragraphs(held)
    corpus.write_text(
        "\n".join(json.dumps({"id": str(i), "title": t, "text": c}) for i, (c, t) in enumerate(paragraphs.items()))
        + "\n"
    )
    return Index.build([corpus], directory / "index", show_progress=show_progress)


def tune(
    reader: Reader, data_path: str | Path, questions: int = 400, k: int = 10, seed: int = 0, show_progress: bool = True
) -> dict[str, Any]:
    """Fit the settings on held-out articles of ``data_path``; returns them with a report."""
    from scipy.optimize import minimize_scalar

    held = split_by_article(read_squad(data_path))[1]
    pool = [e for e in held if held_out_role(e.qid) == "tune"]  # `ragqa eval --held-out` reports on the other half
    rng = random.Random(seed)
    sample = rng.sample(pool, min(questions, len(pool)))
    half = len(sample) // 2
    with tempfile.TemporaryDirectory() as tmp:
        index = held_out_index(held, Path(tmp), show_progress=show_progress)
        answerable = collect(reader, index, sample, k, exclude_gold=False)
        unanswerable = collect(reader, index, sample, k, exclude_gold=True)

    fit, test = answerable[:half], answerable[half:]
    em_by_w = {w: float(np.mean([exact(c, top_answer(c, w)[0]) if c.texts else 0.0 for c in fit])) for w in WEIGHTS}
    weight = max(WEIGHTS, key=lambda w: (em_by_w[w], -w))

    def log_loss(log_t: float) -> float:
        t = float(np.exp(log_t))
        total = 0.0
        for c in fit:
            if not len(c.texts):
                continue
            text, p = top_answer(c, weight, t)
            p = min(max(p, 1e-6), 1 - 1e-6)
            total -= np.log(p) if exact(c, text) else np.log(1 - p)
        return total

    temperature = float(np.exp(minimize_scalar(log_loss, bounds=(-3, 3), method="bounded").x))

    right = sorted(no_answer_margin(c) for c in fit if c.texts and exact(c, top_answer(c, weight, temperature)[0]))
    threshold = float(right[int((1 - KEEP_RIGHT_ANSWERS) * len(right))]) if right else float("-inf")

    def rates(cands: list[Candidates], unanswerable: list[Candidates]) -> dict[str, float]:
        ok = [
            no_answer_margin(c) >= threshold
            for c in cands
            if c.texts and exact(c, top_answer(c, weight, temperature)[0])
        ]
        return {
            "kept_right_answers": float(np.mean(ok)) if ok else 0.0,
            "answered_answerable": float(np.mean([no_answer_margin(c) >= threshold for c in cands])),
            "abstained_unanswerable": float(np.mean([no_answer_margin(c) < threshold for c in unanswerable])),
        }

    confidences, correct = [], []
    for c in test:
        if not c.texts:
            continue
        text, p = top_answer(c, weight, temperature)
        confidences.append(p)
        correct.append(exact(c, text))
    answered = [c for c in test if c.texts]
    raw = [top_answer(c, weight, 1.0)[1] for c in answered]
    # the settings the reader had before this fit, on the same report questions
    had_w, had_t = reader.config.retriever_weight or 0.0, reader.config.temperature or 1.0
    had = [top_answer(c, had_w, had_t) for c in answered]
    had_confidences = [p for _, p in had]
    had_correct = [exact(c, text) for c, (text, _) in zip(answered, had)]
    report = {
        "questions": {"fit": len(fit), "test": len(test)},
        "passages_per_question": k,
        "em_by_retriever_weight_fit": em_by_w,
        "retriever_weight": weight,
        "temperature": temperature,
        "no_answer_threshold": threshold if np.isfinite(threshold) else -1e9,
        "test_em_top1": 100 * float(np.mean(correct)) if correct else 0.0,
        "test_em_reader_only": 100
        * float(np.mean([exact(c, top_answer(c, 0.0, temperature)[0]) if c.texts else 0.0 for c in test])),
        "test_ece_before": ece(raw, correct)[0],
        "test_ece_after": ece(confidences, correct)[0],
        "test_ece_after_95": ece_interval(confidences, correct),
        "test_reliability": ece(confidences, correct)[1],
        "test_previous_settings": {
            "retriever_weight": had_w,
            "temperature": had_t,
            "em_top1": 100 * float(np.mean(had_correct)) if had_correct else 0.0,
            "ece": ece(had_confidences, had_correct)[0],
            "ece_95": ece_interval(had_confidences, had_correct),
        },
        "test_no_answer": rates(test, unanswerable[half:]),
    }
    return report


def save_settings(reader_dir: Path, report: dict[str, Any]) -> None:
    settings = {k: report[k] for k in ("temperature", "retriever_weight", "no_answer_threshold")}
    settings["fitted_on"] = "held-out SQuAD v1.1 train articles, open-domain top-10 hybrid retrieval"
    (reader_dir / READER_SETTINGS).write_text(json.dumps(settings, indent=2) + "\n")
    (reader_dir / "calibration.json").write_text(json.dumps(report, indent=2) + "\n")
