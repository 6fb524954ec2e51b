"""Choosing the hybrid fusion settings on held-out questions.

BM25 and dense candidates are retrieved once per question; every fusion
setting on the grid is then scored from them. Questions are split in two by
a hash of their id: settings are chosen on the *fit* half (by nDCG@10,
summed over the data sets given) and reported on the *test* half, so the
reported gain is not measured on the questions that chose it.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from rag_qa.config import FusionConfig
from rag_qa.errors import InputError
from rag_qa.evaluation.retrieval_metrics import dedupe, mrr_at_k, ndcg_at_k, recall_at_k
from rag_qa.retrieval.hybrid import rank_fused, reciprocal_rank_fusion, weighted_fusion

BM25_WEIGHTS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
RRF_KS = (10, 30, 60, 100)


@dataclass
class Candidates:
    """One question's BM25 and dense candidates (row -> score, best first) and its relevant documents."""

    qid: str
    bm25: dict[int, float]
    dense: dict[int, float]
    relevant: dict[str, float]


def grid() -> list[FusionConfig]:
    settings = [
        FusionConfig(method="rrf", rrf_k=k, bm25_weight=w, dense_weight=round(1 - w, 2))
        for k, w in itertools.product(RRF_KS, BM25_WEIGHTS)
    ]
    settings += [FusionConfig(method="weighted", bm25_weight=w, dense_weight=round(1 - w, 2)) for w in BM25_WEIGHTS]
    return settings


def in_fit_half(qid: str) -> bool:
    return hashlib.sha1(qid.encode("utf-8")).digest()[0] % 2 == 0


def collect(
    index, queries: Sequence[tuple[str, str]], qrels: dict[str, dict[str, float]], depth: int = 100, batch: int = 64
) -> list[Candidates]:
    """BM25 and dense candidates for every question, from one search each."""
    row_of = {p.passage_id: i for i, p in enumerate(index.passages)}
    out = []
    for i in range(0, len(queries), batch):
        chunk = queries[i : i + batch]
        texts = [q for _, q in chunk]
        bm25 = index.search_batch(texts, k=depth, mode="bm25")
        dense = index.search_batch(texts, k=depth, mode="dense")
        for (qid, _), b, d in zip(chunk, bm25, dense):
            out.append(
                Candidates(
                    qid,
                    {row_of[h.passage.passage_id]: h.score for h in b},
                    {row_of[h.passage.passage_id]: h.score for h in d},
                    qrels[qid],
                )
            )
    return out


def fuse(c: Candidates, setting: FusionConfig, k: int = 100) -> list[int]:
    if setting.method == "rrf":
        fused = reciprocal_rank_fusion(
            [list(c.bm25), list(c.dense)], k=setting.rrf_k, weights=[setting.bm25_weight, setting.dense_weight]
        )
    else:
        fused = weighted_fusion([c.bm25, c.dense], [setting.bm25_weight, setting.dense_weight])
    return [row for row, _ in rank_fused(fused, k)]


def score(cands: Sequence[Candidates], setting: FusionConfig, doc_of_row: Sequence[str]) -> dict[str, float]:
    ranked = [dedupe([doc_of_row[r] for r in fuse(c, setting)]) for c in cands]
    return {
        "ndcg@10": float(np.mean([ndcg_at_k(r, c.relevant, 10) for r, c in zip(ranked, cands)])),
        "mrr@10": float(np.mean([mrr_at_k(r, set(c.relevant), 10) for r, c in zip(ranked, cands)])),
        "recall@5": float(np.mean([recall_at_k(r, set(c.relevant), 5) for r, c in zip(ranked, cands)])),
        "recall@20": float(np.mean([recall_at_k(r, set(c.relevant), 20) for r, c in zip(ranked, cands)])),
    }


def describe(setting: FusionConfig) -> dict[str, Any]:
    out: dict[str, Any] = {
        "method": setting.method,
        "bm25_weight": setting.bm25_weight,
        "dense_weight": setting.dense_weight,
    }
    if setting.method == "rrf":
        out["rrf_k"] = setting.rrf_k
    return out


def tune(
    datasets: dict[str, tuple[list[Candidates], Sequence[str]]], current: FusionConfig = FusionConfig()
) -> dict[str, Any]:
    """Pick the setting with the best fit-half nDCG@10 summed over ``datasets``
    (name -> (candidates, document id of each index row)); report both halves."""
    halves = {
        name: ([c for c in cands if in_fit_half(c.qid)], [c for c in cands if not in_fit_half(c.qid)], docs)
        for name, (cands, docs) in datasets.items()
    }
    for name, (fit, test, _) in halves.items():
        if not fit or not test:
            raise InputError(
                f"{name} has too few held-out questions to both choose and report ({len(fit)} + {len(test)}): use a "
                "larger data set"
            )
    table = []
    for setting in grid():
        fit = {name: score(f, setting, docs) for name, (f, _, docs) in halves.items()}
        table.append((sum(m["ndcg@10"] for m in fit.values()), setting, fit))
    table.sort(key=lambda row: -row[0])
    best = table[0][1]
    report: dict[str, Any] = {"chosen": describe(best), "current": describe(current), "datasets": {}}
    for name, (fit, test, docs) in halves.items():
        report["datasets"][name] = {
            "questions": {"fit": len(fit), "test": len(test)},
            "test_chosen": score(test, best, docs),
            "test_current": score(test, current, docs),
            "test_bm25_only": score(test, FusionConfig(method="weighted", bm25_weight=1.0, dense_weight=0.0), docs),
            "test_dense_only": score(test, FusionConfig(method="weighted", bm25_weight=0.0, dense_weight=1.0), docs),
        }
    report["grid"] = [{**describe(s), "fit_ndcg@10_sum": total} for total, s, _ in table]
    return report


def format_report(report: dict[str, Any]) -> str:
    chosen = report["chosen"]
    lines = [f"Chosen on the fit halves: {chosen}", f"Current default: {report['current']}", ""]
    lines.append("| data set | test questions | fusion | nDCG@10 | MRR@10 | R@5 | R@20 |")
    lines.append("|---|---|---|---|---|---|---|")
    for name, d in report["datasets"].items():
        for label in ("chosen", "current", "bm25_only", "dense_only"):
            m = d[f"test_{label}"]
            lines.append(
                f"| {name} | {d['questions']['test']} | {label.replace('_', ' ')} | {m['ndcg@10']:.4f} | "
                f"{m['mrr@10']:.4f} | {m['recall@5']:.4f} | {m['recall@20']:.4f} |"
            )
    return "\n".join(lines)
