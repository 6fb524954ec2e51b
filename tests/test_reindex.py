"""Updating an index: unchanged files are not read again, an unchanged corpus writes
nothing, and superseded generations leave the disk once no loaded index holds them."""

import json
import os

import pytest
from click.testing import CliRunner

from rag_qa import Index
from rag_qa.cli import cli
from rag_qa.config import IndexConfig
from rag_qa.retrieval import engines
from rag_qa.retrieval.builder import build_index


def generations(directory):
    return sorted(p.name for p in directory.glob("gen-*"))


def live_generation(directory):
    return json.loads((directory / "manifest.json").read_text())["data_dir"]


@pytest.fixture
def count_reads(monkeypatch):
    """The files each build reads, in a list that the test can inspect."""
    reads = []
    real = engines.iter_file_documents

    def counting(file, *args, **kwargs):
        reads.append(file.name)
        return real(file, *args, **kwargs)

    monkeypatch.setattr(engines, "iter_file_documents", counting)
    return reads


@pytest.mark.slow
def test_an_unchanged_corpus_is_up_to_date_and_nothing_is_written(tmp_path, write_corpus, count_reads, monkeypatch):
    docs = write_corpus(tmp_path / "docs")
    index = tmp_path / "index"
    build_index([docs], index, show_progress=False)
    manifest = (index / "manifest.json").read_bytes()
    count_reads.clear()

    from rag_qa.retrieval.encoder import Encoder

    def no_model(self):
        raise AssertionError("the encoder model was loaded with nothing to embed")

    monkeypatch.setattr(Encoder, "info", no_model)
    again = build_index([docs], index, show_progress=False)
    assert again.up_to_date and "is up to date" in again.summary()
    assert again.documents == 6 and again.embedded == 0 and again.unchanged == 6
    assert count_reads == []  # no file read again
    assert (index / "manifest.json").read_bytes() == manifest  # no new generation
    assert generations(index) == [live_generation(index)]

    os.utime(docs / "animals.txt")  # touched, not changed: its hash says so
    assert build_index(None, index, show_progress=False).up_to_date
    assert count_reads == []


@pytest.mark.slow
def test_only_changed_files_are_read_again(tmp_path, write_corpus, count_reads):
    docs = write_corpus(tmp_path / "docs")
    index = tmp_path / "index"
    build_index([docs], index, show_progress=False)
    count_reads.clear()
    (docs / "animals.txt").write_text("Owls hunt at night and see well in the dark.")
    (docs / "new.txt").write_text("Comets have two tails, one of dust and one of gas.")
    report = build_index(None, index, show_progress=False)
    assert sorted(count_reads) == ["animals.txt", "new.txt"]
    assert not report.up_to_date and (report.added, report.changed, report.unchanged) == (1, 1, 5)
    loaded = Index.load(index)
    assert "Owls" in loaded.search("owls at night", k=1, mode="bm25")[0].passage.text
    assert "Jupiter" in loaded.search("largest planet", k=1, mode="bm25")[0].passage.text  # reused passages
    assert len(loaded) == report.passages
    loaded.close()

    count_reads.clear()
    chunked = IndexConfig().replace(chunking={"size": 12, "overlap": 2})
    rechunked = build_index(None, index, config=chunked, show_progress=False)  # new settings: every file again
    assert len(count_reads) == 6 and not rechunked.up_to_date and rechunked.passages > report.passages


@pytest.mark.slow
def test_the_cli_says_the_index_is_up_to_date(tmp_path, write_corpus):
    docs = write_corpus(tmp_path / "docs")
    index = tmp_path / "index"
    first = CliRunner().invoke(cli, ["-q", "index", str(docs), "--index-dir", str(index)])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(cli, ["-q", "index", str(docs), "--index-dir", str(index)])
    assert again.exit_code == 0, again.output
    assert "is up to date: 6 documents" in again.output


@pytest.mark.slow
def test_after_two_updates_only_the_current_generation_remains(tmp_path, write_corpus):
    docs = write_corpus(tmp_path / "docs")
    index = tmp_path / "index"
    build_index([docs], index, show_progress=False)
    for i in range(2):
        (docs / f"new{i}.txt").write_text(f"Extra note number {i} about comets and their tails.")
        build_index([docs], index, show_progress=False)
    assert generations(index) == [live_generation(index)]
    assert not list(index.glob(".tmp-*")) and not list(index.glob(".trash-*"))


@pytest.mark.slow
def test_a_loaded_index_keeps_its_generation_until_it_is_closed(tmp_path, write_corpus):
    docs = write_corpus(tmp_path / "docs")
    index = tmp_path / "index"
    build_index([docs], index, show_progress=False)
    loaded = Index.load(index)
    held = live_generation(index)
    for i in range(2):
        (docs / f"new{i}.txt").write_text(f"Extra note number {i} about comets and their tails.")
        build_index([docs], index, show_progress=False)
    assert generations(index) == sorted([held, live_generation(index)])  # in use, and current: nothing between
    hits = loaded.search("Which planet is the largest?", k=3, mode="hybrid")
    assert "Jupiter" in hits[0].passage.text and len(loaded) < len(Index.load(index))
    loaded.close()
    assert build_index([docs], index, show_progress=False).up_to_date
    assert generations(index) == [live_generation(index)]  # freed: the next build removed it
