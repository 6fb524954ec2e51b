"""Reader speed and quality: passages/s and EM/F1 on gold passages by runtime
(torch float32 / bfloat16, ONNX Runtime float32 / int8), warm `ask` latency at
top-10 passages, and cold `ragqa ask` wall time by runtime.

    python bench/reader_speed.py --data ../shared/data [--reader DIR]

Questions come from the SQuAD v1.1 train articles that ragqa holds out of
training (the same split as `ragqa train-reader`).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import (  # noqa: E402
    command,
    machine,
    markdown_table,
    time_calls,
    time_gold_reading,
    time_repeated,
    versions,
)


def main(argv: list[str] | None = None) -> dict:
    """Measure, print the tables, write ``--out``; the results as written."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder with squad_v1.1/")
    parser.add_argument("--reader", type=Path, default=None, help="reader directory (default: the shipped reader)")
    parser.add_argument("--questions", type=int, default=300, help="held-out questions for EM/F1 and passages/s")
    parser.add_argument("--asks", type=int, default=50, help="questions for warm ask latency")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument(
        "--runtimes",
        default="torch:float32,torch:bfloat16,onnx,onnx-int8",
        help="comma-separated reader runtimes to compare on CPU, as RUNTIME[:PRECISION]",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "reader_speed.json")
    args = parser.parse_args(argv)

    import torch

    from rag_qa import Index, RagQA
    from rag_qa.data import held_out_half, read_squad
    from rag_qa.evaluation.metrics import squad_scores
    from rag_qa.reading.reader import Reader
    from rag_qa.runtime import resolve_runtime

    squad = args.data / "squad_v1.1" / "train-v1.1.json.gz"
    held = held_out_half(read_squad(squad), "test")
    sample = random.Random(0).sample(held, min(args.questions, len(held)))
    references = {e.qid: list(e.answer_texts) for e in sample}
    results: dict = {
        "machine": machine(),
        "command": command(__file__, argv),
        "versions": versions("ragqa", "torch", "transformers"),
        "questions": len(sample),
    }

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    quality = []
    for device in devices:
        for choice in args.runtimes.split(",") if device == "cpu" else ["torch:float16"]:
            runtime, _, precision = choice.partition(":")
            reader = Reader(args.reader, device=device, runtime=runtime, precision=precision or "auto").warm_up()
            predictions, per_s = time_gold_reading(reader, sample)
            scores = squad_scores(predictions, references)
            quality.append(
                {
                    "device": device,
                    "precision": reader.backend,
                    "exact_match": scores["exact_match"],
                    "f1": scores["f1"],
                    "passages_per_s": per_s,
                }
            )
    results["gold_passages"] = quality

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "heldout.jsonl"
        contexts = list(dict.fromkeys(e.context for e in held))
        corpus.write_text("\n".join(json.dumps({"id": str(i), "text": c}) for i, c in enumerate(contexts)) + "\n")
        Index.build([corpus], Path(tmp) / "index", show_progress=False)
        qa = RagQA.load(Path(tmp) / "index", reader=args.reader)
        asked = sample[: args.asks]
        # The warm-up call loads the encoder, FAISS and the reader.
        timings = time_calls(lambda e: qa.ask(e.question, top_k_passages=10, top_k_answers=1), asked, warmup=1)
        predictions = {e.qid: answers[0].text if answers else "" for e, answers in zip(asked, timings.results)}
        e2e = squad_scores(predictions, {e.qid: list(e.answer_texts) for e in asked})
        results["warm_ask"] = {
            "passages": 10,
            "asks": timings.calls,
            **timings.latency(),
            "open_domain_exact_match": e2e["exact_match"],
            "open_domain_f1": e2e["f1"],
            "corpus_passages": len(qa.index),
            "reader_precision": qa.reader.backend,
        }
        ragqa = shutil.which("ragqa") or str(Path(sys.executable).parent / "ragqa")
        cold_by_runtime = {}
        for runtime in ("auto", "torch"):
            cmd = [
                ragqa,
                "-q",
                "ask",
                sample[0].question,
                "--index-dir",
                str(Path(tmp) / "index"),
                "--runtime",
                runtime,
            ] + (["--reader", str(args.reader)] if args.reader else [])
            # The untimed first run exports the models if this runtime needs it.
            cold = time_repeated(
                partial(subprocess.run, cmd, check=True, capture_output=True), args.cold_runs, warmup=1
            )
            cold_by_runtime[runtime] = {
                "median": cold.median_s,
                "min": cold.min_s,
                "max": cold.max_s,
                "runs": cold.calls,
            }
        results["cold_ask_s"] = {
            **cold_by_runtime["auto"],
            "runtime": resolve_runtime("auto"),
            "torch": cold_by_runtime["torch"],
        }

    rows = [
        [q["device"], q["precision"], f"{q['exact_match']:.1f}", f"{q['f1']:.1f}", f"{q['passages_per_s']:.1f}"]
        for q in quality
    ]
    print(
        f"Reader on {len(sample)} held-out SQuAD questions, gold passages; "
        f"{results['machine']['cpu']} ({results['machine']['cores']} cores)"
    )
    print(markdown_table(["device", "runtime", "EM", "F1", "passages/s"], rows))
    w = results["warm_ask"]
    print(
        f"Warm ask, top-10 passages of {w['corpus_passages']:,}: "
        f"p50 {w['p50_ms']:.0f} ms, p95 {w['p95_ms']:.0f} ms over {w['asks']} questions "
        f"(open-domain EM {w['open_domain_exact_match']:.1f}, F1 {w['open_domain_f1']:.1f})"
    )
    c = results["cold_ask_s"]
    print(
        f"Cold `ragqa ask` (new process, load index and models, answer): "
        f"median {c['median']:.2f} s with the default runtime ({c['runtime']}), "
        f"{c['torch']['median']:.2f} s with --runtime torch, over {c['runs']} runs each"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
