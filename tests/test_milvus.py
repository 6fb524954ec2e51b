"""The Milvus backend, on Milvus Lite: the same passages and searches as the built-in
backend, incremental builds behind an alias, and one-line errors."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from rag_qa import Index  # noqa: E402
from rag_qa.cli import cli  # noqa: E402
from rag_qa.errors import IndexMismatchError, InputError  # noqa: E402
from rag_qa.retrieval import milvus  # noqa: E402
from rag_qa.retrieval.builder import build_index  # noqa: E402

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def names(hits):
    return [h.passage.source.rsplit("/", 1)[-1] for h in hits]


def release(directory):
    """Close this process's Milvus Lite server on the index's file, so another process can open it."""
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(directory / milvus.LITE_FILE))


def client_for(index):
    return index._calls.client


@pytest.fixture(scope="module")
def mindex(tmp_path_factory, corpus_dir):
    directory = tmp_path_factory.mktemp("milvus") / "index"
    build_index([corpus_dir], directory, backend="milvus", show_progress=False)
    return Index.load(directory)


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_each_mode_finds_the_right_document(mindex, mode):
    assert names(mindex.search("Which planet is the largest?", k=3, mode=mode))[0] == "space.html"
    assert names(mindex.search("what does the manifest record", k=3, mode=mode))[0] == "guide.md"


def test_the_passages_are_those_of_the_builtin_backend(mindex, built_index):
    assert type(mindex).__name__ == "MilvusIndex" and len(mindex) == len(built_index)
    assert mindex.passages == built_index.passages
    hit = mindex.search("volcano magma crust", k=1, mode="bm25")[0]
    twin = built_index.search("volcano magma crust", k=1, mode="bm25")[0]
    assert hit.passage == twin.passage and hit.passage.line_at(0) == twin.passage.line_at(0)
    assert hit.bm25_score > 0 and hit.dense_score is None


def test_hybrid_fuses_in_milvus_or_as_the_builtin_backend_does(mindex):
    top = mindex.search("volcano magma crust", k=1, mode="hybrid")[0]
    assert top.passage.title == "Volcanoes" and top.bm25_score is None  # Milvus returns the fused score only
    assert 0.5 < top.score < 1.0  # WeightedRanker: arctan-scaled scores, first in both lists
    here = Index.load(mindex.directory)
    here.config = here.config.replace(milvus={"hybrid_fusion": "ragqa"})
    top = here.search("volcano magma crust", k=1, mode="hybrid")[0]
    assert top.passage.title == "Volcanoes" and top.bm25_score > 0 and top.dense_score > 0
    assert top.score == pytest.approx(0.5 * 1.0 + 0.5 * 1.0)  # min-max scores of 1, equal weights


def test_dense_finds_a_paraphrase_bm25_cannot(mindex):
    assert mindex.search("feline companions", k=3, mode="bm25") == []
    assert names(mindex.search("feline companions", k=1, mode="dense")) == ["animals.txt"]


def test_source_globs_and_metadata_filters_become_milvus_filters(mindex):
    hits = mindex.search("planet", k=10, mode="hybrid", source="*.jsonl")
    assert hits and set(names(hits)) == {"records.jsonl"}
    hits = mindex.search("planet", k=10, mode="hybrid", source="*[d]s.jsonl")  # a class: matched here, sent as `in`
    assert hits and set(names(hits)) == {"records.jsonl"}
    assert mindex.search("planet", source="*.nothing") == []
    assert mindex.search("planet", source="*[x]nothing") == []
    hits = mindex.search("water and rivers", k=10, mode="dense", where={"topic": "geology"})
    assert [h.passage.title for h in hits] == ["Volcanoes"]
    assert milvus.source_filter("docs/*.md", []) == 'source like "docs/%.md"'
    # `_` is a LIKE wildcard: a glob with one is matched here, so myXnotes.md stays out
    assert milvus.source_filter("*my_notes.md", ["a/my_notes.md", "a/myXnotes.md"]) == 'source in ["a/my_notes.md"]'


def test_search_batch_matches_single_searches(mindex):
    queries = ["largest planet", "domesticated wolves"]
    batch = mindex.search_batch(queries, k=2, mode="hybrid")
    singles = [mindex.search(q, k=2, mode="hybrid") for q in queries]
    assert [[h.passage.passage_id for h in hits] for hits in batch] == [
        [h.passage.passage_id for h in hits] for hits in singles
    ]


def test_the_manifest_records_backend_uri_and_collection_but_no_secret(tmp_path, corpus_dir, monkeypatch):
    monkeypatch.setenv("RAGQA_TEST_MILVUS_TOKEN", "root:sekrit-token-42")
    directory = tmp_path / "index"
    build_index(
        [corpus_dir], directory, backend="milvus", milvus_token_env="RAGQA_TEST_MILVUS_TOKEN", show_progress=False
    )
    text = (directory / "manifest.json").read_text()
    assert "sekrit" not in text
    m = json.loads(text)
    assert m["backend"] == "milvus"
    settings = m["milvus"]
    assert settings["uri"] == "milvus.db" and settings["token_env"] == "RAGQA_TEST_MILVUS_TOKEN"
    assert settings["alias"].startswith("ragqa_index_") and settings["collection"].startswith(settings["alias"] + "__")
    assert m["counts"] == {"documents": 6, "passages": 6, "vocabulary": m["counts"]["vocabulary"]}
    assert m["counts"]["vocabulary"] > 50 and len(m["encoder"]["sha256"]) == 64
    idx = Index.load(directory)
    assert idx.collection == settings["collection"] and names(idx.search("largest planet", k=1)) == ["space.html"]
    monkeypatch.delenv("RAGQA_TEST_MILVUS_TOKEN")
    with pytest.raises(InputError, match="RAGQA_TEST_MILVUS_TOKEN is not set"):
        Index.load(directory)


def test_a_uri_with_credentials_is_refused(tmp_path, corpus_dir):
    with pytest.raises(InputError, match="holds credentials.*--milvus-token-env"):
        build_index([corpus_dir], tmp_path / "i", backend="milvus", milvus_uri="http://root:pw@milvus:19530")


def test_another_encoder_is_refused_for_dense_search(mindex, tiny_encoder):
    idx = Index.load(mindex.directory, encoder=tiny_encoder)
    assert idx.search("planet", mode="bm25")  # BM25 does not need the encoder
    with pytest.raises(IndexMismatchError, match="ragqa index --encoder"):
        idx.search("planet", mode="dense")


def test_cli_builds_searches_and_asks_and_the_index_remembers_its_backend(tmp_path, corpus_dir):
    directory, uri = tmp_path / "index", tmp_path / "elsewhere" / "rag.db"
    runner = CliRunner()
    out = runner.invoke(
        cli, ["index", str(corpus_dir), "--index-dir", str(directory), "--backend", "milvus", "--milvus-uri", str(uri)]
    )
    assert out.exit_code == 0, out.output
    assert "6 documents" in out.output and uri.is_dir()
    assert json.loads((directory / "manifest.json").read_text())["milvus"]["uri"] == str(uri.resolve())
    out = runner.invoke(
        cli,
        ["search", "largest planet", "--index-dir", str(directory), "--mode", "bm25", "--source", "*.html", "--json"],
    )
    assert out.exit_code == 0, out.output
    assert [h["source"].rsplit("/", 1)[-1] for h in json.loads(out.output)] == ["space.html"]
    out = runner.invoke(
        cli, ["ask", "Which planet is the largest in the solar system?", "--index-dir", str(directory), "--json"]
    )
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert "Jupiter" in result["answers"][0]["text"] and result["answers"][0]["source"].endswith("space.html")
    out = runner.invoke(cli, ["index", "--index-dir", str(directory)])  # no --backend: it stays Milvus
    assert out.exit_code == 0 and "up to date" in out.output, out.output
    out = runner.invoke(cli, ["info", "--index-dir", str(directory)])
    assert out.exit_code == 0 and f"Milvus:     {uri.resolve()}, alias " in out.output, out.output
    assert "FAISS" not in out.output


def test_incremental_builds_reuse_vectors_and_move_the_alias(tmp_path, corpus_dir):
    docs = tmp_path / "docs"
    shutil.copytree(corpus_dir, docs)
    directory = tmp_path / "index"
    build_index([docs], directory, backend="milvus", show_progress=False)
    first = Index.load(directory)
    alias = first.manifest["milvus"]["alias"]

    (docs / "heron.txt").write_text("The heron of Lake Orla is grey and nests in the reeds.")
    (docs / "animals.txt").write_text((docs / "animals.txt").read_text() + "\nOtters swim in cold rivers.")
    report = build_index(None, directory, show_progress=False)
    assert (report.added, report.changed, report.removed, report.unchanged) == (1, 1, 0, 5)
    assert report.embedded == 2 and report.reused == 5 and report.documents == 7
    second = Index.load(directory)
    client = client_for(second)
    assert client.describe_alias(alias)["collection_name"] == second.collection != first.collection
    assert names(second.search("heron Lake Orla", k=1)) == ["heron.txt"]
    assert "heron.txt" not in names(first.search("heron Lake Orla", k=3))  # a loaded index keeps its collection

    (docs / "heron.txt").unlink()
    report = build_index([docs], directory, prune=True, show_progress=False)
    assert (report.removed, report.documents, report.passages, report.embedded) == (1, 6, 6, 0)
    third = Index.load(directory)
    assert len(third) == 6 and names(third.search("heron Lake Orla", k=3, mode="bm25")) == []
    ours = sorted(c for c in client.list_collections() if c.startswith(alias + "__"))
    assert ours == sorted({second.collection, third.collection})  # the live one and the one before it
    assert len(list(directory.glob("gen-*"))) == 1


def test_an_index_changes_backend_without_embedding_again(tmp_path, corpus_dir, caplog):
    directory = tmp_path / "index"
    build_index([corpus_dir], directory, show_progress=False)
    report = build_index(None, directory, backend="milvus", show_progress=False)
    assert (report.embedded, report.reused) == (0, 6)
    assert type(Index.load(directory)).__name__ == "MilvusIndex"
    report = build_index(None, directory, backend="builtin", show_progress=False)
    assert (report.embedded, report.reused) == (0, 6)
    back = Index.load(directory)
    assert type(back).__name__ == "Index" and names(back.search("largest planet", k=1)) == ["space.html"]
    assert "Milvus collection" in caplog.text and "left as it was" in caplog.text


def test_a_missing_or_foreign_collection_is_one_line_error(tmp_path, corpus_dir, one_line_error):
    directory = tmp_path / "index"
    build_index([corpus_dir], directory, backend="milvus", show_progress=False)
    idx = Index.load(directory)
    client = client_for(idx)
    client.alter_collection_properties(idx.collection, properties={"ragqa.schema": "99", "ragqa.version": "9.0"})
    with pytest.raises(IndexMismatchError, match=r"written by ragqa 9.0 \(layout 99\).*ragqa index"):
        Index.load(directory)
    client.drop_alias(idx.manifest["milvus"]["alias"])
    client.drop_collection(idx.collection)
    result = CliRunner().invoke(cli, ["search", "planet", "--index-dir", str(directory)])
    one_line_error(result, "collection", "missing", "ragqa index")
    report = build_index(None, directory, show_progress=False)  # rebuilds from the recorded paths
    assert report.documents == 6 and report.embedded == 6
    assert names(Index.load(directory).search("largest planet", k=1)) == ["space.html"]


def test_an_unreachable_server_is_one_line_error_saying_how_to_start_one(tmp_path, corpus_dir, one_line_error):
    directory = tmp_path / "index"
    result = CliRunner().invoke(
        cli,
        ["index", str(corpus_dir), "--index-dir", str(directory), "--backend", "milvus"]
        + ["--milvus-uri", "http://127.0.0.1:9"],
    )
    one_line_error(result, "not reachable", "http://127.0.0.1:9", "docker compose")
    assert not (directory / "manifest.json").exists()


def test_a_milvus_lite_file_open_in_another_process_is_one_line_error(tmp_path, corpus_dir, one_line_error):
    directory = tmp_path / "index"
    build_index([corpus_dir], directory, backend="milvus", show_progress=False)
    release(directory)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from rag_qa import Index; Index.load({str(directory)!r}); print('open', flush=True); input()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=ENV,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        result = CliRunner().invoke(cli, ["search", "planet", "--index-dir", str(directory)])
        one_line_error(result, "open in another process", "milvus.db", "Milvus server")
    finally:
        holder.communicate("\n", timeout=60)
    release(directory)
    assert names(Index.load(directory).search("largest planet", k=1)) == ["space.html"]  # free again


def test_a_refused_token_is_one_line_error_naming_the_variable(monkeypatch, tmp_path, corpus_dir):
    # Milvus Lite does not check tokens; a server answers a wrong one like this.
    from pymilvus import MilvusClient, MilvusException

    def refuse(self, *args, **kwargs):
        raise MilvusException(code=1800, message="auth check failure, please check username and password")

    monkeypatch.setattr(MilvusClient, "__init__", refuse)
    monkeypatch.setenv("MILVUS_TOKEN", "root:wrong")
    with pytest.raises(InputError, match="refused the token in MILVUS_TOKEN.*auth check failure"):
        build_index(
            [corpus_dir],
            tmp_path / "i",
            backend="milvus",
            milvus_uri="http://milvus:19530",
            milvus_token_env="MILVUS_TOKEN",
            show_progress=False,
        )


def test_without_the_extra_the_milvus_backend_names_it(monkeypatch, tmp_path, corpus_dir):
    import importlib.util

    from rag_qa.errors import MissingExtraError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pymilvus" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"pip install 'ragqa\[milvus\]'"):
        build_index([corpus_dir], tmp_path / "i", backend="milvus", show_progress=False)


def test_milvus_options_without_the_milvus_backend_are_refused(tmp_path, corpus_dir):
    with pytest.raises(InputError, match="--milvus-uri applies to a Milvus index: add --backend milvus"):
        build_index([corpus_dir], tmp_path / "i", milvus_uri="x.db")


def test_ask_on_a_builtin_index_does_not_import_pymilvus(built_index):
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom rag_qa.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['ask', 'Which planet is the largest in the solar system?', '--index-dir', "
        f"{str(built_index.directory)!r}, '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in ('pymilvus', 'milvus_lite', 'grpc') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_ask_on_a_milvus_index_does_not_import_torch(tmp_path, corpus_dir):
    directory = tmp_path / "index"
    # through the CLI, which also prepares the models for ONNX Runtime, as `ragqa index` does for users
    built = CliRunner().invoke(
        cli, ["-q", "index", str(corpus_dir), "--index-dir", str(directory), "--backend", "milvus"]
    )
    assert built.exit_code == 0, built.output
    release(directory)
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom rag_qa.cli import cli\n"
        "r = CliRunner().invoke(cli, ['ask', 'Which planet is the largest in the solar system?', "
        f"'--index-dir', {str(directory)!r}, '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "import json; print(json.loads(r.output)['answers'][0]['text'], 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["Jupiter", "False"]


@pytest.mark.slow
def test_sigkill_mid_build_leaves_the_old_collection_answering(tmp_path, corpus_dir, tiny_encoder):
    from rag_qa.config import IndexConfig

    docs = tmp_path / "docs"
    shutil.copytree(corpus_dir, docs)
    directory = tmp_path / "index"
    small = IndexConfig().replace(dense={"encoder": str(tiny_encoder)})  # embeds the 400 documents below fast
    build_index([docs], directory, config=small, backend="milvus", show_progress=False)
    before = Index.load(directory).collection
    release(directory)  # Milvus Lite serves one process at a time
    for i in range(400):
        (docs / f"many{i:04d}.txt").write_text(" ".join(f"Note {i} line {j} about item{j}." for j in range(12)))
    manifest = (directory / "manifest.json").read_text()

    proc = subprocess.Popen(
        [sys.executable, "-m", "rag_qa.cli", "index", "--index-dir", str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
        text=True,
    )
    seen, deadline = "", time.time() + 240
    while proc.poll() is None and "Writing to Milvus" not in seen and time.time() < deadline:
        seen = (seen + proc.stderr.read(64))[-400:]
    assert proc.poll() is None, seen
    proc.send_signal(signal.SIGKILL)  # the new collection exists, its rows are being written
    proc.wait()

    assert (directory / "manifest.json").read_text() == manifest
    idx = Index.load(directory)
    assert idx.collection == before and len(idx) == 6
    assert names(idx.search("Which planet is the largest?", k=1, mode="bm25")) == ["space.html"]
    alias = idx.manifest["milvus"]["alias"]
    orphans = [c for c in client_for(idx).list_collections() if c.startswith(alias + "__") and c != before]
    assert orphans, "the kill came after the build finished"
    release(directory)

    report = build_index(None, directory, show_progress=False)
    assert report.documents == 406
    after = Index.load(directory)
    assert sorted(c for c in client_for(after).list_collections() if c.startswith(alias + "__")) == sorted(
        [before, after.collection]
    )  # the half-written one is dropped


def test_filters_with_quotes_backslashes_and_control_characters_match_as_the_builtin_backend(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    odd = ['say "hi".txt', "back\\slash.txt", "bell\x07name.txt", "plain.txt"]
    for name in odd:
        (docs / name).write_text(f"The ferry to the island of {name[:3]} leaves at noon.")
    for n in range(6):  # BM25 scores terms found in fewer than half the documents
        (docs / f"other{n}.txt").write_text(f"Bakery number {n} opens early and sells rye bread.")
    built = Index.build([docs], tmp_path / "builtin", show_progress=False)
    build_index([docs], tmp_path / "milvus", backend="milvus", show_progress=False)
    index = Index.load(tmp_path / "milvus")
    for glob in ['*"*', "*\\*", "*\x07*", '*" or source like "%', "*\x01*"]:
        expected = sorted(names(built.search("ferry island", k=10, mode="bm25", source=glob)))
        assert sorted(names(index.search("ferry island", k=10, mode="bm25", source=glob))) == expected, glob
    assert names(index.search("ferry island", k=10, mode="bm25", source="*\x07*")) == ["bell\x07name.txt"]
    assert index.search("ferry island", k=10, mode="bm25", where={"tag": 'a"\x01\\'}) == []


def test_ragqa_reads_the_collection_its_manifest_names_even_if_the_alias_was_not_moved(
    tmp_path, corpus_dir, monkeypatch
):
    docs = tmp_path / "docs"
    shutil.copytree(corpus_dir, docs)
    directory = tmp_path / "index"
    build_index([docs], directory, backend="milvus", show_progress=False)
    first = Index.load(directory)
    alias = first.manifest["milvus"]["alias"]
    (docs / "heron.txt").write_text("The heron of Lake Orla is grey and nests in the reeds.")
    real = milvus._Calls.__call__

    def stop_at_the_alias(self, method, *args, **kwargs):  # as a kill right after the manifest swap
        if method == "alter_alias":
            raise KeyboardInterrupt
        return real(self, method, *args, **kwargs)

    monkeypatch.setattr(milvus._Calls, "__call__", stop_at_the_alias)
    with pytest.raises(KeyboardInterrupt):
        build_index(None, directory, show_progress=False)
    monkeypatch.undo()
    second = Index.load(directory)
    assert second.collection != first.collection
    assert client_for(second).describe_alias(alias)["collection_name"] == first.collection  # left behind
    assert names(second.search("heron Lake Orla", k=1)) == ["heron.txt"]  # what the manifest names
    build_index(None, directory, show_progress=False)  # the next build moves the alias
    assert client_for(second).describe_alias(alias)["collection_name"] == Index.load(directory).collection
