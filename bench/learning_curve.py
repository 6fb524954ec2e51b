"""The reader's learning curve over its training stages, from what each stage recorded.

    python bench/learning_curve.py [--reader rag_qa/resources/reader] [--out bench/results/learning_curve.json]

Reads the reader's ``eval_results.json``, in which each stage keeps the
results of the stages before it (``previous_stages``), and tabulates per
stage: training windows and CPU minutes (cumulative), and exact match / F1
on the test half of the held-out questions (gold passage, 384-token
windows), where the stage measured it. Writes the table as JSON and a plot of
test-half EM and F1 against cumulative training windows and CPU hours.
Nothing is re-measured: the figures are those the stages recorded with the
commands their model cards give.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import command, machine, markdown_table  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# The shipped reader's targets on the test half (gold passage), drawn for scale.
TARGET_EM, TARGET_F1 = 60, 73


def stages(results: dict) -> list[dict]:
    """The stages, first first: windows, minutes and test-half scores where recorded."""
    chain, node = [], results
    while node:
        chain.append(node)
        node = node.get("previous_stages") or node.get("previous_stage")
    chain.reverse()
    rows, windows, minutes = [], 0, 0.0
    for number, stage in enumerate(chain, start=1):
        windows += stage["train_windows"]
        minutes += stage["train_seconds"] / 60
        row = {
            "stage": number,
            "windows": stage["train_windows"],
            "cumulative_windows": windows,
            "cpu_minutes": stage["train_seconds"] / 60,
            "cumulative_cpu_hours": minutes / 60,
            "learning_rate": stage["config"]["learning_rate"],
            "answerless_paragraphs": stage.get("answerless_paragraphs", 0),
        }
        gold = stage.get("held_out_gold_passages") or {}
        if gold.get("questions") == 1511:  # the test half; earlier records scored all held-out questions
            row["test_half"] = {k: gold["this_reader"][k] for k in ("exact_match", "f1")}
            if number > 1 and "test_half" not in rows[-1]:
                rows[-1]["test_half"] = {k: gold["previous_reader"][k] for k in ("exact_match", "f1")}
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    body = []
    for i, r in enumerate(rows):
        t = r.get("test_half")
        prev = next((p["test_half"] for p in reversed(rows[:i]) if "test_half" in p), None)
        per_hour = f"{(t['exact_match'] - prev['exact_match']) / (r['cpu_minutes'] / 60):+.1f}" if t and prev else "-"
        body.append(
            [
                r["stage"],
                f"{r['windows']:,}",
                f"{r['cumulative_windows']:,}",
                f"{r['cpu_minutes']:.0f}",
                f"{r['cumulative_cpu_hours']:.1f}",
                f"{t['exact_match']:.2f} / {t['f1']:.2f}" if t else "-",
                per_hour,
            ]
        )
    header = ["stage", "windows", "windows so far", "CPU min", "CPU h so far", "test-half EM / F1", "EM per CPU h"]
    return markdown_table(header, body)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [r for r in rows if "test_half" in r]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in (
        (axes[0], "cumulative_windows", "training windows so far"),
        (axes[1], "cumulative_cpu_hours", "CPU hours so far (2 cores)"),
    ):
        xs = [r[key] for r in scored]
        ax.plot(xs, [r["test_half"]["exact_match"] for r in scored], marker="o", label="EM")
        ax.plot(xs, [r["test_half"]["f1"] for r in scored], marker="s", label="F1")
        for r in scored:
            ax.annotate(
                f"stage {r['stage']}",
                (r[key], r["test_half"]["exact_match"]),
                textcoords="offset points",
                xytext=(0, -14),
                ha="center",
                fontsize=8,
            )
        ax.axhline(TARGET_EM, color="C0", linestyle="--", linewidth=0.8, label=f"EM target {TARGET_EM}")
        ax.axhline(TARGET_F1, color="C1", linestyle="--", linewidth=0.8, label=f"F1 target {TARGET_F1}")
        ax.set_xlabel(label)
        if key == "cumulative_windows":  # thousands, so the tick labels do not run together
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:.0f}k"))
        ax.set_ylabel("test half, gold passage")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle("Shipped reader (all-MiniLM-L6-v2, 6 layers) over its CPU stages")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reader", type=Path, default=REPO / "rag_qa" / "resources" / "reader")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "learning_curve.json")
    args = parser.parse_args(argv)
    rows = stages(json.loads((args.reader / "eval_results.json").read_text()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "command": command("learning_curve.py", argv),
        "machine": machine(),
        "reader": _shown(args.reader),
        "stages": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, args.out.with_suffix(".png"))
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
