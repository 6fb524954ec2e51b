"""ragqa's built-in index against its Milvus backend (Milvus Lite), on the same data.

The held-out SQuAD-open questions and passages of ``bench/peers.py`` (the same
``prepare``): the built-in index of them with the default encoder, then a copy
of it switched to Milvus Lite (``backend="milvus"``, which reuses its vectors),
so both hold the same passages and the same vectors and differ in how they
search. Per backend and mode (bm25, dense, hybrid): recall@1/5/20/100 and
MRR@10 over paragraphs, and single-query latency; end to end, per mode,
``RagQA`` (top-10 passages, the shipped reader answering with its best span)
EM/F1 and latency. Also the top-1 agreement of the two BM25s (how often they
rank the same passage first).

    pip install -e '.[bench,milvus]'
    python bench/milvus.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import command, machine, markdown_table, time_once, versions  # noqa: E402
from peers import DEPTH, end_to_end, evaluate_search, load_work, prepare, shared_reader  # noqa: E402

BACKENDS = ("builtin", "milvus")
MODES = ("bm25", "dense", "hybrid")


def run(work: Path, args) -> dict:
    from rag_qa.pipeline import RagQA
    from rag_qa.retrieval.builder import build_index
    from rag_qa.retrieval.index import Index

    passages, queries = load_work(work)
    number = {p["passage"]["id"]: i for i, p in enumerate(passages)}
    reader = shared_reader(args.reader)
    out: dict = {"build_s": {}, "retrieval": {}, "end_to_end": {}, "bm25_top1": {}}
    for backend in BACKENDS:
        directory = work / f"index-{backend}"
        if backend == "milvus":
            # The built-in index switched to Milvus: the same passages, and their vectors reused (not embedded again).
            shutil.copytree(work / "index-builtin", directory)
        _, out["build_s"][backend] = time_once(
            partial(build_index, [work / "corpus.jsonl"], directory, backend=backend, show_progress=False)
        )
        index = Index.load(directory)
        settings = [(mode, None) for mode in MODES]
        if backend == "milvus":
            settings.append(("hybrid", "ragqa"))
        for mode, fusion in settings:
            if fusion:
                index.config = index.config.replace(milvus={"hybrid_fusion": fusion})

            def search(q, m=mode, i=index):
                return [number[h.passage.passage_id] for h in i.search(q, k=DEPTH, mode=m)]

            label = f"{backend} {mode}" + (f" (fused as built-in: {index.config.fusion.method})" if fusion else "")
            out["retrieval"][label] = evaluate_search(search, passages, queries)
        index.config = index.config.replace(milvus={"hybrid_fusion": "milvus"})
        out["bm25_top1"][backend] = [
            (hits[0].passage.passage_id if hits else None)
            for hits in (index.search(q["question"], k=1, mode="bm25") for q in queries)
        ]
        qa = RagQA(index, reader)
        for mode in MODES:

            def answer(question: str, qa=qa, m=mode) -> str:
                answers = qa.ask(question, top_k_passages=10, top_k_answers=1, mode=m)
                return answers[0].text if answers else ""

            out["end_to_end"][f"{backend} {mode}"] = end_to_end(answer, queries[: args.e2e_questions])
        if backend == "milvus":
            index.config = index.config.replace(milvus={"hybrid_fusion": "ragqa"})
            label = f"milvus hybrid (fused as built-in: {index.config.fusion.method})"
            out["end_to_end"][label] = end_to_end(answer, queries[: args.e2e_questions])
    same = sum(a == b for a, b in zip(out["bm25_top1"]["builtin"], out["bm25_top1"]["milvus"]))
    out["bm25_top1_agreement"] = same / max(len(queries), 1)
    del out["bm25_top1"]
    return out


def format_tables(results: dict) -> str:
    data = results["data"]
    r = results["result"]
    lines = [
        f"SQuAD-open, held-out articles: {data['paragraphs']} paragraphs -> {data['passages']} passages, "
        f"{data['questions']} questions; default encoder; Milvus Lite {results['versions'].get('milvus-lite')}",
        "",
        markdown_table(
            ["backend, mode", "R@1", "R@5", "R@20", "MRR@10", "p50 ms", "p95 ms"],
            [
                [
                    name,
                    f"{m['recall@1']:.3f}",
                    f"{m['recall@5']:.3f}",
                    f"{m['recall@20']:.3f}",
                    f"{m['mrr@10']:.3f}",
                    f"{m['p50_ms']:.1f}",
                    f"{m['p95_ms']:.1f}",
                ]
                for name, m in r["retrieval"].items()
            ],
        ),
        "",
        markdown_table(
            ["end to end (top-10, shipped reader)", "EM", "F1", "p50 ms", "p95 ms"],
            [
                [name, f"{m['exact_match']:.1f}", f"{m['f1']:.1f}", f"{m['p50_ms']:.0f}", f"{m['p95_ms']:.0f}"]
                for name, m in r["end_to_end"].items()
            ],
        ),
        "",
        f"build: built-in {r['build_s']['builtin']:.1f} s; Milvus Lite from it (vectors reused) "
        f"{r['build_s']['milvus']:.1f} s; "
        f"BM25 top-1 passage the same in both backends for {100 * r['bm25_top1_agreement']:.1f}% of questions",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="Folder with squad_v1.1/train-v1.1.json.gz.")
    parser.add_argument("--questions", type=int, default=300, help="Held-out questions (as bench/peers.py's run).")
    parser.add_argument("--e2e-questions", type=int, default=200, help="Of those, questions answered end to end.")
    parser.add_argument("--reader", help="Reader directory (default: the shipped reader).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/milvus.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    results: dict = {
        "machine": machine(),
        "command": command(__file__, argv),
        "versions": versions("ragqa", "pymilvus", "milvus-lite", "faiss-cpu", "bm25s", "sentence-transformers"),
    }
    with tempfile.TemporaryDirectory(prefix="ragqa-milvus-") as tmp:
        work = Path(tmp)
        results["data"] = prepare(args.data, work, args.questions, args.seed)
        results["result"] = run(work, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(format_tables(results))
    return results


if __name__ == "__main__":
    main()
