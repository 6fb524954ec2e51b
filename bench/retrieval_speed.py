"""Retrieval speed: ragqa's BM25 against raw bm25s and rank-bm25, dense search, indexing.

One corpus of real passages (SQuAD v1.1 train paragraphs + SciFact abstracts),
one process, the same questions for every system. BM25 runs on one thread.

    python bench/retrieval_speed.py --data ../shared/data
"""

from __future__ import annotations

import os

# One thread for the BM25 comparison (numpy/scipy do not thread these paths,
# but BLAS could); the dense encoder is given all cores explicitly below.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import command, load_corpus, machine, markdown_table, time_once, time_repeated, versions  # noqa: E402

BM25_SYSTEMS = ("ragqa", "bm25s", "rank-bm25")


def bm25_footprint(system: str, texts_file: Path) -> dict:
    """Build one system's BM25 index over the texts, in this (fresh) process:
    build time, and resident memory the index adds once built and (where the
    system saves to disk) once loaded back."""
    import gc

    import psutil

    from rag_qa.retrieval.tokenize import tokenize

    texts = json.loads(texts_file.read_text(encoding="utf-8"))
    proc = psutil.Process()
    if system == "ragqa":
        from rag_qa.config import BM25Config
        from rag_qa.retrieval.bm25 import BM25Retriever

        def build():
            return BM25Retriever.build(texts, BM25Config())

        def load(folder):
            index = BM25Retriever.load(folder, BM25Config())
            index.search("warm up", 10)
            return index
    elif system == "bm25s":
        import bm25s

        def build():
            index = bm25s.BM25()
            index.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
            return index

        def load(folder):
            index = bm25s.BM25.load(folder, mmap=True)
            index.retrieve(bm25s.tokenize(["warm up"], stopwords="en", show_progress=False), k=10, show_progress=False)
            return index
    else:
        from rank_bm25 import BM25Okapi

        build = lambda: BM25Okapi([tokenize(x) for x in texts])  # noqa: E731
        load = None  # rank-bm25 has no file format of its own (only pickle)
    base = proc.memory_info().rss
    index, build_s = time_once(build)
    built = proc.memory_info().rss - base
    loaded = None
    if load is not None:
        with tempfile.TemporaryDirectory() as tmp:
            index.save(tmp)
            del index
            gc.collect()
            base = proc.memory_info().rss
            kept = load(tmp)  # noqa: F841 - held while memory is read
            loaded = proc.memory_info().rss - base
    return {
        "build_s": build_s,
        "rss_built_mb": built / 2**20,
        "rss_loaded_mb": None if loaded is None else loaded / 2**20,
    }


def batch_speed(run: Callable[[], object], queries: int, repeat: int, warmup: int = 1) -> dict:
    """Seconds per run of ``run()``, which answers ``queries`` questions, and queries/s over the timed runs."""
    timings = time_repeated(run, repeat, warmup=warmup)
    return {**timings.spread(), "queries": queries, "qps": timings.per_second(queries * timings.calls)}


def main(argv: list[str] | None = None) -> dict:
    """Measure, print the tables, write ``--out``; the results as written."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--bm25-footprint", nargs=2, metavar=("SYSTEM", "TEXTS"), help=argparse.SUPPRESS
    )  # internal: one system per process
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data"), help="folder with squad_v1.1/ and scifact_beir/"
    )
    parser.add_argument(
        "--max-passages", type=int, default=None, help="sample this many passages (default: all, about 24,000)"
    )
    parser.add_argument("--queries", type=int, default=1000, help="questions for ragqa and bm25s")
    parser.add_argument("--rank-bm25-queries", type=int, default=100, help="questions for rank-bm25 (slow)")
    parser.add_argument("--dense-queries", type=int, default=200, help="questions for dense search")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "retrieval_speed.json")
    args = parser.parse_args(argv)
    if args.bm25_footprint:
        system, texts_file = args.bm25_footprint
        print(json.dumps(bm25_footprint(system, Path(texts_file))))
        return {}

    import bm25s
    import torch
    from rank_bm25 import BM25Okapi

    from rag_qa import Index
    from rag_qa.retrieval.tokenize import tokenize

    rows, queries = load_corpus(args.data, args.max_passages)
    queries = queries[: args.queries]
    results: dict = {
        "machine": machine(),
        "command": command(__file__, argv),
        "versions": versions("ragqa", "bm25s", "rank-bm25", "faiss-cpu", "torch", "sentence-transformers"),
    }

    with tempfile.TemporaryDirectory() as tmp:
        corpus_file = Path(tmp) / "corpus.jsonl"
        corpus_file.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
        torch.set_num_threads(os.cpu_count() or 1)
        idx, build_s = time_once(lambda: Index.build([corpus_file], Path(tmp) / "index", show_progress=False))
        n = len(idx)
        results["corpus"] = {"documents": len(rows), "passages": n, "queries": len(queries)}
        results["indexing"] = {"seconds": build_s, "passages_per_s": n / build_s}

        # The texts ragqa scores (title + passage) are given to the peers too.
        texts = [f"{p.title}\n{p.text}" if p.title else p.text for p in idx.passages]
        torch.set_num_threads(1)

        bm25 = {"ragqa": batch_speed(lambda: idx.search_batch(queries, k=10, mode="bm25"), len(queries), args.repeat)}

        raw = bm25s.BM25()  # bm25s defaults: method "lucene", its own tokenizer
        raw.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        bm25["bm25s"] = batch_speed(
            lambda: raw.retrieve(
                bm25s.tokenize(queries, stopwords="en", show_progress=False), k=10, show_progress=False, n_threads=0
            ),
            len(queries),
            args.repeat,
        )

        reference = BM25Okapi([tokenize(x) for x in texts])
        few = queries[: args.rank_bm25_queries]

        def rank_bm25_run():
            return [np.argsort(-reference.get_scores(tokenize(q)))[:10] for q in few]

        bm25["rank-bm25"] = batch_speed(rank_bm25_run, len(few), repeat=1, warmup=0)

        # Agreement with rank-bm25 on the same questions: the same top-10, where
        # passages with tied scores may come in either order.
        ours = idx.search_batch(few, k=10, mode="bm25")
        row_of = {p.passage_id: i for i, p in enumerate(idx.passages)}
        same = 0
        for hits, q in zip(ours, few):
            scores = reference.get_scores(tokenize(q))
            expected = np.sort(scores[scores > 0])[::-1][:10]
            got = scores[[row_of[h.passage.passage_id] for h in hits]]
            same += len(got) == len(expected) and bool(np.allclose(got, expected, rtol=1e-5, atol=1e-6))
        bm25["agreement_top10_with_rank_bm25"] = same / len(few)
        # Build time and memory, each system in a process of its own.
        texts_file = Path(tmp) / "texts.json"
        texts_file.write_text(json.dumps(texts), encoding="utf-8")
        for system in BM25_SYSTEMS:
            done = subprocess.run(
                [sys.executable, __file__, "--bm25-footprint", system, str(texts_file)],
                capture_output=True,
                text=True,
                check=True,
            )
            bm25[system].update(json.loads(done.stdout.strip().splitlines()[-1]))
        results["bm25"] = bm25

        dq = queries[: args.dense_queries]
        torch.set_num_threads(os.cpu_count() or 1)
        idx.search("warm up the encoder", mode="dense")
        dense = batch_speed(lambda: idx.search_batch(dq, k=10, mode="dense"), len(dq), args.repeat)
        results["dense"] = {**dense, "threads": torch.get_num_threads(), "faiss": idx.manifest["faiss"]["type"]}
        results["hybrid"] = batch_speed(lambda: idx.search_batch(dq, k=10, mode="hybrid"), len(dq), args.repeat)

    b = results["bm25"]
    table = markdown_table(
        ["what", "queries/s", "ratio"],
        [
            ["BM25 ragqa (1 thread)", f"{b['ragqa']['qps']:,.0f}", "1.00"],
            [
                "BM25 raw bm25s (1 thread)",
                f"{b['bm25s']['qps']:,.0f}",
                f"ragqa/bm25s = {b['ragqa']['qps'] / b['bm25s']['qps']:.2f}",
            ],
            [
                "BM25 rank-bm25 BM25Okapi",
                f"{b['rank-bm25']['qps']:,.1f}",
                f"ragqa/rank-bm25 = {b['ragqa']['qps'] / b['rank-bm25']['qps']:,.0f}x",
            ],
            [
                f"dense ragqa ({results['dense']['threads']} threads, {results['dense']['faiss']})",
                f"{results['dense']['qps']:,.1f}",
                "",
            ],
            ["hybrid ragqa", f"{results['hybrid']['qps']:,.1f}", ""],
        ],
    )
    c = results["corpus"]
    print(
        f"Corpus: {c['documents']:,} documents -> {c['passages']:,} passages; {c['queries']:,} questions; "
        f"{results['machine']['cpu']} ({results['machine']['cores']} cores)"
    )
    print(table)
    print(
        f"Indexing: {results['indexing']['passages_per_s']:,.1f} passages/s "
        f"({results['indexing']['seconds']:.1f} s, read + chunk + embed + BM25 + FAISS + write)"
    )
    print(
        markdown_table(
            ["BM25 system", "build s", "memory added by building MiB", "memory added by loading MiB"],
            [
                [
                    name,
                    f"{b[name]['build_s']:.2f}",
                    f"{b[name]['rss_built_mb']:.0f}",
                    "no file format" if b[name]["rss_loaded_mb"] is None else f"{b[name]['rss_loaded_mb']:.0f}",
                ]
                for name in BM25_SYSTEMS
            ],
        )
    )
    print(
        f"Top-10 the same as rank-bm25's (ties in any order) for {b['agreement_top10_with_rank_bm25']:.1%} "
        f"of {b['rank-bm25']['queries']} questions"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
