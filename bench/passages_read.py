"""How many passages to read: the top answer end to end against `ragqa ask -k`.

    python bench/passages_read.py --data ../shared/data [--tune 600] [--test 500] [--reader DIR]

Indexes the paragraphs of the SQuAD v1.1 train articles ragqa holds out of
training (as `ragqa tune-reader` does), asks a seeded sample of the tuning
half and of the test half of their questions (top-10 hybrid), and reads each
question's ten passages once, keeping every candidate span with the passage it
came from; reading the first k passages is then the candidates of those k.
The test-half questions are also asked with their own article filtered out
(the documents do not answer them), as `ragqa tune-reader` reports abstention.
For each k the table gives, on the test half:

- how often the question's own paragraph is among the k passages;
- the top answer's exact match with the reader's fitted retriever weight, and
  with the weight that scores best at that k on the tuning half;
- at the reader's fitted no-answer threshold: the share answered, exact match
  counting an abstention as wrong, and the share it abstains on of the same
  questions asked with their article left out (`ragqa eval` leaves out only
  the question's own paragraph, whose article's other paragraphs are on the
  same topic, and abstains less often there).

Reading time grows with k in proportion (`bench/reader_speed.py`).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import command, machine, markdown_table, versions  # noqa: E402

KS = (1, 2, 3, 5, 7, 10)
WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)


def read_all(reader, index, examples, exclude_gold: bool) -> list:
    """Each question's candidates over its ten passages (``ragqa tune-reader``'s ``collect``)."""
    from rag_qa.evaluation.tune_reader import collect

    return collect(reader, index, examples, max(KS), exclude_gold)


def own_rank(example, candidates) -> int | None:
    """Where the question's own paragraph (a passage of it) is among the passages read."""
    from rag_qa.data import article_title

    return next(
        (
            i
            for i, p in enumerate(candidates.passages)
            if p.title == article_title(example.title) and (p.text in example.context or example.context in p.text)
        ),
        None,
    )


def top(candidates, k: int, weight: float) -> tuple[str, float]:
    """The top answer reading the first ``k`` passages, and its margin over "no answer"."""
    from rag_qa.evaluation.tune_reader import no_answer_margin, top_answer

    first = candidates.first(k)
    if not first.texts:
        return "", float("-inf")
    return top_answer(first, weight)[0], no_answer_margin(first)


def em(rows: list, k: int, weight: float) -> float:
    from rag_qa.evaluation.tune_reader import exact

    return 100 * float(np.mean([exact(c, top(c, k, weight)[0]) for c in rows]))


def table(results: dict) -> str:
    header = [
        "passages read (k)",
        "own paragraph among them",
        f"top answer EM, weight {results['settings']['retriever_weight']:g}",
        "top answer EM, weight fitted at k (weight)",
        "answered",
        "EM with the threshold",
        "abstains, own article left out",
    ]
    rows = [
        [
            r["k"],
            f"{r['own_paragraph']:.1f}%",
            f"{r['em']:.1f}",
            f"{r['em_fitted']:.1f} ({r['fitted_weight']:g})",
            f"{r['answered']:.1f}%",
            f"{r['em_with_threshold']:.1f}",
            f"{r['abstained_unanswerable']:.1f}%",
        ]
        for r in results["rows"]
    ]
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (holds squad_v1.1/)")
    parser.add_argument("--tune", type=int, default=600, help="tuning-half questions that choose the weight per k")
    parser.add_argument("--test", type=int, default=500, help="test-half questions reported")
    parser.add_argument("--reader", default=None, help="reader directory (default: the shipped reader)")
    parser.add_argument("--runtime", default="onnx", help="reader runtime (as `ragqa ask --runtime`)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "passages_read.json")
    args = parser.parse_args(argv)

    from rag_qa.data import held_out_role, read_squad, split_by_article, squad_paragraphs
    from rag_qa.evaluation.tune_reader import exact, held_out_index
    from rag_qa.reading.reader import Reader

    squad = args.data / "squad_v1.1" / "train-v1.1.json.gz"
    reader = Reader(args.reader, runtime=args.runtime)
    held = split_by_article(read_squad(squad))[1]
    rng = random.Random(0)
    tune = rng.sample([e for e in held if held_out_role(e.qid) == "tune"], args.tune)
    test = rng.sample([e for e in held if held_out_role(e.qid) == "test"], args.test)
    with tempfile.TemporaryDirectory() as tmp:
        index = held_out_index(held, Path(tmp), show_progress=False)
        passages = len(index)
        tune_rows = read_all(reader, index, tune, exclude_gold=False)
        test_rows = read_all(reader, index, test, exclude_gold=False)
        unanswerable = read_all(reader, index, test, exclude_gold=True)
    ranks = [own_rank(e, c) for e, c in zip(test, test_rows)]

    weight = reader.config.retriever_weight or 0.0
    threshold = reader.config.no_answer_threshold
    out_rows = []
    for k in KS:
        fitted = max(WEIGHTS, key=lambda w: (em(tune_rows, k, w), -w))
        tops = [top(r, k, weight) for r in test_rows]
        out_rows.append(
            {
                "k": k,
                "own_paragraph": 100 * float(np.mean([r is not None and r < k for r in ranks])),
                "em": em(test_rows, k, weight),
                "fitted_weight": fitted,
                "em_fitted": em(test_rows, k, fitted),
                "answered": 100 * float(np.mean([m >= threshold for _, m in tops])),
                "em_with_threshold": 100
                * float(np.mean([exact(c, t) if m >= threshold else 0.0 for c, (t, m) in zip(test_rows, tops)])),
                "abstained_unanswerable": 100
                * float(np.mean([top(r, k, weight)[1] < threshold for r in unanswerable])),
            }
        )
    results = {
        "command": command(__file__, argv),
        "machine": machine(),
        "versions": versions("ragqa", "onnxruntime", "torch"),
        "reader": reader.backend,
        "settings": {"retriever_weight": weight, "no_answer_threshold": threshold, "mode": "hybrid"},
        "questions": {"tune": len(tune_rows), "test": len(test_rows), "unanswerable": len(unanswerable)},
        "paragraphs": len(squad_paragraphs(held)),
        "passages": passages,
        "rows": out_rows,
    }
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
