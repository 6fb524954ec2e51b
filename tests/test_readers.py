import json
import logging
import os

import pytest

from rag_qa.errors import InputError
from rag_qa.ingest import IngestReport, iter_documents


def read(paths, report=None):
    return list(iter_documents(paths, report if report is not None else IngestReport()))


def test_reads_every_supported_format(corpus_dir, pdf_text):
    report = IngestReport()
    docs = read([corpus_dir], report)
    by_source = {d.source.rsplit("/", 1)[-1]: d for d in docs}
    assert report.read == 5 and not report.skipped
    assert by_source["guide.md"].title == "Installing the tool"
    html = by_source["space.html"]
    assert html.title == "The planets"
    assert "Jupiter is the largest planet" in html.text
    assert "should not be indexed" not in html.text and "color: red" not in html.text
    assert pdf_text in by_source["paper.pdf"].text
    jsonl = [d for d in docs if d.source.endswith("records.jsonl")]
    assert [d.title for d in jsonl] == ["Volcanoes", "Rivers"]
    assert jsonl[0].metadata["topic"] == "geology" and jsonl[0].metadata["line"] == 1


def test_detects_latin1_and_utf16(tmp_path):
    (tmp_path / "latin.txt").write_bytes("Café crème brûlée, déjà vu à la française.".encode("latin-1"))
    (tmp_path / "wide.txt").write_bytes("Übergrößenträger".encode("utf-16"))
    texts = {d.source.rsplit("/", 1)[-1]: d.text for d in read([tmp_path])}
    assert texts["latin.txt"] == "Café crème brûlée, déjà vu à la française."
    assert texts["wide.txt"] == "Übergrößenträger"


def test_bad_files_are_skipped_with_one_warning_each(tmp_path, caplog):
    (tmp_path / "good.txt").write_text("Readable text.")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    report = IngestReport()
    with caplog.at_level(logging.WARNING, logger="rag_qa"):
        docs = read([tmp_path], report)
    assert [d.text for d in docs] == ["Readable text."]
    reasons = dict(report.skipped)
    assert set(os.path.basename(p) for p in reasons) == {"empty.txt", "binary.txt", "broken.pdf"}
    assert "binary" in reasons[str(tmp_path / "binary.txt")]
    assert report.ignored == 1  # the .png is not a supported type
    assert len([r for r in caplog.records if r.name.startswith("rag_qa") and r.levelno == logging.WARNING]) == 3


def test_bad_jsonl_line_is_reported_with_its_line_number(tmp_path):
    lines = [
        json.dumps({"id": "a", "text": "first"}),
        "{not json",
        json.dumps({"id": "b"}),
        json.dumps({"id": "c", "text": "third"}),
    ]
    (tmp_path / "rows.jsonl").write_text("\n".join(lines))
    report = IngestReport()
    docs = read([tmp_path / "rows.jsonl"], report)
    assert [d.text for d in docs] == ["first", "third"]
    assert [p.rsplit(":", 1)[1] for p, _ in report.skipped] == ["2", "3"]


def test_missing_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read([tmp_path / "nope"])


def test_symlink_loop_does_not_trap_the_walk(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "doc.txt").write_text("Inside the loop.")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a", target_is_directory=True)
    assert [d.text for d in read([tmp_path])] == ["Inside the loop."]


def test_hidden_folders_are_skipped(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD.txt").write_text("hidden")
    (tmp_path / "shown.txt").write_text("shown")
    assert [d.text for d in read([tmp_path])] == ["shown"]


def test_pdf_passages_record_their_page(tmp_path, make_pdf):
    from rag_qa.config import ChunkingConfig
    from rag_qa.ingest import chunk_document

    (tmp_path / "p.pdf").write_bytes(make_pdf("One page of text."))
    (doc,) = read([tmp_path])
    (passage,) = chunk_document(doc, ChunkingConfig())
    assert passage.metadata["page"] == 1


def test_ten_megabyte_file_is_read_and_chunked(tmp_path):
    from rag_qa.config import ChunkingConfig
    from rag_qa.ingest import chunk_document

    sentence = "The quick brown fox jumps over the lazy dog again. "
    (tmp_path / "large.txt").write_text(sentence * (10 * 1024 * 1024 // len(sentence)))
    (doc,) = read([tmp_path])
    passages = chunk_document(doc, ChunkingConfig())
    assert len(passages) > 10_000
    assert passages[-1].end == len(doc.text.rstrip())


def test_large_text_file_is_streamed_in_parts_that_map_back_to_the_file(tmp_path, monkeypatch, caplog):
    from rag_qa.config import ChunkingConfig
    from rag_qa.ingest import chunk_document, readers

    monkeypatch.setattr(readers, "STREAM_BYTES", 1_000)
    monkeypatch.setattr(readers, "PART_BYTES", 256)
    lines = [f"Line {i} of the café log. It has two sentences." for i in range(300)]
    raw = ("\n".join(lines) + "\n").encode("utf-8")
    raw = raw[:6_000] + b"\xff" + raw[6_000:]  # one invalid byte deep inside the file
    (tmp_path / "log.txt").write_bytes(raw)
    report = IngestReport()
    with caplog.at_level(logging.WARNING, logger="rag_qa"):
        docs = read([tmp_path], report)
    whole = raw.decode("utf-8", errors="replace")
    assert len(docs) > 10 and report.read == 1 and not report.skipped
    assert "".join(d.text for d in docs) == whole  # nothing lost, nothing repeated
    assert ["byte 6000" in r.getMessage() for r in caplog.records] == [True]  # one warning, with the position
    for doc in docs:
        for p in chunk_document(doc, ChunkingConfig(size=12, overlap=3)):
            assert whole[p.start : p.end] == p.text
            assert p.metadata["line"] == whole.count("\n", 0, p.start) + 1


def test_200_mb_text_file_is_read_in_bounded_memory(tmp_path):
    import tracemalloc

    from rag_qa.ingest import iter_file_documents

    line = b"A line of a very large log file, with words in it and nothing else of note.\n"
    big = tmp_path / "big.txt"
    with open(big, "wb") as fh:
        block = line * (2**20 // len(line))
        for _ in range(200):
            fh.write(block)
    size = big.stat().st_size
    assert size > 190 * 2**20
    tracemalloc.start()
    try:
        chars = parts = 0
        for doc in iter_file_documents(big, IngestReport()):
            chars += len(doc.text)
            parts += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert chars == size and parts >= 40
    assert peak < 40 * 2**20, f"reading peaked at {peak / 2**20:.0f} MB"


def test_size_limit_skips_large_html_but_not_plain_text(tmp_path):
    (tmp_path / "notes.txt").write_text("word " * (2 * 1024 * 1024 // 5 + 1))
    (tmp_path / "page.html").write_text("<p>" + "word " * (2 * 1024 * 1024 // 5 + 1) + "</p>")
    report = IngestReport()
    docs = list(iter_documents([tmp_path], report, max_file_mb=1))
    assert [d.source.rsplit("/", 1)[-1] for d in docs] == ["notes.txt"]
    assert "max_file_mb" in report.skipped[0][1]


def test_unreadable_file_is_skipped_and_the_rest_read(tmp_path, unreadable_as_root):
    (tmp_path / "open.txt").write_text("Anyone can read this.")
    locked = tmp_path / "locked.txt"
    locked.write_text("Nobody may read this.")
    locked.chmod(0)
    report = IngestReport()
    docs = read([tmp_path], report)
    assert [d.text for d in docs] == ["Anyone can read this."]
    assert report.skipped == [(str(locked), "Permission denied")]


@pytest.mark.parametrize(
    "text, encoding",
    [
        ("Crème brûlée is a French dessert.", "latin-1"),
        ("Übergrößenträger sind groß.", "latin-1"),
        ("He said “hello” – and left…", "cp1252"),
        ("Привет, как дела? Это тест.", "cp1251"),
        ("这是一个中文句子，用来测试编码。", "gbk"),
        ("日本語のテキストです。", "shift_jis"),
    ],
)
def test_legacy_encodings_are_detected(text, encoding):
    from rag_qa.ingest.decoding import decode_bytes

    assert decode_bytes(text.encode(encoding))[0] == text


def test_files_without_extension_rst_and_gzip_are_read(tmp_path):
    import gzip

    (tmp_path / "README").write_text("The project answers questions about your documents.")
    (tmp_path / "LICENSE").write_text("Permission is granted to use this software freely.")
    (tmp_path / "tool").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8)  # a program: stays out
    (tmp_path / "guide.rst").write_text("Installing\n==========\n\nRun pip install to set up the tool.\n")
    (tmp_path / "notes.md.gz").write_bytes(gzip.compress(b"# Comets\n\nComets have two tails of gas and dust.\n"))
    (tmp_path / "spec.txt.gz").write_bytes(gzip.compress(b"The spec limits a passage to one hundred words."))
    rows = [json.dumps({"id": "s1", "text": "Stars are balls of plasma."}), json.dumps({"id": "s2", "text": "Moons."})]
    (tmp_path / "data.jsonl.gz").write_bytes(gzip.compress("\n".join(rows).encode()))
    (tmp_path / "backup.tar.gz").write_bytes(gzip.compress(b"not read"))
    report = IngestReport()
    docs = read([tmp_path], report)
    by_name = {}
    for d in docs:
        by_name.setdefault(d.source.rsplit("/", 1)[-1], []).append(d)
    assert set(by_name) == {"README", "LICENSE", "guide.rst", "notes.md.gz", "spec.txt.gz", "data.jsonl.gz"}
    assert by_name["guide.rst"][0].title == "Installing" and "pip install" in by_name["guide.rst"][0].text
    (notes,) = by_name["notes.md.gz"]
    assert notes.title == "Comets" and "two tails" in notes.text and "#" not in notes.text  # read as Markdown
    assert by_name["spec.txt.gz"][0].title == "spec"
    assert [d.text for d in by_name["data.jsonl.gz"]] == ["Stars are balls of plasma.", "Moons."]
    assert report.summary() == "2 skipped: 1 binary, 1 unsupported type (.tar.gz)"
    assert not report.skipped  # met in a folder walk: counted, no warning each


def test_a_binary_file_without_extension_given_by_name_is_skipped_with_a_reason(tmp_path):
    (tmp_path / "image").write_bytes(bytes(range(256)) * 8)
    report = IngestReport()
    assert read([tmp_path / "image"], report) == []
    assert report.skipped and "binary" in report.skipped[0][1]


def test_a_gzip_bomb_stops_at_max_file_mb(tmp_path):
    import gzip
    import tracemalloc

    (tmp_path / "bomb.txt.gz").write_bytes(gzip.compress(b"A" * (40 * 2**20), compresslevel=9))  # 40 KB on disk
    assert (tmp_path / "bomb.txt.gz").stat().st_size < 2**20
    (tmp_path / "broken.md.gz").write_bytes(gzip.compress(b"# Title\n\nSome text.")[:-12])  # cut short
    report = IngestReport()
    tracemalloc.start()
    try:
        docs = list(iter_documents([tmp_path], report, max_file_mb=2))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert docs == []
    reasons = {p.rsplit("/", 1)[-1]: r for p, r in report.skipped}
    assert "decompresses to more than max_file_mb=2" in reasons["bomb.txt.gz"]
    assert "gzip" in reasons["broken.md.gz"]
    assert peak < 12 * 2**20, f"decompressing peaked at {peak / 2**20:.0f} MB"
    assert report.summary() == "2 skipped: 1 too large, 1 unreadable"


def test_the_summary_counts_what_was_left_out_by_reason(tmp_path):
    (tmp_path / "good.txt").write_text("Readable text.")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    (tmp_path / "archive.zip").write_bytes(b"PK\x03\x04")
    (tmp_path / "empty.txt").write_bytes(b"")
    report = IngestReport()
    assert [d.text for d in read([tmp_path], report)] == ["Readable text."]
    assert report.summary() == "3 skipped: 2 unsupported type (.png, .zip), 1 empty"
    assert IngestReport().summary() == ""
