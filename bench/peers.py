"""ragqa against the retrieval stacks users would build instead, on the same data.

SQuAD-open from the articles ragqa's training jobs hold out of the SQuAD v1.1
training file: their paragraphs, cut into passages by ragqa, are the corpus
every system indexes (the same strings: title + passage text), and their
questions are the queries. Each system runs in its own process:

- ragqa: BM25, dense and hybrid (RRF); dense with the base all-MiniLM-L6-v2
  and, when the default encoder differs from it, with the default encoder.
- LangChain: ``EnsembleRetriever`` (weights 0.5/0.5) over a rank-bm25
  ``BM25Retriever`` and a FAISS vector store with ``HuggingFaceEmbeddings`` of
  the same base encoder, its usual setup.
- Haystack 2.x: in-memory BM25 and embedding retrievers (same base encoder)
  joined with reciprocal rank fusion.

Reported: recall@1/5/20/100 and MRR@10 (a hit is a passage of the question's
paragraph), single-query latency, build time; end to end, ragqa's reader fed
the top-10 passages of each system (EM/F1, warm latency of retrieve + read);
and reader speed on gold passages for ragqa's reader and Haystack's
``ExtractiveReader`` running the same weights.

    pip install -e '.[bench]'
    python bench/peers.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).parent))
from common import (  # noqa: E402
    Timings,
    command,
    machine,
    markdown_table,
    time_calls,
    time_gold_reading,
    time_once,
    versions,
)

SYSTEMS = ("ragqa", "langchain", "haystack")
RECALL_KS = (1, 5, 20, 100)
DEPTH = 100


# ---------------------------------------------------------------- shared data


def prepare(data_dir: Path, work: Path, questions: int, seed: int) -> dict:
    """Build ragqa's index of the held-out paragraphs; write passages and queries for every system."""
    from rag_qa.config import IndexConfig
    from rag_qa.evaluation.runner import squad_eval_set
    from rag_qa.ingest import chunk_document, iter_documents

    eval_set = squad_eval_set(data_dir / "squad_v1.1" / "train-v1.1.json.gz", held_out=True, limit=questions, seed=seed)
    corpus_file = work / "corpus.jsonl"
    corpus_file.write_text(
        "\n".join(json.dumps(d, ensure_ascii=False) for d in eval_set.corpus) + "\n", encoding="utf-8"
    )
    # The passages ragqa's own index will hold (same ids), written for every system.
    chunking = IndexConfig().chunking
    passages = [p for doc in iter_documents([corpus_file]) for p in chunk_document(doc, chunking)]
    with open(work / "passages.jsonl", "w", encoding="utf-8") as fh:
        for p in passages:
            fh.write(
                json.dumps(
                    {"text": f"{p.title}\n{p.text}" if p.title else p.text, "passage": p.to_dict()}, ensure_ascii=False
                )
                + "\n"
            )
    queries = [
        {
            "qid": e.qid,
            "question": e.question,
            "doc": next(iter(eval_set.qrels[e.qid])),
            "answers": list(e.answer_texts),
            "context": e.context,
        }
        for e in eval_set.examples
    ]
    (work / "queries.json").write_text(json.dumps(queries, ensure_ascii=False), encoding="utf-8")
    return {"paragraphs": len(eval_set.corpus), "passages": len(passages), "questions": len(queries)}


def load_work(work: Path) -> tuple[list[dict], list[dict]]:
    """The passages and queries :func:`prepare` wrote."""
    with open(work / "passages.jsonl", encoding="utf-8") as fh:
        passages = [json.loads(line) for line in fh]
    return passages, json.loads((work / "queries.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- scoring


def speed(timings: Timings) -> dict:
    """Single-call latency and throughput of a per-question loop."""
    return {**timings.latency(), "queries_per_s": timings.per_second()}


def em_f1(predictions: dict[str, str], queries: list[dict]) -> dict:
    """SQuAD exact match and F1 of answers by question id."""
    from rag_qa.evaluation.metrics import squad_scores

    scores = squad_scores(predictions, {q["qid"]: q["answers"] for q in queries})
    return {"exact_match": scores["exact_match"], "f1": scores["f1"]}


def evaluate_search(search, passages: list[dict], queries: list[dict], warmup: int = 5) -> dict:
    """Recall@k / MRR@10 over paragraphs and single-query speed of ``search(question) -> passage numbers``."""
    from rag_qa.evaluation.retrieval_metrics import dedupe, mrr_at_k, recall_at_k

    timings = time_calls(lambda q: search(q["question"]), queries, warmup=warmup)
    docs = [p["passage"]["metadata"]["id"] for p in passages]
    ranked = [dedupe([docs[i] for i in r]) for r in timings.results]
    gold = [{q["doc"]} for q in queries]
    out = {f"recall@{k}": statistics.fmean(recall_at_k(r, g, k) for r, g in zip(ranked, gold)) for k in RECALL_KS}
    out["mrr@10"] = statistics.fmean(mrr_at_k(r, g, 10) for r, g in zip(ranked, gold))
    return {**out, **speed(timings)}


def end_to_end(answer, queries: list[dict], warmup: int = 3) -> dict:
    """EM/F1 and warm latency of ``answer(question) -> text`` (retrieve + read)."""
    timings = time_calls(lambda q: answer(q["question"]), queries, warmup=warmup)
    predictions = {q["qid"]: text for q, text in zip(queries, timings.results)}
    return {**em_f1(predictions, queries), "questions": len(queries), **speed(timings)}


def reader_on(retrieve, reader, passages: list[dict]):
    """An ``answer`` function: ragqa's reader on the passages a peer retrieves."""
    from rag_qa.types import Passage

    objects = [Passage.from_dict(p["passage"]) for p in passages]

    def answer(question: str) -> str:
        answers = reader.read(question, [objects[i] for i in retrieve(question)], top_k=1)
        return answers[0].text if answers else ""

    return answer


def shared_reader(path: str | None):
    """ragqa's reader, as every system's end-to-end run uses it."""
    from rag_qa.reading.reader import Reader

    # Every system's end-to-end run answers with the best span, like a pipeline without a no-answer option.
    return Reader(path, no_answer_threshold=float("-inf")).warm_up()


# ---------------------------------------------------------------- systems


def run_ragqa(work: Path, args) -> dict:
    from rag_qa.models import default_encoder_path
    from rag_qa.pipeline import RagQA
    from rag_qa.retrieval.builder import build_index
    from rag_qa.retrieval.index import Index

    passages, queries = load_work(work)
    number = {p["passage"]["id"]: i for i, p in enumerate(passages)}
    base = str(_base_encoder())
    encoders = {"base": base}
    if Path(default_encoder_path()).resolve() != Path(base).resolve():
        encoders["fine-tuned"] = str(default_encoder_path())
    out: dict = {"retrieval": {}, "build_s": {}}
    reader = shared_reader(args.reader)
    for name, encoder in encoders.items():
        _, out["build_s"][name] = time_once(
            partial(build_index, [work / "corpus.jsonl"], work / f"index-{name}", encoder=encoder, show_progress=False)
        )
        index = Index.load(work / f"index-{name}", encoder=encoder)
        for mode in (["bm25"] if name == "base" else []) + ["dense", "hybrid"]:
            label = mode if mode == "bm25" else f"{mode} ({name} encoder)"

            def search(q, m=mode, i=index):
                return [number[h.passage.passage_id] for h in i.search(q, k=DEPTH, mode=m)]

            out["retrieval"][label] = evaluate_search(search, passages, queries)
        qa = RagQA(index, reader)

        def answer(question: str, qa=qa) -> str:
            answers = qa.ask(question, top_k_passages=10, top_k_answers=1)
            return answers[0].text if answers else ""

        out.setdefault("end_to_end", {})[f"ragqa hybrid ({name} encoder)"] = end_to_end(
            answer, queries[: args.e2e_questions]
        )
    out["reader"] = {"ragqa Reader": _ragqa_reader_speed(reader, queries[: args.reader_questions])}
    return out


def _ragqa_reader_speed(reader, queries: list[dict]) -> dict:
    predictions, per_s = time_gold_reading(reader, [SimpleNamespace(**q) for q in queries])
    return {**em_f1(predictions, queries), "passages_per_s": per_s, "precision": reader.backend}


def _base_encoder() -> Path:
    from rag_qa.models import base_model_path

    return base_model_path()


def run_langchain(work: Path, args) -> dict:
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever
    from langchain_community.vectorstores import FAISS
    from langchain_huggingface import HuggingFaceEmbeddings

    passages, queries = load_work(work)
    texts = [p["text"] for p in passages]
    metadatas = [{"n": i} for i in range(len(passages))]

    def build():
        bm25 = BM25Retriever.from_texts(texts, metadatas=metadatas, k=DEPTH)
        embeddings = HuggingFaceEmbeddings(model=str(_base_encoder()), encode_kwargs={"normalize_embeddings": True})
        dense = FAISS.from_texts(texts, embeddings, metadatas=metadatas).as_retriever(search_kwargs={"k": DEPTH})
        return bm25, dense, EnsembleRetriever(retrievers=[bm25, dense], weights=[0.5, 0.5])

    (bm25, dense, ensemble), build_s = time_once(build)
    out: dict = {"retrieval": {}, "build_s": {"all": build_s}}
    for label, retriever in (
        ("BM25Retriever (rank-bm25)", bm25),
        ("FAISS vector store", dense),
        ("EnsembleRetriever", ensemble),
    ):
        search = lambda q, r=retriever: [d.metadata["n"] for d in r.invoke(q)][:DEPTH]  # noqa: E731
        out["retrieval"][label] = evaluate_search(search, passages, queries)
    reader = shared_reader(args.reader)
    top10 = lambda q: [d.metadata["n"] for d in ensemble.invoke(q)][:10]  # noqa: E731
    out["end_to_end"] = {
        "LangChain EnsembleRetriever + ragqa reader": end_to_end(
            reader_on(top10, reader, passages), queries[: args.e2e_questions]
        )
    }
    return out


def run_haystack(work: Path, args) -> dict:
    os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
    from haystack import Document, Pipeline
    from haystack.components.embedders import SentenceTransformersDocumentEmbedder, SentenceTransformersTextEmbedder
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    passages, queries = load_work(work)
    model = str(_base_encoder())

    def build():
        store = InMemoryDocumentStore()
        embedder = SentenceTransformersDocumentEmbedder(
            model=model, normalize_embeddings=True, progress_bar=False, local_files_only=True
        )
        embedder.warm_up()
        store.write_documents(
            embedder.run([Document(content=p["text"], meta={"n": i}) for i, p in enumerate(passages)])["documents"]
        )
        return store

    store, build_s = time_once(build)

    bm25 = Pipeline()
    bm25.add_component("bm25", InMemoryBM25Retriever(store, top_k=DEPTH))
    dense = Pipeline()
    dense.add_component(
        "embed",
        SentenceTransformersTextEmbedder(
            model=model, normalize_embeddings=True, progress_bar=False, local_files_only=True
        ),
    )
    dense.add_component("dense", InMemoryEmbeddingRetriever(store, top_k=DEPTH))
    dense.connect("embed.embedding", "dense.query_embedding")
    hybrid = Pipeline()
    hybrid.add_component(
        "embed",
        SentenceTransformersTextEmbedder(
            model=model, normalize_embeddings=True, progress_bar=False, local_files_only=True
        ),
    )
    hybrid.add_component("dense", InMemoryEmbeddingRetriever(store, top_k=DEPTH))
    hybrid.add_component("bm25", InMemoryBM25Retriever(store, top_k=DEPTH))
    hybrid.add_component("join", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=DEPTH))
    hybrid.connect("embed.embedding", "dense.query_embedding")
    hybrid.connect("bm25", "join")
    hybrid.connect("dense", "join")
    for p in (dense, hybrid):
        p.warm_up()

    runs = {
        "InMemoryBM25Retriever": lambda q: bm25.run({"bm25": {"query": q}})["bm25"]["documents"],
        "InMemoryEmbeddingRetriever": lambda q: dense.run({"embed": {"text": q}})["dense"]["documents"],
        "BM25 + embedding, RRF joiner": lambda q: hybrid.run({"embed": {"text": q}, "bm25": {"query": q}})["join"][
            "documents"
        ],
    }
    out: dict = {"retrieval": {}, "build_s": {"all": build_s}}
    for label, run in runs.items():
        search = lambda q, r=run: [d.meta["n"] for d in r(q)][:DEPTH]  # noqa: E731
        out["retrieval"][label] = evaluate_search(search, passages, queries)
    reader = shared_reader(args.reader)
    top10 = lambda q: [d.meta["n"] for d in runs["BM25 + embedding, RRF joiner"](q)][:10]  # noqa: E731
    out["end_to_end"] = {
        "Haystack BM25 + embedding (RRF) + ragqa reader": end_to_end(
            reader_on(top10, reader, passages), queries[: args.e2e_questions]
        )
    }
    out["reader"] = {"Haystack ExtractiveReader": _haystack_reader_speed(args.reader, queries[: args.reader_questions])}
    return out


def _haystack_reader_speed(reader_dir: str | None, queries: list[dict]) -> dict:
    from haystack import Document
    from haystack.components.readers import ExtractiveReader

    from rag_qa.reading.reader import default_reader_path

    reader = ExtractiveReader(
        model=str(reader_dir or default_reader_path()), top_k=1, no_answer=False, max_seq_length=384, stride=128
    )
    reader.warm_up()

    def read(q: dict) -> str:
        answers = reader.run(query=q["question"], documents=[Document(content=q["context"])])["answers"]
        return answers[0].data if answers and answers[0].data else ""

    timings = time_calls(read, queries, warmup=1)
    predictions = {q["qid"]: text for q, text in zip(queries, timings.results)}
    return {**em_f1(predictions, queries), "passages_per_s": timings.per_second(), "precision": "float32"}


RUNNERS = {"ragqa": run_ragqa, "langchain": run_langchain, "haystack": run_haystack}


# ---------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> dict:
    """Run every system in a process of its own, print the tables, write ``--out``; the results as written."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="Folder with squad_v1.1/train-v1.1.json.gz.")
    parser.add_argument(
        "--questions", type=int, default=1000, help="Held-out questions for retrieval quality and latency."
    )
    parser.add_argument("--e2e-questions", type=int, default=200, help="Of those, questions answered end to end.")
    parser.add_argument("--reader-questions", type=int, default=300, help="Gold passages for the reader comparison.")
    parser.add_argument("--reader", help="Reader directory (default: the shipped reader).")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="Comma-separated subset of: " + ", ".join(SYSTEMS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/peers.json"))
    parser.add_argument("--system", choices=SYSTEMS, help=argparse.SUPPRESS)  # internal: run one system here
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

    if args.system:  # child process
        result = RUNNERS[args.system](args.work, args)
        (args.work / f"{args.system}.json").write_text(json.dumps(result))
        return result

    results: dict = {
        "machine": machine(),
        "command": command(__file__, argv),
        "versions": versions(
            "ragqa",
            "torch",
            "faiss-cpu",
            "bm25s",
            "rank-bm25",
            "langchain-core",
            "langchain-community",
            "langchain-classic",
            "langchain-huggingface",
            "haystack-ai",
            "sentence-transformers",
        ),
        "systems": {},
        "not_run": {},
    }
    with tempfile.TemporaryDirectory(prefix="ragqa-peers-") as tmp:
        work = Path(tmp)
        results["data"] = prepare(args.data, work, args.questions, args.seed)
        passthrough = [
            "--data",
            str(args.data),
            "--e2e-questions",
            str(args.e2e_questions),
            "--reader-questions",
            str(args.reader_questions),
        ]
        if args.reader:
            passthrough += ["--reader", args.reader]
        for system in args.systems.split(","):
            print(f"running {system} ...", file=sys.stderr, flush=True)
            done = subprocess.run(
                [sys.executable, __file__, "--system", system, "--work", str(work), *passthrough],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                results["not_run"][system] = last
                print(f"{system} could not run: {last}", file=sys.stderr)
                continue
            results["systems"][system] = json.loads((work / f"{system}.json").read_text())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(format_tables(results))
    return results


def format_tables(results: dict) -> str:
    """The tables of a peers result, as printed and as the README shows them."""
    data = results["data"]
    parts = [
        f"SQuAD-open, held-out articles: {data['paragraphs']} paragraphs -> {data['passages']} passages, "
        f"{data['questions']} questions\n"
    ]
    rows = []
    for system, res in results["systems"].items():
        for label, m in res["retrieval"].items():
            rows.append(
                [system, label]
                + [f"{m[f'recall@{k}']:.3f}" for k in RECALL_KS]
                + [f"{m['mrr@10']:.3f}", f"{m['p50_ms']:.2f}", f"{m['p95_ms']:.2f}"]
            )
    parts.append(
        markdown_table(["system", "retriever", *[f"R@{k}" for k in RECALL_KS], "MRR@10", "p50 ms", "p95 ms"], rows)
    )
    rows = []
    for res in results["systems"].values():
        for label, m in res.get("end_to_end", {}).items():
            rows.append(
                [
                    label,
                    f"{m['exact_match']:.1f}",
                    f"{m['f1']:.1f}",
                    m["questions"],
                    f"{m['p50_ms']:.0f}",
                    f"{m['p95_ms']:.0f}",
                ]
            )
    parts.append(
        "\nEnd to end (top-10 passages, the same reader):\n"
        + markdown_table(["pipeline", "EM", "F1", "questions", "p50 ms", "p95 ms"], rows)
    )
    rows = []
    for res in results["systems"].values():
        for label, m in res.get("reader", {}).items():
            rows.append(
                [label, m["precision"], f"{m['exact_match']:.1f}", f"{m['f1']:.1f}", f"{m['passages_per_s']:.1f}"]
            )
    if rows:
        parts.append(
            "\nReader on gold passages (same weights):\n"
            + markdown_table(["reader", "precision", "EM", "F1", "passages/s"], rows)
        )
    for system, why in results["not_run"].items():
        parts.append(f"\n{system}: not run ({why})")
    m = results["machine"]
    parts.append(f"\nMachine: {m['cpu']}, {m['cores']} cores, GPU: {m.get('gpu') or 'none'}; commit {m.get('commit')}")
    return "\n".join(parts)


if __name__ == "__main__":
    main()
