"""Helpers shared by the benchmark scripts: data loading, timing, machine info."""

from __future__ import annotations

import gzip
import json
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

import numpy as np

REPO = Path(__file__).resolve().parents[1]


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


T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Timings:
    """Wall times of timed calls, with what the calls returned.

    The one place the benchmarks turn times into numbers: percentiles by
    ``numpy.percentile`` (its default, linear interpolation) in milliseconds,
    throughput as work done over the total timed seconds.
    """

    seconds: tuple[float, ...]
    results: tuple = ()

    @property
    def calls(self) -> int:
        return len(self.seconds)

    @property
    def total_s(self) -> float:
        return sum(self.seconds)

    def percentile_ms(self, q: float) -> float:
        """The ``q``-th percentile (0-100) of the call times, in milliseconds."""
        return 1000 * float(np.percentile(self.seconds, q))

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p95_ms(self) -> float:
        return self.percentile_ms(95)

    @property
    def median_s(self) -> float:
        return self.p50_ms / 1000

    @property
    def min_s(self) -> float:
        return min(self.seconds)

    @property
    def max_s(self) -> float:
        return max(self.seconds)

    def per_second(self, units: float | None = None) -> float:
        """Throughput: ``units`` of work (default: one per call) per second of timed calls."""
        return (self.calls if units is None else units) / self.total_s

    def latency(self) -> dict[str, float]:
        """Per-call latency, as the results files store it."""
        return {"p50_ms": self.p50_ms, "p95_ms": self.p95_ms}

    def spread(self) -> dict[str, float]:
        """Median, fastest and slowest call in seconds, and how many calls were timed."""
        return {"median_s": self.median_s, "min_s": self.min_s, "max_s": self.max_s, "runs": self.calls}


def time_calls(fn: Callable[[T], R], items: Iterable[T], warmup: int = 0) -> Timings:
    """Call ``fn`` on every item, timing each call.

    The first ``warmup`` items are also called once beforehand, untimed, so
    that loading and caching stay out of the times.
    """
    items = list(items)
    for item in items[:warmup]:
        fn(item)
    seconds, results = [], []
    for item in items:
        start = time.perf_counter()
        result = fn(item)
        seconds.append(time.perf_counter() - start)
        results.append(result)
    return Timings(tuple(seconds), tuple(results))


def time_repeated(fn: Callable[[], object], repeat: int, warmup: int = 1) -> Timings:
    """Time ``repeat`` runs of ``fn()``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    return time_calls(lambda _: fn(), range(repeat))


def time_once(fn: Callable[[], R]) -> tuple[R, float]:
    """``fn()`` and the seconds it took, for one-off steps such as building an index."""
    timings = time_calls(lambda _: fn(), [None])
    return timings.results[0], timings.total_s


def time_gold_reading(reader, examples: Sequence, batch: int = 32) -> tuple[dict[str, str], float]:
    """A ragqa reader's answer to each example in its own paragraph, and passages read per second.

    ``examples`` have ``qid``, ``question`` and ``context``; they are read in
    batches of ``batch``, the first of them once more beforehand as a warm-up.
    """
    from rag_qa.evaluation.reader_eval import predict_gold

    batches = [examples[i : i + batch] for i in range(0, len(examples), batch)]
    timings = time_calls(lambda chunk: predict_gold(reader, chunk), batches, warmup=1)
    predictions = {qid: text for found in timings.results for qid, text in found.items()}
    return predictions, timings.per_second(len(examples))


def machine() -> dict[str, object]:
    """The machine and commit a result was measured on."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    info: dict[str, object] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import torch

        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch"] = torch.__version__
    except ImportError:
        info["gpu"] = None
    try:
        info["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
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
