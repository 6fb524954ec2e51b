"""Training pairs for the encoder: SQuAD JSON, JSONL pairs and BEIR folders,
with a held-out split and BM25-mined hard negatives."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from rag_qa.data import BEIR_EVAL_FRACTION, beir_held_out, read_beir, read_squad, split_by_article, squad_paragraphs
from rag_qa.errors import InputError


@dataclass
class PairSet:
    """Queries with their positive documents over one corpus, split train/eval."""

    corpus: dict[str, str]  # doc id -> text (title prepended when there is one)
    train: list[tuple[str, str, list[str]]]  # (query, positive doc id, negative doc ids)
    eval_queries: dict[str, str] = field(default_factory=dict)  # query id -> text
    eval_qrels: dict[str, set[str]] = field(default_factory=dict)  # query id -> relevant doc ids
    eval_corpus: set[str] | None = None  # the doc ids held-out queries are searched over (None: all)


def _doc_text(title: str, text: str) -> str:
    return f"{title}\n{text}" if title else text


def from_squad(path: str | Path, held_out_percent: int = 5) -> PairSet:
    """Question -> its paragraph. Held-out articles (by title hash) become the eval set."""
    examples = read_squad(path)
    train, held = split_by_article(examples, held_out_percent)
    paragraphs = squad_paragraphs(examples)
    ids = {context: f"p{i}" for i, context in enumerate(paragraphs)}
    corpus = {ids[context]: _doc_text(title, context) for context, title in paragraphs.items()}
    pairs = PairSet(corpus=corpus, train=[(e.question, ids[e.context], []) for e in train])
    pairs.eval_queries = {e.qid: e.question for e in held}
    pairs.eval_qrels = {e.qid: {ids[e.context]} for e in held}
    # Searched over the held-out paragraphs only, as `ragqa eval --held-out` does.
    pairs.eval_corpus = {ids[e.context] for e in held}
    return pairs


def from_beir(
    folder: str | Path, split: str = "train", eval_fraction: float = BEIR_EVAL_FRACTION, seed: int = 0
) -> PairSet:
    """Each judged (query, document) pair of ``qrels/<split>.tsv``; the
    queries :func:`rag_qa.data.beir_held_out` draws are held out for evaluation."""
    beir = read_beir(folder, split)
    qids = sorted(q for q, _ in beir.queries)
    held = beir_held_out(qids, eval_fraction, seed)
    texts = dict(beir.queries)
    corpus = {d["id"]: _doc_text(d.get("title", ""), d["text"]) for d in beir.corpus}
    train = [(texts[q], doc, []) for q in qids if q not in held for doc in beir.qrels[q]]
    return PairSet(
        corpus=corpus,
        train=train,
        eval_queries={q: texts[q] for q in held},
        eval_qrels={q: set(beir.qrels[q]) for q in held},
    )


def from_jsonl(path: str | Path, eval_fraction: float = 0.1, seed: int = 0) -> PairSet:
    """Lines of ``{"query", "positive", "negative"?}`` (negative: a string or a list)."""
    corpus: dict[str, str] = {}
    ids: dict[str, str] = {}

    def doc_id(text: str) -> str:
        if text not in ids:
            ids[text] = f"d{len(ids)}"
            corpus[ids[text]] = text
        return ids[text]

    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                query, positive = row["query"], row["positive"]
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f'{path}:{lineno}: each line needs a JSON object with "query" and "positive"') from exc
            negatives = row.get("negative") or []
            negatives = [negatives] if isinstance(negatives, str) else list(negatives)
            rows.append((query, doc_id(positive), [doc_id(n) for n in negatives]))
    if not rows:
        raise InputError(f"{path} holds no pairs")
    rng = random.Random(seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    n_eval = int(len(rows) * eval_fraction)
    held = set(order[:n_eval])
    pairs = PairSet(corpus=corpus, train=[r for i, r in enumerate(rows) if i not in held])
    pairs.eval_queries = {f"q{i}": rows[i][0] for i in sorted(held)}
    pairs.eval_qrels = {f"q{i}": {rows[i][1]} for i in sorted(held)}
    return pairs


def load_pairs(
    source: str | Path, held_out_percent: int = 5, eval_fraction: float = BEIR_EVAL_FRACTION, seed: int = 0
) -> PairSet:
    source = Path(source)
    if source.is_dir():
        return from_beir(source, eval_fraction=eval_fraction, seed=seed)
    if source.suffix == ".jsonl":
        return from_jsonl(source, eval_fraction=eval_fraction, seed=seed)
    if source.name.endswith((".json", ".json.gz")):
        return from_squad(source, held_out_percent)
    raise InputError(f"{source}: pass a SQuAD .json/.json.gz file, a .jsonl of pairs, or a BEIR folder")


def mine_hard_negatives(pairs: PairSet, per_query: int = 1, skip_top: int = 0, depth: int = 30, seed: int = 0) -> None:
    """Add BM25 negatives: high-ranked documents that are not a positive of the query."""
    if per_query <= 0:
        return
    from rag_qa.retrieval.bm25 import BM25Retriever

    doc_ids = list(pairs.corpus)
    bm25 = BM25Retriever.build([pairs.corpus[d] for d in doc_ids])
    positives: dict[str, set[str]] = {}
    for query, pos, _ in pairs.train:
        positives.setdefault(query, set()).add(pos)
    rng = random.Random(seed)
    mined = []
    for query, pos, negs in pairs.train:
        rows, _ = bm25.search(query, depth)
        candidates = [doc_ids[r] for r in rows[skip_top:] if doc_ids[r] not in positives[query]]
        if not candidates:
            candidates = [d for d in rng.sample(doc_ids, min(len(doc_ids), 10)) if d not in positives[query]]
        mined.append((query, pos, negs + candidates[:per_query]))
    pairs.train = mined
