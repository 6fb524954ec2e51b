"""Index builds on Ray against the local engine: passages/s, and whether the index is the same.

    python bench/distributed.py --data ../shared/data [--docs 1500] [--workers 1,2]

Writes ``--docs`` SQuAD v1.1 train paragraphs as text files (one per file,
the article title as the first line), then builds an index of them with
``ragqa index`` in its own process: once with the local engine, then with
``--engine ray --workers N`` for each N (a local Ray started by the build, on
this machine). Each build starts from an empty index folder; its wall time
includes starting Python, Ray and the workers, reading, embedding, BM25 and
writing, which is what a user waits for. Each Ray build is compared with the
local one: passages and BM25 arrays byte for byte, embeddings by cosine.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import command, load_squad, machine, markdown_table, versions  # noqa: E402


def ragqa() -> str:
    beside = Path(sys.executable).with_name("ragqa")
    found = str(beside) if beside.is_file() else shutil.which("ragqa")
    if not found:
        raise SystemExit("no ragqa command found: install ragqa (`make install-test`) and run this with its Python")
    return found


def write_docs(data: Path, count: int, folder: Path) -> int:
    folder.mkdir(parents=True)
    written = 0
    for a, article in enumerate(load_squad(data / "squad_v1.1" / "train-v1.1.json.gz")):
        for p, para in enumerate(article["paragraphs"]):
            if written == count:
                return written
            title = article["title"].replace("_", " ")
            (folder / f"{a:03d}-{p:03d}.txt").write_text(f"{title}\n\n{para['context']}\n", encoding="utf-8")
            written += 1
    return written


def build(docs: Path, index_dir: Path, extra: list[str]) -> tuple[dict, float]:
    cmd = [ragqa(), "-q", "index", str(docs), "--index-dir", str(index_dir), "--json", *extra]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout), seconds


def compare(a: Path, b: Path) -> dict:
    def generation(d: Path) -> Path:
        return d / json.loads((d / "manifest.json").read_text())["data_dir"]

    ga, gb = generation(a), generation(b)
    va, vb = np.load(ga / "embeddings.npy"), np.load(gb / "embeddings.npy")
    cosine = (va * vb).sum(1) / np.linalg.norm(va, axis=1) / np.linalg.norm(vb, axis=1)
    return {
        "same_passages": (ga / "passages.jsonl").read_bytes() == (gb / "passages.jsonl").read_bytes(),
        "same_bm25": all(f.read_bytes() == (gb / "bm25" / f.name).read_bytes() for f in (ga / "bm25").iterdir()),
        "min_cosine": float(cosine.min()),
    }


def table(r: dict) -> str:
    rows = []
    for run in r["runs"]:
        same = run.get("same")
        rows.append(
            [
                run["engine"],
                run.get("workers") or "-",
                f"{run['seconds']:.1f}",
                f"{run['passages_per_s']:.1f}",
                f"{run['passages_per_s'] / r['runs'][0]['passages_per_s']:.2f}x",
                "-" if same is None else ("yes" if same["same_passages"] and same["same_bm25"] else "NO"),
                "-" if same is None else f"{same['min_cosine']:.6f}",
            ]
        )
    header = ["engine", "encoder workers", "build s", "passages/s", "vs local", "same passages + BM25", "min cosine"]
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with squad_v1.1/train-v1.1.json.gz")
    parser.add_argument("--docs", type=int, default=1500, help="paragraphs to index, one file each")
    parser.add_argument("--workers", default="1,2", help="encoder workers of the Ray builds, comma-separated")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "distributed.json")
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    with tempfile.TemporaryDirectory(prefix="ragqa-distributed-") as tmp:
        tmp = Path(tmp)
        count = write_docs(args.data, args.docs, tmp / "docs")
        runs = []
        report, seconds = build(tmp / "docs", tmp / "local", [])
        runs.append({"engine": "local", "seconds": seconds, "passages": report["passages"]})
        print(f"local: {report['passages']} passages in {seconds:.1f} s", file=sys.stderr)
        for n in workers:
            folder = tmp / f"ray-{n}"
            report, seconds = build(tmp / "docs", folder, ["--engine", "ray", "--workers", str(n)])
            run = {"engine": "ray", "workers": n, "seconds": seconds, "passages": report["passages"]}
            run["same"] = compare(tmp / "local", folder)
            runs.append(run)
            print(f"ray, {n} workers: {seconds:.1f} s, {run['same']}", file=sys.stderr)
        for run in runs:
            run["passages_per_s"] = run["passages"] / run["seconds"]
    result = {
        "command": command("distributed.py", argv),
        "machine": machine(),
        "versions": versions("ray", "torch", "sentence-transformers"),
        "corpus": {"documents": count, "passages": runs[0]["passages"]},
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    return result


if __name__ == "__main__":
    main()
