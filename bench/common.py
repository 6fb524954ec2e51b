"""Helpers shared by the benchmark scripts: data loading, timing, machine info."""

from __future__ import annotations

import gzip
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable


def load_squad(path: Path) -> list[dict]:
    """SQuAD JSON (.json or .json.gz) as a list of articles."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)["data"]


def load_corpus(data_dir: Path, max_passages: int | None, seed: int = 0) -> tuple[list[dict], list[str]]:
    """SQuAD paragraphs and SciFact abstracts as JSONL-ready rows, and questions.

    Returns ``(rows, queries)``: rows have ``id``, ``title``, ``text``; queries
    are the SQuAD questions and SciFact claims, shuffled.
    """
    rows, queries = [], []
    for a, article in enumerate(load_squad(data_dir / "squad_v1.1" / "train-v1.1.json.gz")):
        for p, para in enumerate(article["paragraphs"]):
            rows.append({"id": f"squad-{a}-{p}", "title": article["title"].replace("_", " "), "text": para["context"]})
            queries.extend(q["question"] for q in para["qas"])
    scifact = data_dir / "scifact_beir"
    with open(scifact / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            rows.append({"id": f"scifact-{doc['_id']}", "title": doc.get("title", ""), "text": doc["text"]})
    with open(scifact / "queries.jsonl", encoding="utf-8") as fh:
        queries.extend(json.loads(line)["text"] for line in fh)
    rng = random.Random(seed)
    if max_passages is not None and len(rows) > max_passages:
        rows = rng.sample(rows, max_passages)
    rng.shuffle(queries)
    return rows, queries


def timed(fn: Callable[[], object], repeat: int = 3, warmup: int = 1) -> dict[str, float]:
    """Run ``fn`` ``warmup`` + ``repeat`` times; median and spread of the timed runs (seconds)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "runs": repeat}


def machine() -> dict[str, object]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    info: dict[str, object] = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    try:
        import torch

        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch"] = torch.__version__
    except ImportError:
        info["gpu"] = None
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["commit"] = None
    return info


def command(script: str, argv: list[str] | None) -> str:
    """The command line that produced a result, for the tables that quote it."""
    import shlex

    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python", f"bench/{Path(script).name}", *(shlex.quote(a) for a in args)])


def versions(*packages: str) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
