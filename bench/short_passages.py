"""Short passages: does a reader answer one- and two-sentence passages at its
fitted no-answer threshold, and stay silent where they do not say?

A reader's threshold is fitted on SQuAD paragraphs (`ragqa tune-reader`),
which run to 120 words and more; users' notes, FAQs and manuals hold
passages of one sentence. This reads the hand-written set in
`bench/fixtures/short_passages.json` (40 answerable questions, 12 on the
passage's topic that it does not answer) two ways, for each reader given:

- gold: each question with its own passage alone (`ragqa eval-reader` on the file);
- corpus: every question asked of an index of all the set's passages, top-10
  hybrid, as `ragqa ask` would. More passages can only raise the margin over
  "no answer" (the best span of all of them against the lowest no-answer
  score), so this mode shows the wrong answers that other passages draw out
  of questions the documents do not answer, not a reader going silent.

    python bench/short_passages.py [--reader DIR ...] [--out FILE]

`make bench` measures the shipped reader alone; the comparison in the reader's
model card is `--reader models/reader-stage5 --reader rag_qa/resources/reader
--out bench/results/short_passages_vs_stage5.json`, with stage 5 taken from git
(docs/fine-tuning.md, "The reader training campaign").
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import REPO, command, machine, markdown_table, versions  # noqa: E402

DATA = Path(__file__).parent / "fixtures" / "short_passages.json"


def corpus_scores(qa, examples) -> dict[str, float]:
    """Answered / exact among the answerable questions and abstained among the others, asked of the index."""
    from rag_qa.evaluation.metrics import exact_match

    answerable = [e for e in examples if not e.is_impossible]
    unanswerable = [e for e in examples if e.is_impossible]
    tops = {e.qid: qa.ask(e.question, top_k_passages=10, top_k_answers=1) for e in examples}
    right = [bool(tops[e.qid]) and max(exact_match(tops[e.qid][0].text, g) for g in e.answer_texts) for e in answerable]
    return {
        "answered_answerable": 100 * sum(bool(tops[e.qid]) for e in answerable) / len(answerable),
        "exact_match": 100 * sum(right) / len(answerable),
        "no_ans_accuracy": 100 * sum(not tops[e.qid] for e in unanswerable) / len(unanswerable),
    }


def main(argv: list[str] | None = None) -> dict:
    """Measure each reader, print the table, write ``--out``; the results as written."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--reader", type=Path, action="append", help="reader directory, once per reader (default: the shipped reader)"
    )
    parser.add_argument("--data", type=Path, default=DATA, help="SQuAD v2.0-format file of short passages")
    parser.add_argument("--runtime", default="onnx", help="reader runtime (as `ragqa ask --runtime`)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "short_passages.json")
    args = parser.parse_args(argv)

    from rag_qa import Index, RagQA
    from rag_qa.data import read_squad
    from rag_qa.evaluation.reader_eval import evaluate_reader
    from rag_qa.models import weights_sha256
    from rag_qa.reading.reader import Reader, default_reader_path

    examples = read_squad(args.data)
    readers = args.reader or [default_reader_path()]
    rows, measured = [], []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "short.jsonl"
        contexts = list(dict.fromkeys(e.context for e in examples))
        corpus.write_text("\n".join(json.dumps({"id": str(i), "text": c}) for i, c in enumerate(contexts)) + "\n")
        index = Index.build([corpus], Path(tmp) / "index", show_progress=False)
        for given in readers:
            inside = Path(given).resolve().is_relative_to(REPO)
            path = Path(given).resolve().relative_to(REPO) if inside else Path(given)
            reader = Reader(given, runtime=args.runtime)
            gold = evaluate_reader(reader, args.data)
            at = gold["abstention"]["at_reader_threshold"]
            asked = corpus_scores(RagQA(index, reader), examples)
            result = {
                "reader": str(path),
                "weights_sha256": weights_sha256(reader.path),
                "runtime": reader.backend,
                "no_answer_threshold": reader.config.no_answer_threshold,
                "gold": {
                    "exact_match_always_answering": gold["exact_match"],
                    "f1_always_answering": gold["f1"],
                    "answered_answerable": at["answered_answerable"],
                    "exact_match": at["has_ans_exact_match"],
                    "no_ans_accuracy": at["no_ans_accuracy"],
                },
                "corpus": asked,
            }
            measured.append(result)
            g = result["gold"]
            rows.append(
                [
                    str(path),
                    f"{reader.config.no_answer_threshold:.2f}",
                    f"{g['exact_match_always_answering']:.1f} / {g['f1_always_answering']:.1f}",
                    f"{g['answered_answerable']:.1f}% / {g['exact_match']:.1f}",
                    f"{g['no_ans_accuracy']:.1f}%",
                    f"{asked['answered_answerable']:.1f}% / {asked['exact_match']:.1f}",
                    f"{asked['no_ans_accuracy']:.1f}%",
                ]
            )
    results = {
        "machine": machine(),
        "command": command(__file__, argv),
        "versions": versions("ragqa", "torch", "transformers", "onnxruntime"),
        "data": str(args.data.resolve().relative_to(REPO))
        if args.data.resolve().is_relative_to(REPO)
        else str(args.data),
        "answerable": sum(not e.is_impossible for e in examples),
        "unanswerable": sum(e.is_impossible for e in examples),
        "readers": measured,
    }
    print(
        markdown_table(
            [
                "reader",
                "threshold",
                "gold: EM / F1 always answering",
                "gold: answered / EM",
                "gold: abstains, unanswerable",
                "corpus: answered / EM",
                "corpus: abstains, unanswerable",
            ],
            rows,
        )
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
