"""Reader training throughput on this machine: windows/s of `ragqa train-reader` under variations.

    python bench/train_throughput.py --data ../shared/data [--examples 640] [--repeat 1]
                                     [--variants baseline,seq192,...]

Each variant trains the default base (all-MiniLM-L6-v2) for two passes over
the same ``--examples`` SQuAD v1.1 train questions through
:func:`rag_qa.training.reader.train_reader`, in its own process, and times
every step. Throughput is the windows of the second pass over its time. The
first pass is timed apart: each new batch shape (length-grouped batches are
padded to their longest window, a multiple of 8) pays for building its
kernels once, which a long run amortises and a short one does not. A whole
pass is timed because length-grouped batches come longest first: a few
steps would time only the longest windows.
Variants change one thing from the baseline (the shipped recipe's
settings: 256 tokens, batch 32, bfloat16 autocast where the CPU has it,
length-grouped batches):

- ``seq192``: ``max_seq_length: 192`` (``doc_stride: 64``): more windows per
  long question, fewer padded tokens per window; windows/s and questions/s.
- ``batch64``: batch 64.
- ``unfused_adamw``: ``optimizer: adamw_torch`` (the default is the fused kernel,
  ``adamw_torch_fused``, since it measured faster here).
- ``freeze_embeddings``: ``freeze_word_embeddings: true``, the word embeddings get no gradient.
- ``compile``: ``torch_compile=True`` with the inductor backend (``compiled_graphs`` in
  the result counts the graphs it built; 0 means nothing was compiled).
- ``fp32``: no mixed precision (``precision: fp32``).
- ``ungrouped``: random batches padded to their longest (``group_by_length: false``).
- ``threads1``: one process on one thread (``OMP_NUM_THREADS=1``), the other cores idle.
- ``side_by_side``: two ``threads1`` processes at once, each on its own
  copy of the questions: windows/s is their sum, what two runs trained side
  by side (an A/B pair) get from the machine together.

Only speed is measured here: whether a variant also keeps accuracy needs
full runs. ``compile`` is applied by patching the Trainer's arguments in the
child process; the others are config keys.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import command, machine, markdown_table, versions  # noqa: E402

VARIANTS = (
    "baseline",
    "seq192",
    "batch64",
    "unfused_adamw",
    "freeze_embeddings",
    "compile",
    "fp32",
    "ungrouped",
    "threads1",
    "side_by_side",
)

CHILD = r"""
import json, sys, time
import transformers
from rag_qa.training.reader import ReaderTrainConfig, train_reader

variant, data, out, examples = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
settings = dict(epochs=2.0, warmup_ratio=0.0, eval_steps=10**6, eval_examples=16, max_train_examples=examples,
                logging_steps=10**6, early_stopping_patience=10**6)
if variant == "seq192":
    settings.update(max_seq_length=192, doc_stride=64)
if variant == "batch64":
    settings.update(batch_size=64)
if variant == "fp32":
    settings.update(precision="fp32")
if variant == "ungrouped":
    settings.update(group_by_length=False)
if variant == "unfused_adamw":
    settings.update(optimizer="adamw_torch")
if variant == "freeze_embeddings":
    settings.update(freeze_word_embeddings=True)
config = ReaderTrainConfig(**settings)

times = []


class StepTimer(transformers.TrainerCallback):
    def on_step_begin(self, args, state, control, **kwargs):
        self.began = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        times.append(time.perf_counter() - self.began)


real_init = transformers.Trainer.__init__


def init(self, *args, **kwargs):
    kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), StepTimer()]
    targs = kwargs["args"]
    if variant == "compile":  # the backend too: without it accelerate's dynamo plugin compiles nothing
        targs.torch_compile, targs.torch_compile_backend = True, "inductor"
    real_init(self, *args, **kwargs)


transformers.Trainer.__init__ = init
result = train_reader(data, out, config, show_progress=False)
from torch._dynamo.utils import counters
print(json.dumps({"step_seconds": times, "train_windows": result["train_windows"],
                  "compiled_graphs": int(counters["stats"]["unique_graphs"]),
                  "train_questions": result["train_questions"] + result["answerless_paragraphs"],
                  "batch_size": config.batch_size, "max_seq_length": config.max_seq_length}))
"""


def _child(variant: str, data: Path, out: str, examples: int) -> subprocess.Popen:
    env = dict(os.environ, **({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} if variant == "threads1" else {}))
    command_line = [sys.executable, "-c", CHILD, variant, str(data), out, str(examples)]
    return subprocess.Popen(command_line, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def run_variant(variant: str, data: Path, examples: int) -> dict:
    """One variant's summarised run; ``side_by_side`` is two ``threads1`` runs at once, summed."""
    copies = 2 if variant == "side_by_side" else 1
    child_variant = "threads1" if variant == "side_by_side" else variant
    with tempfile.TemporaryDirectory(prefix="ragqa-throughput-") as out:
        children = [_child(child_variant, data, f"{out}/{n}", examples) for n in range(copies)]
        finished = [(child, *child.communicate()) for child in children]
    runs = []
    for child, stdout, stderr in finished:
        if child.returncode != 0:
            return {"variant": variant, "error": stderr.strip().splitlines()[-1] if stderr.strip() else "failed"}
        runs.append(summarise({"variant": variant, **json.loads(stdout.strip().splitlines()[-1])}))
    if copies == 1:
        return runs[0]
    summed = dict(runs[0], processes=copies)
    for key in ("windows_per_s", "questions_per_s"):
        summed[key] = sum(r[key] for r in runs)
    summed["per_process_windows_per_s"] = [r["windows_per_s"] for r in runs]
    return summed


def summarise(run: dict) -> dict:
    if "error" in run:
        return run
    per_pass = -(-run["train_windows"] // run["batch_size"])  # steps of one pass
    first, timed = run["step_seconds"][:per_pass], run["step_seconds"][per_pass:]
    windows_per_s = run["train_windows"] / sum(timed)
    windows_per_question = run["train_windows"] / run["train_questions"]
    return {
        **run,
        "windows_per_s": windows_per_s,
        "questions_per_s": windows_per_s / windows_per_question,
        "first_pass_s": sum(first),
        "second_pass_s": sum(timed),
        "windows_per_question": windows_per_question,
    }


def table(result: dict) -> str:
    base = next((r for r in result["runs"] if r["variant"] == "baseline" and "error" not in r), None)
    rows = []
    for r in result["runs"]:
        if "error" in r:
            rows.append([r["variant"], "failed: " + r["error"][:80], "", "", "", "", "", ""])
            continue
        ratio = f"{r['windows_per_s'] / base['windows_per_s']:.2f}x" if base else "-"
        q_ratio = f"{r['questions_per_s'] / base['questions_per_s']:.2f}x" if base else "-"
        rows.append(
            [
                r["variant"],
                f"{r['windows_per_s']:.1f}",
                "-".join(f"{w:.1f}" for w in r.get("windows_per_s_range", [])),
                ratio,
                f"{r['questions_per_s']:.2f}",
                q_ratio,
                f"{r['first_pass_s']:.0f}",
                f"{r['second_pass_s']:.0f}",
            ]
        )
    header = [
        "variant",
        "windows/s",
        "rounds' range",
        "vs baseline",
        "questions/s",
        "vs baseline",
        "first pass s",
        "second pass s",
    ]
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with squad_v1.1/train-v1.1.json.gz")
    parser.add_argument("--examples", type=int, default=640, help="training questions of the one timed pass")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each variant, interleaved")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "train_throughput.json")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}: choose from {', '.join(VARIANTS)}")
    squad = args.data / "squad_v1.1" / "train-v1.1.json.gz"
    runs = []
    for round_ in range(args.repeat):
        for variant in variants:
            run = run_variant(variant, squad, args.examples)
            run["round"] = round_
            runs.append(run)
            shown = run.get("error") or f"{run['windows_per_s']:.1f} windows/s"
            print(f"{variant} (round {round_ + 1}): {shown}", file=sys.stderr, flush=True)
    merged = []
    for variant in variants:  # the mean over rounds
        mine = [r for r in runs if r["variant"] == variant and "error" not in r]
        if not mine:
            merged.append(next(r for r in runs if r["variant"] == variant))
            continue
        first = dict(mine[0])
        for key in ("windows_per_s", "questions_per_s", "first_pass_s", "second_pass_s"):
            first[key] = sum(r[key] for r in mine) / len(mine)
        first["rounds"] = len(mine)
        first["windows_per_s_range"] = [min(r["windows_per_s"] for r in mine), max(r["windows_per_s"] for r in mine)]
        first.pop("step_seconds", None)
        merged.append(first)
    result = {
        "command": command("train_throughput.py", argv),
        "machine": machine(),
        "versions": versions("torch", "transformers"),
        "examples": args.examples,
        "runs": merged,
        "all_runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    return result


if __name__ == "__main__":
    main()
