"""BM25Okapi on bm25s's sparse engine.

The term weights are those of rank-bm25's ``BM25Okapi`` (negative idf floored
at ``epsilon`` x the mean idf; a term repeated in the query counts once per
occurrence), precomputed into the term-major CSC arrays that bm25s scores
from, saved with bm25s and loaded memory-mapped. Scores therefore equal
rank-bm25's, at bm25s's speed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from rag_qa.config import BM25Config
from rag_qa.retrieval.tokenize import tokenize
from rag_qa.retrieval.topk import top_k

logger = logging.getLogger(__name__)


class BM25Retriever:
    """Exact BM25Okapi scores over a fixed corpus."""

    def __init__(self, engine, config: BM25Config):
        self._engine = engine  # a bm25s.BM25 holding our precomputed weights
        self.config = config

    @property
    def num_docs(self) -> int:
        return int(self._engine.scores["num_docs"])

    @classmethod
    def build(cls, texts: Sequence[str], config: BM25Config = BM25Config()) -> "BM25Retriever":
        corpus_tokens = [tokenize(t, config.stopwords) for t in texts]
        return cls.from_tokens(corpus_tokens, config)

    @classmethod
    def from_tokens(cls, corpus_tokens: Sequence[Sequence[str]], config: BM25Config = BM25Config()) -> "BM25Retriever":
        return cls.from_shards([shard_counts(corpus_tokens)], config)

    @classmethod
    def from_shards(cls, shards: Sequence["ShardCounts"], config: BM25Config = BM25Config()) -> "BM25Retriever":
        """BM25 over consecutive shards of the corpus, each counted on its own (:func:`shard_counts`).

        Terms are numbered in order of first appearance over the shards,
        and document frequencies are summed, so the arrays are those of one
        count over the whole corpus.
        """
        import bm25s
        from scipy import sparse

        vocab: dict[str, int] = {}
        rows, cols, counts, lengths = [], [], [], []
        offset = 0
        for shard in shards:  # 4-byte rows, terms and counts: a million passages hold tens of millions of entries
            to_global = np.asarray([vocab.setdefault(t, len(vocab)) for t in shard.terms], dtype=np.int32)
            rows.append(shard.rows.astype(np.int32) + np.int32(offset))
            cols.append(to_global[shard.cols] if len(to_global) else shard.cols.astype(np.int32))
            counts.append(shard.counts.astype(np.float32))
            lengths.append(shard.doc_len)
            offset += len(shard.doc_len)
        n_docs, n_terms = offset, max(len(vocab), 1)
        df = np.zeros(n_terms, dtype=np.float64)
        for shard in shards:
            if len(shard.terms):
                df[[vocab[t] for t in shard.terms]] += shard.df
        tf = sparse.csc_matrix(
            (
                np.concatenate(counts) if counts else np.zeros(0, dtype=np.float32),
                (
                    np.concatenate(rows) if rows else np.zeros(0, dtype=np.int32),
                    np.concatenate(cols) if cols else np.zeros(0, dtype=np.int32),
                ),
            ),
            shape=(max(n_docs, 1), n_terms),
        )
        del rows, cols, counts
        tf.sum_duplicates()
        doc_len = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.float64)
        avgdl = float(doc_len.mean()) if n_docs and doc_len.sum() > 0 else 1.0

        idf = np.log(n_docs - df + 0.5) - np.log(df + 0.5)
        if len(vocab):
            floor = config.epsilon * float(idf.sum() / len(idf))
            idf = np.where(idf < 0, floor, idf)

        term_of_entry = np.repeat(np.arange(n_terms, dtype=np.int32), np.diff(tf.indptr))
        weights = np.empty(len(tf.data), dtype=np.float32)
        step = 1 << 22  # in float64, a slice of entries at a time
        for start in range(0, len(weights), step):
            part = slice(start, start + step)
            freq = tf.data[part].astype(np.float64)
            norm = config.k1 * (1 - config.b + config.b * doc_len[tf.indices[part]] / avgdl)
            weights[part] = idf[term_of_entry[part]] * freq * (config.k1 + 1) / (freq + norm)
        del term_of_entry

        engine = bm25s.BM25(k1=config.k1, b=config.b, method="robertson", backend="numpy")
        engine.scores = {
            "data": weights,
            "indices": tf.indices.astype(np.int32),
            "indptr": tf.indptr.astype(np.int64),
            "num_docs": n_docs,
        }
        engine.vocab_dict = vocab
        engine.unique_token_ids_set = set(vocab.values())
        engine.nonoccurrence_array = None
        return cls(engine, config)

    def save(self, directory: str | Path) -> None:
        self._engine.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: str | Path, config: BM25Config, mmap: bool = True) -> "BM25Retriever":
        import bm25s

        engine = bm25s.BM25.load(str(directory), mmap=mmap, show_progress=False)
        return cls(engine, config)

    def query_ids(self, query: str) -> np.ndarray:
        vocab = self._engine.vocab_dict
        return np.asarray([vocab[t] for t in tokenize(query, self.config.stopwords) if t in vocab], dtype=np.int32)

    def get_scores(self, query: str, weight_mask: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every passage for ``query`` (zeros when no term matches)."""
        ids = self.query_ids(query)
        if ids.size == 0:
            return np.zeros(self.num_docs, dtype=np.float32)
        return self._engine.get_scores_from_ids(ids, weight_mask=weight_mask)

    def search(self, query: str, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` passage rows and scores; passages that match no term are left out."""
        scores = self.get_scores(query)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        return top_k(scores, k, keep=scores > 0)

    def search_batch(
        self, queries: Sequence[str], k: int, mask: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self.search(q, k, mask) for q in queries]


@dataclass
class ShardCounts:
    """The BM25 term counts of a run of passages: each (passage, term) once with its count,
    terms numbered in order of first appearance in the shard."""

    terms: list[str]
    rows: np.ndarray  # passage within the shard
    cols: np.ndarray  # term within ``terms``
    counts: np.ndarray  # occurrences of the term in the passage
    df: np.ndarray  # passages of the shard holding each term
    doc_len: np.ndarray  # tokens of each passage


def shard_counts(corpus_tokens: Sequence[Sequence[str]]) -> ShardCounts:
    """Count the terms of ``corpus_tokens`` (one token list per passage)."""
    vocab: dict[str, int] = {}
    rows, cols, counts = [], [], []
    for doc_index, tokens in enumerate(corpus_tokens):
        seen: dict[int, int] = {}
        for tok in tokens:
            term = vocab.setdefault(tok, len(vocab))
            seen[term] = seen.get(term, 0) + 1
        rows.extend([doc_index] * len(seen))
        cols.extend(seen)
        counts.extend(seen.values())
    cols_array = np.asarray(cols, dtype=np.int32)
    return ShardCounts(
        terms=list(vocab),
        rows=np.asarray(rows, dtype=np.int32),
        cols=cols_array,
        counts=np.asarray(counts, dtype=np.int32),
        df=np.bincount(cols_array, minlength=len(vocab)).astype(np.float64),
        doc_len=np.asarray([len(t) for t in corpus_tokens], dtype=np.float64),
    )


__all__ = ["BM25Retriever", "ShardCounts", "shard_counts", "top_k"]
