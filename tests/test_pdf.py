"""PDF text as a reader would want it: no contents or index pages, no running headers
and footers, hyphenated words whole, paragraphs unbroken, pages still known.

The PDFs and the truth beside them come from tests/fixtures/pdf/make_pdfs.py.
"""

import json
import logging
import re
import shutil
from pathlib import Path

import pytest

from rag_qa.config import ChunkingConfig
from rag_qa.ingest import IngestReport, chunk_document, iter_documents
from rag_qa.ingest.decoding import UnreadableError
from rag_qa.ingest.pdf import (
    Line,
    clean_pages,
    drop_running_lines,
    is_reference_line,
    join_hyphenated,
    paragraphs,
    read_pdf,
)

FIXTURES = Path(__file__).parent / "fixtures" / "pdf"


def _read(name: str, **kwargs):
    path = FIXTURES / name
    return read_pdf(path.read_bytes(), name, str(path), path, **kwargs)


def _truth(name: str) -> dict:
    return json.loads((FIXTURES / name).with_suffix(".json").read_text())


@pytest.fixture(scope="module")
def guide():
    return _read("guide.pdf")


@pytest.fixture(scope="module")
def truth():
    return _truth("guide.pdf")


def _blocks(truth, kind):
    return [(p["page"], b["text"]) for p in truth["pages"] for b in p["blocks"] if b["kind"] == kind]


# ------------------------------------------------------------------ contents and index pages


def test_contents_and_index_pages_leave_no_text(guide, truth):
    assert "...." not in guide.text
    entries = _blocks(truth, "index")
    assert len(entries) > 10
    for _, entry in entries:
        assert entry not in guide.text
    assert not re.search(r"^\d+\s*$", guide.text, re.MULTILINE)  # no page number left alone on a line
    for page in truth["pages"]:
        if page["kind"] != "body":
            start = guide.metadata["page_starts"][page["page"] - 1]
            nxt = guide.metadata["page_starts"][page["page"]] if page["page"] < len(truth["pages"]) else len(guide.text)
            assert start == nxt, f"page {page['page']} ({page['kind']}) kept text"


def test_no_passage_comes_from_a_contents_or_index_page(guide, truth):
    reference_pages = {p["page"] for p in truth["pages"] if p["kind"] != "body"}
    passages = chunk_document(guide, ChunkingConfig(size=40, overlap=10))
    assert passages
    assert not {p.metadata["page"] for p in passages} & reference_pages


def test_reference_lines_are_told_from_prose():
    for line in (
        "1 Installation .......................... 4",
        "2.3 Hybrid search . . . . . . . . 17",
        "Appendix A … 112",
        "hyphenation, 4, 12",
        "answer offsets, 6, 7 installation, 2",
        "BM25, 3-5",
        "Chapter 3 Asking questions 27",
    ):
        assert is_reference_line(line), line
    for line in (
        "The index has 12 files, and 4 of them are PDFs.",
        "Install it with pip, then run ragqa index docs.",
        "In 2019, sales rose by 12 percent.",
        "ragqa answers questions over your own documents",
    ):
        assert not is_reference_line(line), line


def test_a_body_page_with_a_few_numbered_lines_is_kept():
    page = [Line(t) for t in ("Results", "The runs took 3 minutes each.", "Run A, 4", "Run B, 5", "All runs passed.")]
    page += [Line("The table above lists the runs we made on the test machine during the week.")] * 3
    text, _ = clean_pages([page])
    assert "All runs passed." in text and "Run A, 4" in text


# ------------------------------------------------------------------ hyphenation


def test_words_hyphenated_at_line_ends_are_whole(guide, truth):
    split = [w for p in truth["pages"] for w in p["hyphenated"]]
    syllables = [w for w in split if "--" not in w]
    assert len(syllables) >= 8
    for word in syllables:
        whole = word.replace("-", "").strip(".,")
        assert re.search(rf"\b{re.escape(whole)}", guide.text), f"{word!r} not rejoined"
        assert word.strip(".,") not in guide.text
    assert "\ufffe" not in guide.text and "\xad" not in guide.text
    for compound in (w.replace("--", "-") for w in split if "--" in w):
        assert compound in guide.text, f"{compound!r} lost its hyphen"


@pytest.mark.parametrize(
    ("head", "tail", "vocabulary", "joined"),
    [
        ("man-", "agement", set(), "management"),
        ("Administra-", "tors", set(), "Administrators"),
        ("direc\ufffe", "tory", set(), "directory"),
        ("well-", "known", set(), "well-known"),  # a compound head
        ("read-", "only", set(), "read-only"),
        ("data-", "base", {"data-base"}, "data-base"),  # spelt so elsewhere in the document
        ("co-", "operate", {"cooperate"}, "cooperate"),
        ("Smith-", "Jones", set(), "Smith-Jones"),  # a capital after the break: a real hyphen
        ("pages 3-", "5", set(), "pages 3-5"),
    ],
)
def test_join_hyphenated(head, tail, vocabulary, joined):
    assert join_hyphenated(head, tail, vocabulary) == joined


def test_hyphen_rejoined_across_lines_without_positions():
    text = paragraphs([Line("Configuration man-"), Line("agement is kept in plain YAML files.")])
    assert text == "Configuration management is kept in plain YAML files."


# ------------------------------------------------------------------ running headers and footers


def test_running_header_and_footer_are_gone(guide, truth):
    assert truth["title"] not in guide.text
    assert not re.search(r"Page \d+ of \d+", guide.text)
    lines = set(guide.text.splitlines())
    for page in truth["pages"]:
        for line in page["header"] + page["footer"]:
            assert line not in lines


def test_headings_and_body_are_kept(guide, truth):
    for _, heading in _blocks(truth, "heading"):
        if heading not in ("Contents", "Index"):
            assert heading in guide.text.splitlines()


def test_page_numbers_are_normalised_when_matching_footers():
    bodies = [
        ("Retrieval is fused.", "Two rankings become one."),
        ("Readers abstain.", "No answer beats a wrong one."),
        ("Indexes are folders.", "Each has a manifest."),
        ("Pages are counted.", "From one, as printed."),
        ("Done.", "Nothing else to say here."),
    ]
    pages = [[Line(a), Line(b), Line(f"Page {n} of 12")] for n, (a, b) in enumerate(bodies, start=1)]
    kept = drop_running_lines(pages)
    assert all(len(p) == 2 for p in kept)
    assert not any(re.match(r"Page \d+ of", ln.text) for p in kept for ln in p)


def test_a_repeated_line_inside_the_page_is_not_a_header():
    pages = [
        [Line(f"Line {i} of page {'x' * n}") for i in range(4)]
        + [Line("Note: keep your receipt.")]
        + [Line(f"Line {i} of page {'y' * n}") for i in range(4)]
        for n in range(1, 5)
    ]
    kept = drop_running_lines(pages)
    assert all(any(ln.text == "Note: keep your receipt." for ln in p) for p in kept)


def test_prose_without_headers_loses_nothing():
    doc = _read("plain.pdf")
    paragraphs_ = [b["text"] for p in _truth("plain.pdf")["pages"] for b in p["blocks"]]
    assert paragraphs_
    for text in paragraphs_:
        assert text in doc.text.splitlines()


# ------------------------------------------------------------------ paragraphs


def test_paragraphs_are_one_line_and_separated_by_blank_lines(guide, truth):
    paras = [text for _, text in _blocks(truth, "paragraph")]
    assert len(paras) >= 10
    for text in paras:  # incl. both columns of the two-column page, each read to its end
        assert text in guide.text.split("\n\n"), f"paragraph broken or merged: {text[:40]!r}"


def test_table_rows_keep_their_lines(guide, truth):
    lines = set(guide.text.splitlines())
    for _, row in _blocks(truth, "row"):
        assert row in lines


def test_lines_without_positions_are_joined_into_paragraphs():
    wrapped = [
        "The index command walks the folders you name and reads every",
        "supported file it finds there.",
        "Retrieval combines two methods that are fused into one ranking of",
        "the passages.",
    ]
    text = paragraphs([Line(t) for t in wrapped])
    assert text.split("\n\n") == [
        "The index command walks the folders you name and reads every supported file it finds there.",
        "Retrieval combines two methods that are fused into one ranking of the passages.",
    ]


# ------------------------------------------------------------------ pages


def test_page_starts_point_at_each_page(guide, truth):
    starts = guide.metadata["page_starts"]
    assert len(starts) == len(truth["pages"])
    assert starts == sorted(starts)
    for page in truth["pages"]:
        if page["kind"] == "body":
            first = page["blocks"][0]["text"]
            assert guide.text.startswith(first, starts[page["page"] - 1]), f"page {page['page']}"


def test_passages_record_their_physical_page(tmp_path, truth):
    shutil.copy(FIXTURES / "guide.pdf", tmp_path / "guide.pdf")
    (doc,) = iter_documents([tmp_path], IngestReport())  # through the bounded child process
    passages = chunk_document(doc, ChunkingConfig(size=80, overlap=20))  # whole sentences
    pages = {p["page"]: " ".join(b["text"] for b in p["blocks"]) for p in truth["pages"]}
    assert len(passages) > 5
    for passage in passages:
        first_words = " ".join(passage.text.split()[:6])
        assert first_words in pages[passage.metadata["page"]], (passage.metadata["page"], first_words)
    assert {p.metadata["page"] for p in passages} == {p["page"] for p in truth["pages"] if p["kind"] == "body"}


def test_max_pages_reads_the_first_pages_only(caplog):
    with caplog.at_level(logging.WARNING, logger="rag_qa"):
        doc = _read("guide.pdf", max_pages=3)
    assert len(doc.metadata["page_starts"]) == 3
    assert "only the first 3 of its 8 pages" in caplog.text
    assert "Column layouts" not in doc.text


def test_title_comes_from_the_pdf(guide, truth):
    assert guide.title == truth["title"]


# ------------------------------------------------------------------ bad input


def test_encrypted_pdf_is_one_line_error_naming_the_fix():
    with pytest.raises(UnreadableError) as caught:
        _read("encrypted.pdf")
    message = str(caught.value)
    assert "encrypted" in message and "decrypt" in message and "\n" not in message


def test_broken_pdf_is_one_line_error(tmp_path):
    with pytest.raises(UnreadableError) as caught:
        read_pdf(b"%PDF-1.4 this is not really a pdf", "x", "x", tmp_path / "x.pdf")
    assert "PDF could not be parsed" in str(caught.value) and "\n" not in str(caught.value)


def test_a_bare_page_number_at_a_page_edge_is_dropped():
    pages = [
        [Line("1"), Line("Chapters start on a fresh page with the number alone at the top.")],
        [Line("The second page has no number at all, only its prose.")],
        [Line("The third page ends with its number in roman figures."), Line("iv")],
    ]
    text, _ = clean_pages(pages)
    assert not re.search(r"^(?:1|iv)$", text, re.MULTILINE)
    assert all(ln.text in text for p in pages for ln in p if len(ln.text) > 5)
