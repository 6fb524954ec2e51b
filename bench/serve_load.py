"""`ragqa serve` under load: requests/s and latency from concurrent clients over
loopback, with micro-batching on (`--batch-size 8`, the default) and off
(`--batch-size 1`).

    python bench/serve_load.py --data ../shared/data [--requests 1000] [--clients 32] [--max-seconds 600]

Indexes the paragraphs of the SQuAD v1.1 train articles that ragqa holds out
of training (the test half, as the other benchmarks), then for each mode starts
a real `ragqa serve` process on a free loopback port with the default runtime
(its reader torch on a CPU with bfloat16 in hardware, else ONNX Runtime; the
results name it) or ``--runtime``, waits for /health, sends one untimed round
of ``--clients`` questions, and then ``--requests`` `POST /ask` (top-10
passages, the held-out questions in turn) from ``--clients`` concurrent
clients. Sending stops at ``--max-seconds`` and the count actually sent is
reported. An error is any answer other than 200
with answers, or a transport error. Each server is stopped with SIGTERM and
must exit cleanly. The clients run on the same machine as the server.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import asyncio
import json
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import Timings, command, machine, markdown_table, versions  # noqa: E402

# (name, `ragqa serve` options); the first reads questions together, the second one at a time.
MODES = (("batched", ("--batch-size", "8")), ("one at a time", ("--batch-size", "1")))


def corpus(data: Path, paragraphs: int | None = None, seed: int = 0) -> tuple[list[dict], list[str]]:
    """Held-out SQuAD paragraphs (all, or ``paragraphs`` of them) as JSONL rows, and their questions, shuffled."""
    from rag_qa.data import held_out_half, read_squad, squad_paragraphs

    held = held_out_half(read_squad(data / "squad_v1.1" / "train-v1.1.json.gz"), "test")
    chosen = list(squad_paragraphs(held).items())
    rng = random.Random(seed)
    if paragraphs is not None and len(chosen) > paragraphs:
        chosen = rng.sample(chosen, paragraphs)
    rows = [{"id": f"squad-{i}", "title": title, "text": text} for i, (text, title) in enumerate(chosen)]
    texts = {text for text, _ in chosen}
    questions = [e.question for e in held if e.context in texts]
    rng.shuffle(questions)
    return rows, questions


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Load:
    """What the clients saw: the seconds of each answered request, and the failures."""

    sent: int = 0
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0


async def send(base: str, questions: list[str], requests: int, clients: int, max_seconds: float, top_k: int) -> Load:
    """``requests`` questions from ``clients`` concurrent clients, none sent after ``max_seconds``."""
    import httpx

    load = Load()
    start = time.perf_counter()
    stop_at = start + max_seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=max(120.0, max_seconds), limits=limits) as client:

        async def one_client() -> None:
            while load.sent < requests and time.perf_counter() < stop_at:
                question = questions[load.sent % len(questions)]
                load.sent += 1
                began = time.perf_counter()
                try:
                    response = await client.post("/ask", json={"question": question, "top_k": top_k})
                except httpx.HTTPError as exc:
                    load.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                try:
                    answered = response.status_code == 200 and "answers" in response.json()
                except ValueError:
                    answered = False
                if not answered:
                    load.errors.append(f"{response.status_code}: {response.text[:200]}")
                    continue
                load.seconds.append(time.perf_counter() - began)

        await asyncio.gather(*(one_client() for _ in range(clients)))
    load.wall_s = time.perf_counter() - start
    return load


def serve_mode(name: str, options: tuple[str, ...], index_dir: Path, questions: list[str], args, work: Path) -> dict:
    """Start `ragqa serve` with ``options``, load it, stop it with SIGTERM; the mode's figures."""
    import httpx

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ragqa = Path(sys.executable).with_name("ragqa")
    cmd = [str(ragqa), "serve", "--index-dir", str(index_dir), "--port", str(port), *options]
    cmd += ["--feedback-dir", str(work / "feedback")] + (["--runtime", args.runtime] if args.runtime else [])
    log_path = work / f"serve-{port}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    try:
        deadline = time.monotonic() + args.start_timeout
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"`ragqa serve` did not become healthy; its log:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        warmup = asyncio.run(send(base, questions[::-1], args.clients, args.clients, args.max_seconds, args.top_k))
        before = httpx.get(f"{base}/info", timeout=30).json()
        load = asyncio.run(send(base, questions, args.requests, args.clients, args.max_seconds, args.top_k))
        after = httpx.get(f"{base}/info", timeout=30).json()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log = log_path.read_text()
    timings = Timings(tuple(load.seconds))
    batches = after["batching"]["batches"] - before["batching"]["batches"]
    read = after["batching"]["questions"] - before["batching"]["questions"]
    return {
        "mode": name,
        "serve_options": list(options),
        "reader": after["reader"]["backend"],
        "requests": load.sent,
        "answered": timings.calls,
        "errors": len(load.errors),
        "error_examples": sorted(set(load.errors))[:5],
        "warmup_requests": warmup.sent,
        "warmup_errors": len(warmup.errors),
        "stopped_at_max_seconds": load.sent < args.requests,
        "p50_ms": timings.p50_ms if timings.calls else None,
        "p95_ms": timings.p95_ms if timings.calls else None,
        "max_ms": 1000 * timings.max_s if timings.calls else None,
        "requests_per_s": timings.calls / load.wall_s if load.wall_s else 0.0,
        "wall_s": load.wall_s,
        "reader_batches": batches,
        "questions_per_batch": read / batches if batches else None,
        "clean_exit": proc.returncode in (0, -signal.SIGTERM)
        and "Application shutdown complete" in log
        and "Traceback" not in log,
    }


def table(r: dict) -> str:
    """The modes as a Markdown table."""
    rows = [
        [
            m["mode"] + (" (stopped at the time limit)" if m["stopped_at_max_seconds"] else ""),
            f"`{' '.join(m['serve_options'])}`",
            f"{m['requests']:,}",
            m["errors"],
            "" if m["p50_ms"] is None else f"{m['p50_ms']:,.0f}",
            "" if m["p95_ms"] is None else f"{m['p95_ms']:,.0f}",
            f"{m['requests_per_s']:.2f}",
            "" if m["questions_per_batch"] is None else f"{m['questions_per_batch']:.1f}",
        ]
        for m in r["modes"]
    ]
    header = ["reading", "serve options", "requests", "errors", "p50 ms", "p95 ms", "requests/s", "questions/pass"]
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> dict:
    """Measure, print the table, write ``--out``; the results as written."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder with squad_v1.1/")
    parser.add_argument(
        "--paragraphs", type=int, default=None, help="held-out SQuAD paragraphs to index (default: all 595)"
    )
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per mode")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop sending after this long, per mode")
    parser.add_argument("--top-k", type=int, default=10, help="passages read per question")
    parser.add_argument("--runtime", default=None, help="reader runtime for `ragqa serve` (default: its own)")
    parser.add_argument("--index-dir", type=Path, default=None, help="build the index here (default: a temp folder)")
    parser.add_argument("--start-timeout", type=float, default=600.0, help="seconds a server may take to be healthy")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve_load.json")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.clients < 1 or args.max_seconds <= 0:
        parser.error("--requests and --clients must be at least 1, --max-seconds above 0")

    from rag_qa import Index

    rows, questions = corpus(args.data, args.paragraphs)
    if not questions:
        raise SystemExit(f"{args.data}: the SQuAD file has no held-out articles to index and ask: use the full file")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        index_dir = args.index_dir or work / "index"
        # Beside a kept index, the same documents file: a second run reuses its passages' embeddings.
        docs = index_dir.with_name(index_dir.name + "-heldout.jsonl") if args.index_dir else work / "heldout.jsonl"
        docs.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        index = Index.build([docs], index_dir, show_progress=False)
        results: dict = {
            "machine": machine(),
            "command": command(__file__, argv),
            "versions": versions("ragqa", "uvicorn", "fastapi", "onnxruntime", "torch"),
            "corpus": {"documents": len(rows), "passages": len(index), "questions": len(questions)},
            "settings": {
                "requests": args.requests,
                "clients": args.clients,
                "max_seconds": args.max_seconds,
                "top_k": args.top_k,
                "runtime": args.runtime,
            },
            "modes": [serve_mode(name, options, index_dir, questions, args, work) for name, options in MODES],
        }
    on, off = results["modes"]
    if on["requests_per_s"] and off["requests_per_s"]:
        results["batched_over_one_at_a_time"] = on["requests_per_s"] / off["requests_per_s"]
    print(
        f"`ragqa serve` ({on['reader']}), {results['corpus']['passages']:,} passages, top-{args.top_k}, "
        f"{args.clients} concurrent clients over loopback; "
        f"{results['machine']['cpu']} ({results['machine']['cores']} cores)"
    )
    print(table(results))
    for m in results["modes"]:
        for example in m["error_examples"]:
            print(f"{m['mode']}: {example}")
        if m["warmup_errors"]:
            print(f"{m['mode']}: {m['warmup_errors']} of the {m['warmup_requests']} untimed warm-up requests failed")
        if not m["clean_exit"]:
            print(f"{m['mode']}: the server did not stop cleanly on SIGTERM")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
