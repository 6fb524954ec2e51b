"""Hostile documents, file names and folders: each finding reproduced, then held."""

import json
import os

import pytest
from click.testing import CliRunner

from rag_qa.cli import cli


@pytest.mark.slow
def test_a_file_name_that_is_not_utf8_is_indexed_under_an_escaped_name(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.txt").write_text("Green tea is steeped for two minutes.")
    (docs / "bread.txt").write_text("Sourdough bread rises overnight.")
    with open(os.path.join(os.fsencode(docs), b"caf\xe9.txt"), "wb") as fh:
        fh.write(b"The espresso machine needs descaling every month.")
    for extra in ([], ["--config", str(_no_title_config(tmp_path))]):
        index = tmp_path / f"index{len(extra)}"
        result = CliRunner().invoke(cli, ["-q", "index", str(docs), "--index-dir", str(index), "--json", *extra])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["documents"] == 3
        hits = json.loads(
            CliRunner()
            .invoke(cli, ["search", "espresso descaling", "--index-dir", str(index), "--mode", "bm25", "--json"])
            .output
        )
        assert hits[0]["source"].endswith("caf\\xe9.txt")


def _no_title_config(tmp_path):
    path = tmp_path / "no-title.yaml"
    path.write_text("include_title: false\n")
    return path


@pytest.mark.slow
def test_indexing_a_folder_never_reads_an_index_inside_it(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("The harbour master opens the gate at six.")
    monkeypatch.chdir(tmp_path)
    counts = []
    for _ in range(3):
        result = CliRunner().invoke(cli, ["-q", "index", ".", "--json"])  # the index is built in ./index
        assert result.exit_code == 0, result.output
        counts.append(json.loads(result.output)["documents"])
    assert counts == [1, 1, 1]


def test_a_run_without_spaces_makes_passages_of_bounded_size():
    from rag_qa.config import ChunkingConfig
    from rag_qa.ingest.chunking import chunk_document
    from rag_qa.text import MAX_WORD_CHARS
    from rag_qa.types import Document

    text = "Intro words here. " + "x" * 100_000 + " The end."
    passages = chunk_document(Document("d", "d.txt", text), ChunkingConfig())
    assert max(len(p.text) for p in passages) <= 100 * (MAX_WORD_CHARS + 1)
    assert "".join(p.text for p in passages).count("x") >= 100_000  # nothing lost (overlap repeats some)


def test_the_reader_reads_at_most_a_few_windows_of_one_passage(tiny_qa_base):
    from rag_qa import Reader

    reader = Reader(
        tiny_qa_base, max_seq_length=64, doc_stride=16, max_windows_per_passage=3, no_answer_threshold=float("-inf")
    )
    long_passage = " ".join(f"word{i}" for i in range(2000))
    spans, _ = reader.spans("Which word?", [long_passage])
    assert spans[0] and max(s.end for s in spans[0]) < len(long_passage) // 4  # only the first windows were read


@pytest.mark.slow
def test_terminal_escapes_from_documents_and_names_never_reach_the_terminal(tmp_path, tiny_qa_base):
    docs = tmp_path / "docs"
    docs.mkdir()
    hostile = "The vault code is \x1b]0;owned\x07 hidden \x1b[2J here \x1b]8;;http://x\x1b\\\\link\x1b]8;;\x1b\\\\ now."
    (docs / "vault.txt").write_text(hostile)
    (docs / "two\nlines.txt").write_text("A name with a line break \x9b31m inside.")
    (docs / "plain.txt").write_text("Nothing to see in this plain file.")
    index = tmp_path / "index"
    built = CliRunner().invoke(cli, ["-q", "index", str(docs), "--index-dir", str(index)])
    assert built.exit_code == 0, built.output
    outputs = [
        CliRunner().invoke(cli, ["search", "vault code name line break", "--index-dir", str(index), "-k", "3"]).output,
        CliRunner()
        .invoke(
            cli,
            [
                "ask",
                "What is the vault code?",
                "--index-dir",
                str(index),
                "--reader",
                str(tiny_qa_base),
                "--answers",
                "3",
                "--no-answer-threshold",
                "-1e9",
                "--runtime",
                "torch",
            ],
        )
        .output,
    ]
    for out in outputs:
        assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out, repr(out)
    assert "two\\nlines.txt" in outputs[0]
    hits = json.loads(
        CliRunner().invoke(cli, ["search", "vault code", "--index-dir", str(index), "--json", "--mode", "bm25"]).output
    )
    assert "\x1b]0;owned\x07" in hits[0]["text"]  # JSON stays exact
