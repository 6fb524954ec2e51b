"""How index build memory, index size and query latency grow with the corpus.

For each size, writes a corpus of about N passages (documents made of
sentences drawn from the SQuAD paragraphs and SciFact abstracts in --data),
runs `ragqa index` on it in its own process and records its peak resident
memory, wall time and on-disk size, then loads the index in another process
and times single BM25, dense and hybrid queries (SQuAD questions and
SciFact claims).

    python bench/scaling.py --data ../shared/data                     # 10k, 50k, 200k passages
    python bench/scaling.py --data ../shared/data --sizes 2000,10000  # a quick look
    python bench/scaling.py --data ../shared/data --sizes 10000,100000,1000000 --fast-encoder \
        --out bench/results/scaling_1m.json

Embedding is most of a build's time on a CPU (about 70 passages/s here with
the bundled encoder: 4 hours for a million passages). ``--fast-encoder``
embeds with the bundled encoder cut to its first layer and its first 32
tokens: vectors of the same 384 dimensions, so index sizes, memory, load
time and query latency are those of a real index of that many passages,
but its build times are not, nor is its retrieval quality.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import command, load_corpus, machine, markdown_table, time_calls, time_once, versions  # noqa: E402

DOCS_PER_FILE = 5_000

# Runs a command and prints the peak RSS (KiB) of its process tree's largest member.
_PEAK = (
    "import resource, subprocess, sys; "
    "r = subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "sys.exit(r.returncode)"
)


def query_index(index_dir: Path, queries_file: Path, encoder: str | None) -> dict:
    """Load an index in this (fresh) process and time single top-10 BM25 and dense queries.

    Returns the load time, the resident memory the index adds, and each mode's latency.
    """
    import psutil

    from rag_qa import Index
    from rag_qa.retrieval.encoder import Encoder  # noqa: F401 - imported before the baseline, like the index

    proc = psutil.Process()
    base_rss = proc.memory_info().rss
    index, load_s = time_once(lambda: Index.load(index_dir, encoder=encoder))
    loaded_rss = proc.memory_info().rss
    queries = json.loads(queries_file.read_text())
    out: dict = {
        "load_s": load_s,
        "rss_after_load_mb": loaded_rss / 2**20,
        "rss_added_by_load_mb": (loaded_rss - base_rss) / 2**20,
    }
    for mode in ("bm25", "dense", "hybrid"):
        timings = time_calls(partial(index.search, k=10, mode=mode), queries, warmup=5)
        out[mode] = {**timings.latency(), "queries": timings.calls}
    return out


def sentence_pool(data_dir: Path) -> tuple[list[str], list[str]]:
    """Every sentence of the corpus in ``data_dir``, and its questions."""
    from rag_qa.text import split_sentences

    rows, queries = load_corpus(data_dir, max_passages=None)
    pool = [row["text"][s:e] for row in rows for s, e in split_sentences(row["text"])]
    return pool, queries


def write_corpus(folder: Path, passages: int, pool: list[str], seed: int) -> int:
    """JSONL files of documents of 150-300 words until they chunk into ``passages`` passages."""
    from rag_qa.config import ChunkingConfig
    from rag_qa.ingest import chunk_document
    from rag_qa.types import Document

    rng = random.Random(seed)
    folder.mkdir(parents=True)
    made, doc_no, fh = 0, 0, None
    try:
        while made < passages:
            if doc_no % DOCS_PER_FILE == 0:
                if fh:
                    fh.close()
                fh = open(folder / f"part-{doc_no // DOCS_PER_FILE:04d}.jsonl", "w", encoding="utf-8")
            target, words, sentences = rng.randint(150, 300), 0, []
            while words < target:
                sentence = rng.choice(pool)
                sentences.append(sentence)
                words += len(sentence.split())
            text = " ".join(sentences)
            made += len(chunk_document(Document(doc_id="d", source="s", text=text), ChunkingConfig()))
            fh.write(json.dumps({"id": str(doc_no), "title": f"Document {doc_no}", "text": text}) + "\n")
            doc_no += 1
    finally:
        if fh:
            fh.close()
    return made


def fast_encoder(folder: Path) -> Path:
    """The bundled encoder cut to its first transformer layer and 32 tokens (see the module's docstring)."""
    from sentence_transformers import SentenceTransformer

    from rag_qa.models import default_encoder_path

    model = SentenceTransformer(str(default_encoder_path()), device="cpu")
    bert = model[0].auto_model
    bert.encoder.layer = bert.encoder.layer[:1]
    bert.config.num_hidden_layers = 1
    model.save(str(folder))
    settings = folder / "sentence_bert_config.json"
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "max_seq_length": 32}))
    return folder


def dir_mb(path: Path) -> float:
    """Size of the files under ``path``, in MiB."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def run_size(n: int, pool: list[str], queries_file: Path, work: Path, encoder: str | None) -> dict:
    """Build and query an index of about ``n`` passages, each step in a process of its own; one row of the results."""
    corpus, index_dir = work / f"corpus-{n}", work / f"index-{n}"
    write_corpus(corpus, n, pool, seed=n)
    ragqa = [sys.executable, "-m", "rag_qa.cli", "-q", "index", str(corpus), "--index-dir", str(index_dir), "--json"]
    if encoder:
        ragqa += ["--encoder", encoder]
    done, wall = time_once(
        lambda: subprocess.run([sys.executable, "-c", _PEAK, *ragqa], capture_output=True, text=True)
    )
    if done.returncode != 0:
        raise SystemExit(f"ragqa index failed at {n} passages: {done.stderr.strip().splitlines()[-1:]}")
    lines = done.stdout.strip().splitlines()
    report, peak_kib = json.loads("\n".join(lines[:-1])), int(lines[-1])
    query = subprocess.run(
        [sys.executable, __file__, "--query-index", str(index_dir), str(queries_file), encoder or ""],
        capture_output=True,
        text=True,
    )
    if query.returncode != 0:
        raise SystemExit(f"querying the {n}-passage index failed: {query.stderr.strip().splitlines()[-1:]}")
    row = {
        "target_passages": n,
        "passages": report["passages"],
        "documents": report["documents"],
        "build_wall_s": wall,
        "build_peak_rss_mb": peak_kib / 1024,
        "corpus_mb": dir_mb(corpus),
        "index_mb": dir_mb(index_dir),
        **json.loads(query.stdout.strip().splitlines()[-1]),
    }
    shutil.rmtree(corpus)
    shutil.rmtree(index_dir)
    return row


def plot(rows: list[dict], path: Path) -> None:
    """Latency, memory and size against passages, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["passages"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for mode in ("bm25", "dense"):
        axes[0].plot(xs, [r[mode]["p50_ms"] for r in rows], marker="o", label=f"{mode} p50")
        axes[0].plot(xs, [r[mode]["p95_ms"] for r in rows], marker="x", linestyle="--", label=f"{mode} p95")
    axes[0].set(title="Query latency (top-10, one query)", xlabel="passages", ylabel="ms", xscale="log")
    axes[0].legend()
    axes[1].plot(xs, [r["build_peak_rss_mb"] for r in rows], marker="o", label="build peak RSS")
    axes[1].plot(xs, [r["rss_added_by_load_mb"] for r in rows], marker="o", label="RSS added by loading")
    axes[1].set(title="Memory", xlabel="passages", ylabel="MiB", xscale="log")
    axes[1].legend()
    axes[2].plot(xs, [r["index_mb"] for r in rows], marker="o", label="index on disk")
    axes[2].plot(xs, [r["corpus_mb"] for r in rows], marker="o", label="corpus (JSONL)")
    axes[2].set(title="Size", xlabel="passages", ylabel="MiB", xscale="log")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    """Measure every size, print the table, write ``--out`` and the plot; the results as written."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--query-index", nargs=3, metavar=("INDEX", "QUERIES", "ENCODER"), help=argparse.SUPPRESS
    )  # internal: one index per process
    parser.add_argument("--data", type=Path, help="Folder with squad_v1.1/ and scifact_beir/ (required).")
    parser.add_argument("--sizes", default="10000,50000,200000", help="Comma-separated passage counts.")
    parser.add_argument("--queries", type=int, default=200, help="Queries timed per mode and size.")
    parser.add_argument("--encoder", help="Encoder directory (default: the bundled one).")
    parser.add_argument(
        "--fast-encoder",
        action="store_true",
        help="Embed with the bundled encoder cut to one layer and 32 tokens (same dimensions; build times not "
        "comparable).",
    )
    parser.add_argument("--work", type=Path, help="Scratch folder for corpora and indexes (default: a temporary one).")
    parser.add_argument("--out", type=Path, default=Path("bench/results/scaling.json"))
    parser.add_argument("--plot", type=Path, default=None, help="PNG path (default: next to --out).")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.query_index:
        index_dir, queries_file, encoder = args.query_index
        print(json.dumps(query_index(Path(index_dir), Path(queries_file), encoder or None)))
        return {}
    if args.data is None:
        parser.error("the following arguments are required: --data")
    sizes = [int(s) for s in args.sizes.split(",")]
    pool, queries = sentence_pool(args.data)
    work = Path(tempfile.mkdtemp(prefix="ragqa-scaling-", dir=args.work))
    try:
        encoder = str(fast_encoder(work / "fast-encoder")) if args.fast_encoder else args.encoder
        queries_file = work / "queries.json"
        queries_file.write_text(json.dumps(queries[: args.queries]))
        rows = []
        for n in sizes:
            print(f"{n:,} passages ...", file=sys.stderr, flush=True)
            rows.append(run_size(n, pool, queries_file, work, encoder))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows.sort(key=lambda r: r["passages"])

    results = {
        "machine": machine(),
        "command": command(__file__, argv),
        "versions": versions("ragqa", "torch", "faiss-cpu", "bm25s"),
        "sentence_pool": len(pool),
        "encoder": "first layer, 32 tokens (--fast-encoder)" if args.fast_encoder else (args.encoder or "bundled"),
        "sizes": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    png = args.plot or args.out.with_suffix(".png")
    plot(rows, png)
    print(
        markdown_table(
            [
                "passages",
                "build s",
                "build peak RSS MiB",
                "index MiB",
                "RSS added by load MiB",
                "load s",
                "BM25 p50/p95 ms",
                "dense p50/p95 ms",
                "hybrid p50/p95 ms",
            ],
            [
                [
                    f"{r['passages']:,}",
                    f"{r['build_wall_s']:.0f}",
                    f"{r['build_peak_rss_mb']:.0f}",
                    f"{r['index_mb']:.0f}",
                    f"{r['rss_added_by_load_mb']:.0f}",
                    f"{r['load_s']:.2f}",
                    f"{r['bm25']['p50_ms']:.2f} / {r['bm25']['p95_ms']:.2f}",
                    f"{r['dense']['p50_ms']:.1f} / {r['dense']['p95_ms']:.1f}",
                    f"{r['hybrid']['p50_ms']:.1f} / {r['hybrid']['p95_ms']:.1f}",
                ]
                for r in rows
            ],
        )
    )
    print(f"\nMachine: {results['machine']['cpu']}, {results['machine']['cores']} cores; plot: {png}")
    return results


if __name__ == "__main__":
    main()
