"""The real-documents corpus (tests/fixtures/realdocs) is well formed: every
question's answers are in the text of the file it names, unanswerable questions
have none, and the files cover the formats the benchmark reports on.

This checks the yardstick of bench/real_docs.py, not how well ragqa answers.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rag_qa.text import normalize_answer

CORPUS = Path(__file__).parent / "fixtures" / "realdocs"
DOCS = CORPUS / "docs"
QUESTIONS = json.loads((CORPUS / "questions.json").read_text(encoding="utf-8"))["questions"]
ANSWERABLE = [q for q in QUESTIONS if q["answers"]]
UNANSWERABLE = [q for q in QUESTIONS if not q["answers"]]


def _make_pdf():
    spec = importlib.util.spec_from_file_location("realdocs_make_pdf", CORPUS / "make_pdf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _VisibleText(HTMLParser):
    """The text of an HTML page outside <script>, <style> and <head>, entities decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag, attrs):
        self.hidden += tag in ("script", "style", "head")

    def handle_endtag(self, tag):
        self.hidden -= tag in ("script", "style", "head")

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)


def squeeze(text: str) -> str:
    return " ".join(text.split())


def source_text(name: str) -> str:
    """What a person reads in the file: HTML without markup, .gz decompressed, the PDF's words as written."""
    path = DOCS / name
    if name.endswith(".pdf"):
        return _make_pdf().manual_text()
    if name.endswith(".gz"):
        return gzip.decompress(path.read_bytes()).decode("utf-8")
    text = path.read_text(encoding="utf-8")
    if name.endswith(".html"):
        parser = _VisibleText()
        parser.feed(text)
        return html.unescape("".join(parser.parts))
    return text


def test_questions_have_unique_ids_and_text():
    ids = [q["id"] for q in QUESTIONS]
    assert len(ids) == len(set(ids))
    assert all(q["question"].strip() and q["question"].strip() == q["question"] for q in QUESTIONS)
    assert len({q["question"].lower() for q in QUESTIONS}) == len(QUESTIONS)
    assert 60 <= len(ANSWERABLE) <= 80 and 15 <= len(UNANSWERABLE) <= 20


@pytest.mark.parametrize("q", ANSWERABLE, ids=[q["id"] for q in ANSWERABLE])
def test_every_answer_is_in_the_file_it_names(q):
    assert (DOCS / q["file"]).is_file(), f"{q['id']}: {q['file']} is not in {DOCS}"
    # Line breaks in the source may fall inside an answer: compare with white space squeezed.
    text = squeeze(source_text(q["file"]))
    for answer in q["answers"]:
        assert normalize_answer(answer), f"{q['id']}: answer {answer!r} is empty once normalised"
        assert squeeze(answer) in text, f"{q['id']}: {answer!r} is not in {q['file']}"


def test_unanswerable_questions_have_no_answers_and_name_their_tool():
    tools = {p.name for p in DOCS.iterdir() if p.is_dir()}
    for q in UNANSWERABLE:
        assert q["file"] is None and q["about"] in tools, q["id"]


def test_every_file_is_asked_about_and_every_format_is_covered():
    files = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*") if p.is_file())
    assert sorted({q["file"] for q in ANSWERABLE}) == files
    endings = {Path(f).name.partition(".")[2] for f in files}
    assert endings >= {"md", "html", "pdf", "txt", "rst", "txt.gz", ""}
    assert 12 <= len(files) <= 16
    assert sum((DOCS / f).stat().st_size for f in files) < 300_000


def test_answers_that_wrap_across_lines_are_kept():
    """Some answers are split by a line break in the source, as in hand-wrapped text."""
    wrapped = [
        (q["id"], a)
        for q in ANSWERABLE
        for a in q["answers"]
        if not q["file"].endswith(".pdf") and a not in source_text(q["file"])
    ]
    assert wrapped, "no answer wraps across a line break: the corpus lost a case users report"


def test_the_pdf_is_the_generators_output():
    """The committed manual.pdf holds make_pdf.py's text (run make_pdf.py again after editing it)."""
    import pypdfium2

    make_pdf = _make_pdf()
    pdf = pypdfium2.PdfDocument(DOCS / "kestrel" / "manual.pdf")
    pages = [pdf[i].get_textpage().get_text_range().replace("\r\n", "\n") for i in range(len(pdf))]
    assert len(pages) == len(make_pdf.CHAPTERS) + 2  # contents, one page per chapter, index
    assert all(f"Page {n} of {len(pages)}" in text for n, text in enumerate(pages, start=1))
    assert re.search(r"Introduction \.{10,}", pages[0]), "the contents page has lost its dot leaders"
    assert "Index" in pages[-1].splitlines() and "AES-256-GCM, 4" in pages[-1]
    body = squeeze(" ".join(pages[1:-1]))
    # PDFium reports a hyphen that ends a line as U+FFFE, the line joined
    assert re.search(r"\b[a-z]+(?:- |\ufffe)[a-z]+", body), "no word is hyphenated at a line end"
    joined = re.sub(r"(\w)(?:- |\ufffe)(\w)", r"\1\2", body)
    for heading, paragraphs in make_pdf.CHAPTERS:
        for paragraph in paragraphs:
            assert squeeze(make_pdf.plain(paragraph)) in joined, f"{heading}: the PDF is out of date"


def test_the_benchmark_scores_per_format_and_counts_abstentions():
    """bench/real_docs.py's scoring, on records made by hand: SQuAD-normalised EM, top-3, files, abstentions."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
    import real_docs

    files = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*") if p.is_file())
    assert {real_docs.format_of(f) for f in files} == {label for _, label in real_docs.FORMATS}
    assert real_docs.corpus_file("/x/realdocs/docs/debwright/README", files) == "debwright/README"
    assert real_docs.corpus_file("elsewhere/README", files) is None

    class FakeQA:
        """Answers from a table, as RagQA.ask_full would: the answers and the retrieved passages."""

        def __init__(self, replies):
            self.replies = replies

        def ask_full(self, question, top_k_passages, top_k_answers):
            from types import SimpleNamespace

            texts, source = self.replies[question]
            passage = SimpleNamespace(source=source)
            answers = [SimpleNamespace(text=t, source=source) for t in texts]
            return SimpleNamespace(answers=answers, passages=[SimpleNamespace(passage=passage)])

    questions = [
        {"id": "a", "question": "qa", "answers": ["RFC 7159"], "file": "ferrule/spec.txt"},
        {"id": "b", "question": "qb", "answers": ["4"], "file": "sonora/docs/cli.html"},
        {"id": "c", "question": "qc", "answers": ["lz4"], "file": "kestrel/manual.pdf"},
        {"id": "u", "question": "qu", "answers": [], "file": None},
        {"id": "v", "question": "qv", "answers": [], "file": None},
    ]
    qa = FakeQA(
        {
            "qa": (["rfc 7159."], "ferrule/spec.txt"),
            "qb": (["5", "4"], "sonora/docs/cli.html"),
            "qc": ([], "kestrel/faq.html"),
            "qu": ([], "kestrel/faq.html"),
            "qv": (["maybe"], "kestrel/faq.html"),
        }
    )
    records = real_docs.ask_all(qa, questions, files)
    summary = real_docs.summarise(records)
    assert summary["overall"] == pytest.approx(
        {"questions": 3, "top1_em": 100 / 3, "top3_em": 200 / 3, "right_file_top1": 200 / 3, "false_abstentions": 1}
    )
    assert (
        summary["by_format"]["PDF"]["false_abstentions"] == 1 and summary["by_format"]["plain text"]["top1_em"] == 100
    )
    assert summary["unanswerable"] == {"questions": 2, "abstained": 1, "abstention": 50.0}
    assert [line.split("]")[0] for line in real_docs.misses(records)] == ["- [b", "- [c", "- [v"]
