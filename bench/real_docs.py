"""Answer quality on real-looking documentation: Markdown READMEs, HTML pages, a
PDF manual, plain-text specs, reStructuredText, a README without extension and
a gzipped text file (tests/fixtures/realdocs), with questions whose exact
answers are known, and questions the documents cannot answer.

    python bench/real_docs.py [--corpus tests/fixtures/realdocs] [--out bench/results/real_docs.json]

Indexes the corpus into a temporary folder, asks every question of
``questions.json`` once (top-10 passages, top-3 answers) and prints, per file
format and overall: top-1 exact match (SQuAD normalisation), top-3 exact match
(any of the first three answers), the right file as the first retrieved
passage, answerable questions the reader declined (false abstentions) and
unanswerable ones it declined (correct abstentions). Then every miss, with what
was expected and what came back. Files ragqa does not read count as misses.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import REPO, command, machine, markdown_table, versions  # noqa: E402

CORPUS = REPO / "tests" / "fixtures" / "realdocs"
# File formats in the order of the table, by how a file name ends.
FORMATS = (
    (".md", "Markdown"),
    (".html", "HTML"),
    (".pdf", "PDF"),
    (".txt.gz", "gzip text"),
    (".txt", "plain text"),
    (".rst", "reStructuredText"),
    ("", "no extension"),
)


def format_of(name: str) -> str:
    """The format row a corpus file counts under, from the end of its name."""
    base = Path(name).name
    for ending, label in FORMATS:
        if (ending and base.endswith(ending)) or (not ending and "." not in base):
            return label
    raise ValueError(f"{name}: no format row for this file type; add its ending to FORMATS in bench/real_docs.py")


def load_questions(corpus: Path) -> list[dict]:
    """The questions of ``corpus/questions.json``, checked: each answerable one names a file under docs/."""
    path = corpus / "questions.json"
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["questions"]
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(
            f"{path}: cannot read the questions ({exc}); pass --corpus the folder with questions.json"
        ) from None
    for row in rows:
        if row["answers"] and not (corpus / "docs" / row["file"]).is_file():
            raise SystemExit(f"{path}: question {row['id']} names {row['file']}, which is not under {corpus / 'docs'}")
    return rows


def corpus_file(source: str, files: list[str]) -> str | None:
    """Which corpus file (relative to docs/) an index source names, whatever it is relative to."""
    source = source.replace("\\", "/")
    return next((f for f in files if source == f or source.endswith("/" + f)), None)


def exact(prediction: str, answers: list[str]) -> bool:
    from rag_qa.text import normalize_answer

    return any(normalize_answer(prediction) == normalize_answer(a) for a in answers)


def ask_all(qa, questions: list[dict], files: list[str]) -> list[dict]:
    """One record per question: what came back and how it scores."""
    records = []
    for row in questions:
        result = qa.ask_full(row["question"], top_k_passages=10, top_k_answers=3)
        got = [a.text for a in result.answers]
        retrieved = corpus_file(result.passages[0].passage.source, files) if result.passages else None
        record = {
            "id": row["id"],
            "question": row["question"],
            "expected": row["answers"],
            "file": row.get("file"),
            "format": format_of(row["file"]) if row["answers"] else None,
            "got": got,
            "got_files": [corpus_file(a.source, files) for a in result.answers],
            "retrieved_file": retrieved,
            "abstained": not got,
        }
        if row["answers"]:
            record["top1_em"] = bool(got) and exact(got[0], row["answers"])
            record["top3_em"] = any(exact(g, row["answers"]) for g in got[:3])
            record["right_file_top1"] = retrieved == row["file"]
        records.append(record)
    return records


def summarise(records: list[dict]) -> dict:
    """Per-format and overall rates (percent) over the answerable questions, and abstention on the rest."""

    def rates(rows: list[dict]) -> dict:
        n = len(rows)
        pct = lambda key: 100 * sum(r[key] for r in rows) / n if n else 0.0  # noqa: E731
        return {
            "questions": n,
            "top1_em": pct("top1_em"),
            "top3_em": pct("top3_em"),
            "right_file_top1": pct("right_file_top1"),
            "false_abstentions": sum(r["abstained"] for r in rows),
        }

    answerable = [r for r in records if r["expected"]]
    unanswerable = [r for r in records if not r["expected"]]
    by_format = {
        label: rates([r for r in answerable if r["format"] == label])
        for _, label in FORMATS
        if any(r["format"] == label for r in answerable)
    }
    abstained = sum(r["abstained"] for r in unanswerable)
    return {
        "by_format": by_format,
        "overall": rates(answerable),
        "unanswerable": {
            "questions": len(unanswerable),
            "abstained": abstained,
            "abstention": 100 * abstained / len(unanswerable) if unanswerable else 0.0,
        },
    }


def table(summary: dict) -> str:
    header = ["format", "questions", "top-1 EM %", "top-3 EM %", "right file @1 %", "false abstentions", "abstention"]
    rows = []
    for label, s in [*summary["by_format"].items(), ("overall", summary["overall"])]:
        u = summary["unanswerable"]
        abstention = f"{u['abstained']}/{u['questions']} ({u['abstention']:.0f}%)" if label == "overall" else ""
        rows.append(
            [
                f"**{label}**" if label == "overall" else label,
                s["questions"],
                f"{s['top1_em']:.1f}",
                f"{s['top3_em']:.1f}",
                f"{s['right_file_top1']:.1f}",
                f"{s['false_abstentions']}/{s['questions']}",
                abstention,
            ]
        )
    return markdown_table(header, rows)


def misses(records: list[dict]) -> list[str]:
    """One line per question the top answer got wrong (or the reader answered though it should not)."""
    lines = []
    for r in records:
        if r["expected"] and r["top1_em"]:
            continue
        if not r["expected"] and r["abstained"]:
            continue
        got = "(abstained)" if r["abstained"] else " | ".join(repr(g) for g in r["got"])
        where = f"{r['file']}, retrieved {r['retrieved_file']}" if r["expected"] else "unanswerable"
        expected = " / ".join(repr(a) for a in r["expected"]) or "(no answer)"
        lines.append(f"- [{r['id']}] {r['question']} ({where})\n    expected {expected}\n    got {got}")
    return lines


def main(argv: list[str] | None = None) -> dict:
    """Index, ask, print the table and the misses, write ``--out``; the results as written."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="folder with docs/ and questions.json")
    parser.add_argument("--reader", type=Path, default=None, help="reader directory (default: the shipped reader)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "real_docs.json")
    args = parser.parse_args(argv)

    import rag_qa
    from rag_qa import RagQA
    from rag_qa.retrieval.builder import build_index

    questions = load_questions(args.corpus)
    docs = args.corpus / "docs"
    files = sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*") if p.is_file())
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        report = build_index([docs], Path(tmp) / "index", show_progress=False)
        built_s = time.perf_counter() - start
        qa = RagQA.load(Path(tmp) / "index", reader=args.reader)
        records = ask_all(qa, questions, files)
    asked_s = time.perf_counter() - start - built_s
    summary = summarise(records)
    indexed = sorted({corpus_file(p.source, files) for p in qa.index.passages} - {None})
    results = {
        "machine": machine(),
        "command": command(__file__, argv),
        "versions": versions("ragqa", "pypdf", "beautifulsoup4", "markdown-it-py"),
        "ragqa_path": str(Path(rag_qa.__file__).parent),
        "corpus": {
            "files": files,
            "indexed_files": indexed,
            "bytes": sum((docs / f).stat().st_size for f in files),
            "passages": report.passages,
            "skipped": [[corpus_file(path, files) or path, why] for path, why in report.skipped],
        },
        "settings": {"top_k_passages": 10, "top_k_answers": 3, "mode": "hybrid"},
        "seconds": {"index": built_s, "ask_all": asked_s},
        **summary,
        "questions": records,
    }

    print(
        f"ragqa from {results['ragqa_path']} at commit {results['machine']['commit']}: "
        f"{len(files)} files ({len(indexed)} indexed, {report.passages} passages), "
        f"{summary['overall']['questions']} answerable and {summary['unanswerable']['questions']} unanswerable "
        f"questions; index {built_s:.0f} s, questions {asked_s:.0f} s\n"
    )
    print(table(summary))
    missed = misses(records)
    print(f"\n{len(missed)} misses:")
    print("\n".join(missed))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    return results


if __name__ == "__main__":
    main()
