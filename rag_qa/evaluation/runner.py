"""``ragqa eval``: retrieval quality per mode, reader quality, and end to end.

Data sets:

- SQuAD JSON: the corpus is the paragraphs, each question's relevant
  document is its own paragraph (SQuAD-open). ``held_out`` keeps only the
  articles every ragqa training job holds out.
- a BEIR folder: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rag_qa.data import QAExample, held_out_role, read_beir, read_squad, split_by_article, squad_paragraphs
from rag_qa.errors import InputError
from rag_qa.evaluation.metrics import squad_scores
from rag_qa.evaluation.retrieval_metrics import dedupe, mrr_at_k, ndcg_at_k, recall_at_k

RECALL_KS = (1, 5, 20, 100)


@dataclass
class EvalSet:
    name: str
    corpus: list[dict[str, str]]  # id, title, text
    queries: list[tuple[str, str]]  # (query id, text)
    qrels: dict[str, dict[str, float]]  # query id -> {doc id: relevance}
    examples: list[QAExample] = field(default_factory=list)  # SQuAD only: for the reader


def squad_eval_set(
    path: str | Path, held_out: bool = False, limit: int | None = None, seed: int = 0, role: str = "test"
) -> EvalSet:
    """Questions with their paragraphs as the corpus. ``held_out``: the
    paragraphs of the held-out articles, and the questions of one half of
    them (``role``, see :func:`held_out_role`)."""
    examples = read_squad(path)
    if held_out:
        examples = split_by_article(examples)[1]
    paragraphs = squad_paragraphs(examples)
    doc_of = {context: f"p{i}" for i, context in enumerate(paragraphs)}
    corpus = [{"id": doc_of[context], "title": title, "text": context} for context, title in paragraphs.items()]
    if held_out:
        examples = [e for e in examples if held_out_role(e.qid) == role]
    if limit and len(examples) > limit:
        examples = random.Random(seed).sample(examples, limit)
    return EvalSet(
        name=Path(path).name + (f" (held-out articles, {role} half)" if held_out else ""),
        corpus=corpus,
        queries=[(e.qid, e.question) for e in examples],
        qrels={e.qid: {doc_of[e.context]: 1.0} for e in examples},
        examples=examples,
    )


def beir_eval_set(
    folder: str | Path, split: str = "test", limit: int | None = None, seed: int = 0, query_ids: set[str] | None = None
) -> EvalSet:
    beir = read_beir(folder, split)
    queries = [(q, text) for q, text in beir.queries if query_ids is None or q in query_ids]
    if limit and len(queries) > limit:
        queries = random.Random(seed).sample(queries, limit)
    return EvalSet(
        name=f"{Path(folder).name} ({split})",
        corpus=beir.corpus,
        queries=queries,
        qrels={q: beir.qrels[q] for q, _ in queries},
    )


def ensure_index(eval_set: EvalSet, index_dir: Path, encoder: str | Path | None, show_progress: bool):
    from rag_qa.retrieval.builder import build_index
    from rag_qa.retrieval.index import Index

    index_dir.mkdir(parents=True, exist_ok=True)
    corpus_file = index_dir / ".corpus.jsonl"
    corpus_file.write_text(
        "\n".join(json.dumps(d, ensure_ascii=False) for d in eval_set.corpus) + "\n", encoding="utf-8"
    )
    build_index([corpus_file], index_dir, encoder=encoder, show_progress=show_progress)
    return Index.load(index_dir, encoder=encoder)


def retrieval_scores(index, eval_set: EvalSet, mode: str, batch: int = 64) -> dict[str, float]:
    depth = max(RECALL_KS) * 2
    rankings = []
    start = time.perf_counter()
    texts = [q for _, q in eval_set.queries]
    for i in range(0, len(texts), batch):
        for hits in index.search_batch(texts[i : i + batch], k=depth, mode=mode):
            rankings.append(dedupe([str(h.passage.metadata.get("id")) for h in hits]))
    seconds = time.perf_counter() - start
    out: dict[str, float] = {}
    rel = [set(eval_set.qrels[qid]) for qid, _ in eval_set.queries]
    for k in RECALL_KS:
        out[f"recall@{k}"] = float(np.mean([recall_at_k(r, g, k) for r, g in zip(rankings, rel)]))
    out["mrr@10"] = float(np.mean([mrr_at_k(r, g, 10) for r, g in zip(rankings, rel)]))
    out["ndcg@10"] = float(
        np.mean([ndcg_at_k(r, eval_set.qrels[qid], 10) for r, (qid, _) in zip(rankings, eval_set.queries)])
    )
    out["queries_per_s"] = len(texts) / seconds if seconds else 0.0
    return out


def run_eval(
    eval_set: EvalSet,
    index_dir: str | Path | None = None,
    modes: Sequence[str] = ("bm25", "dense", "hybrid"),
    reader: Any = None,
    e2e_mode: str = "hybrid",
    encoder: str | Path | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Everything ``ragqa eval`` reports, as a dict."""
    if not eval_set.queries:
        raise InputError(f"{eval_set.name} has no questions to evaluate")
    with tempfile.TemporaryDirectory() as tmp:
        index = ensure_index(eval_set, Path(index_dir) if index_dir else Path(tmp) / "index", encoder, show_progress)
        results: dict[str, Any] = {
            "dataset": eval_set.name,
            "questions": len(eval_set.queries),
            "documents": len(eval_set.corpus),
            "passages": len(index),
        }
        results["modes"] = {mode: retrieval_scores(index, eval_set, mode) for mode in modes}
        if reader is not None and eval_set.examples:
            from rag_qa.evaluation.reader_eval import predict_gold

            refs = {e.qid: list(e.answer_texts) for e in eval_set.examples}
            start = time.perf_counter()
            gold = squad_scores(predict_gold(reader, eval_set.examples), refs)
            results["reader_gold_passage"] = {
                "exact_match": gold["exact_match"],
                "f1": gold["f1"],
                "passages_per_s": len(refs) / (time.perf_counter() - start),
            }
            # Open-domain QA is scored on the top answer; the same answers with the
            # reader's no-answer threshold applied (an abstention counts as wrong)
            # show what `ragqa ask` returns.
            from rag_qa.pipeline import RagQA

            qa, threshold = RagQA(index, reader), reader.config.no_answer_threshold
            top, kept, without = {}, {}, {}
            for e in eval_set.examples:
                # the best 10 passages, and the best 10 of the others: as if the gold paragraph were not indexed
                prepared = qa.prepare(
                    e.question, top_k_passages=20, top_k_answers=1, mode=e2e_mode, no_answer_threshold=float("-inf")
                )
                gold_docs = set(eval_set.qrels[e.qid])
                others = [h for h in prepared.hits if str(h.passage.metadata.get("id")) not in gold_docs]
                result, removed = qa.read_prepared(
                    [replace(prepared, hits=prepared.hits[:10]), replace(prepared, hits=others[:10])]
                )
                top[e.qid] = result.answers[0].text if result.answers else ""
                kept[e.qid] = top[e.qid] if result.no_answer_margin >= threshold else ""
                without[e.qid] = (
                    removed.answers[0].text if removed.answers and removed.no_answer_margin >= threshold else ""
                )
            e2e, strict, rest = squad_scores(top, refs), squad_scores(kept, refs), squad_scores(without, refs)
            results["end_to_end"] = {
                "mode": e2e_mode,
                "passages": 10,
                "exact_match": e2e["exact_match"],
                "f1": e2e["f1"],
                "with_threshold": {
                    "no_answer_threshold": threshold,
                    "answered": sum(1 for t in kept.values() if t) / len(kept),
                    "exact_match": strict["exact_match"],
                    "f1": strict["f1"],
                },
                # What a user gets for a question the documents cannot answer although they are on its topic.
                "gold_removed": {
                    "abstained": sum(1 for t in without.values() if not t) / len(without),
                    "exact_match": rest["exact_match"],  # answered right from another paragraph
                },
            }
    return results


def format_table(results: dict[str, Any]) -> str:
    header = ["mode"] + [f"R@{k}" for k in RECALL_KS] + ["MRR@10", "nDCG@10", "queries/s"]
    lines = [
        f"{results['dataset']}: {results['questions']:,} questions, {results['documents']:,} documents, "
        f"{results['passages']:,} passages",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for mode, m in results["modes"].items():
        cells = (
            [mode]
            + [f"{m[f'recall@{k}']:.3f}" for k in RECALL_KS]
            + [f"{m['mrr@10']:.3f}", f"{m['ndcg@10']:.3f}", f"{m['queries_per_s']:.0f}"]
        )
        lines.append("| " + " | ".join(cells) + " |")
    if "reader_gold_passage" in results:
        g = results["reader_gold_passage"]
        lines.append(
            f"\nReader on the gold passage: EM {g['exact_match']:.1f}, F1 {g['f1']:.1f} ({g['passages_per_s']:.1f} "
            "passages/s)"
        )
    if "end_to_end" in results:
        e = results["end_to_end"]
        lines.append(
            f"End to end ({e['mode']}, top-{e['passages']} passages, top answer): EM {e['exact_match']:.1f}, F1 "
            f"{e['f1']:.1f}"
        )
        t = e.get("with_threshold")
        if t:
            lines.append(
                f"  with the no-answer threshold ({t['no_answer_threshold']:g}): answers {100 * t['answered']:.1f}% of "
                "questions, "
                f"EM {t['exact_match']:.1f}, F1 {t['f1']:.1f} (abstentions count as wrong)"
            )
        g = e.get("gold_removed")
        if g:
            lines.append(
                "  with each question's own paragraph left out of its passages: abstains on "
                f"{100 * g['abstained']:.1f}% of questions (EM {g['exact_match']:.1f}: right from another paragraph)"
            )
    return "\n".join(lines)


def plot_recall(results: dict[str, Any], path: str | Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise InputError("--plot needs matplotlib: pip install matplotlib") from exc
    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, m in results["modes"].items():
        ax.plot(RECALL_KS, [m[f"recall@{k}"] for k in RECALL_KS], marker="o", label=mode)
    ax.set_xscale("log")
    ax.set_xticks(RECALL_KS, [str(k) for k in RECALL_KS])
    ax.set_xlabel("k (documents)")
    ax.set_ylabel("recall@k")
    ax.set_title(results["dataset"])
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
