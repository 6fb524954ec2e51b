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
    (docs / "\x1b[2Jempty.txt").write_text("")  # skipped with a warning that names it
    index = tmp_path / "index"
    built = CliRunner().invoke(cli, ["index", str(docs), "--index-dir", str(index)])
    assert built.exit_code == 0, built.output
    assert "\\x1b[2Jempty.txt" in built.output, built.output
    results = [
        CliRunner().invoke(cli, ["search", "vault code name line break", "--index-dir", str(index), "-k", "3"]),
        CliRunner().invoke(
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
        ),
    ]
    assert [r.exit_code for r in results] == [0, 0], [r.output for r in results]
    outputs = [built.output] + [r.output for r in results]
    for out in outputs:
        assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out, repr(out)
    assert "two\\nlines.txt" in outputs[1]
    assert "\\x1b]0;owned\\x07" in outputs[1] and "\\x9b31m" in outputs[1]  # shown, not obeyed
    hits = json.loads(
        CliRunner().invoke(cli, ["search", "vault code", "--index-dir", str(index), "--json", "--mode", "bm25"]).output
    )
    assert "\x1b]0;owned\x07" in hits[0]["text"]  # JSON stays exact


def _built(tmp_path, write_corpus):
    from rag_qa import Index

    return Index.build([write_corpus(tmp_path / "docs")], tmp_path / "index", show_progress=False).directory


@pytest.mark.slow
def test_the_manifest_carries_its_own_checksum_and_names_files_only_inside_the_index(tmp_path, write_corpus):
    from rag_qa import Index
    from rag_qa.errors import IndexCorruptError
    from rag_qa.retrieval import storage

    directory = _built(tmp_path, write_corpus)
    path = directory / "manifest.json"
    original = path.read_text()
    path.write_text(original.replace('"bm25_weight": 0.5', '"bm25_weight": 0.9'))
    with pytest.raises(IndexCorruptError, match="fails its own checksum"):
        Index.load(directory)
    for outside in ("../../../etc/hostname", "/etc/hostname"):
        crafted = json.loads(original)
        crafted["files"][outside] = {"sha256": "0" * 64, "bytes": 1}
        crafted["sha256"] = storage.manifest_sha256(crafted)
        path.write_text(json.dumps(crafted))
        with pytest.raises(IndexCorruptError, match="outside its data folder"):
            Index.load(directory)
    crafted = json.loads(original)
    crafted["data_dir"] = "../../etc"
    crafted["sha256"] = storage.manifest_sha256(crafted)
    path.write_text(json.dumps(crafted))
    with pytest.raises(IndexCorruptError, match="names no valid data folder"):
        Index.load(directory)


@pytest.mark.slow
def test_index_folders_and_files_are_private_to_their_owner(tmp_path, write_corpus):
    directory = _built(tmp_path, write_corpus)
    modes = {p.relative_to(directory).as_posix(): p.stat().st_mode & 0o777 for p in [directory, *directory.rglob("*")]}
    assert modes["."] == 0o700
    assert all(mode == 0o600 for name, mode in modes.items() if (directory / name).is_file()), modes
    assert all(mode == 0o700 for name, mode in modes.items() if (directory / name).is_dir()), modes


@pytest.mark.slow
def test_links_to_files_outside_the_folder_are_read_only_when_asked(tmp_path):
    secret = tmp_path / "private" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("The private key phrase is marmalade.")
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a", "b", "c"):
        (docs / f"{name}.txt").write_text(f"Ordinary note {name} about gardening.")
    (docs / "inside-link.txt").symlink_to(docs / "a.txt")
    (docs / "outside-link.txt").symlink_to(secret)
    plain = CliRunner().invoke(cli, ["index", str(docs), "--index-dir", str(tmp_path / "i1"), "--json"])
    assert plain.exit_code == 0, plain.output
    report = json.loads(plain.stdout)
    assert report["documents"] == 3  # the link inside the folder is the same document as its target
    assert [s["path"].rsplit("/", 1)[-1] for s in report["skipped"]] == ["outside-link.txt"]
    followed = CliRunner().invoke(
        cli, ["-q", "index", str(docs), "--index-dir", str(tmp_path / "i2"), "--json", "--follow-links"]
    )
    assert json.loads(followed.output)["documents"] == 4


def test_an_encoder_module_with_pickled_weights_only_is_refused(tmp_path, tiny_encoder):
    import shutil

    from rag_qa.errors import ModelError
    from rag_qa.retrieval.encoder import Encoder

    folder = tmp_path / "encoder"
    shutil.copytree(tiny_encoder, folder)
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": len(modules), "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "2_Dense").mkdir()
    (folder / "2_Dense" / "config.json").write_text("{}")
    (folder / "2_Dense" / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(ModelError, match="2_Dense has its weights only in pytorch_model.bin"):
        Encoder(folder)


@pytest.mark.slow
def test_a_loaded_index_keeps_answering_after_two_rebuilds(tmp_path, write_corpus):
    from rag_qa import Index
    from rag_qa.retrieval import storage

    docs = write_corpus(tmp_path / "docs")
    loaded = Index.build([docs], tmp_path / "index", show_progress=False)
    assert loaded.search("Which planet is the largest?", k=3, mode="bm25")  # in use, dense search not yet asked for
    for i in range(2):
        (docs / f"new{i}.txt").write_text(f"Extra note number {i} about comets and their tails.")
        Index.build([docs], tmp_path / "index", show_progress=False)
    assert len(list((tmp_path / "index").glob("gen-*"))) <= 2  # the loaded one and the newest: none in between
    generation = storage.data_dir(loaded.directory, loaded.manifest)
    assert generation.is_dir()  # held while loaded
    hits = loaded.search("Which planet is the largest?", k=3, mode="dense")
    assert len(hits) == 3 and {h.passage.passage_id for h in hits} <= {p.passage_id for p in loaded.passages}
    assert "Jupiter" in hits[0].passage.text
    # and opened at load: a loaded index answers even once its files are gone from disk
    again = Index.load(tmp_path / "index")
    import shutil

    shutil.rmtree(storage.data_dir(again.directory, again.manifest))
    assert "Jupiter" in again.search("Which planet is the largest?", k=3, mode="dense")[0].passage.text


def test_a_bit_flipped_onnx_export_is_detected_and_exported_again(tiny_qa_base, tmp_path, monkeypatch, caplog):
    from rag_qa.models import weights_sha256
    from rag_qa.runtime import onnx_file

    monkeypatch.setenv("RAGQA_CACHE_DIR", str(tmp_path / "cache"))
    sha = weights_sha256(tiny_qa_base)
    path = onnx_file(tiny_qa_base, "reader", sha)
    good = path.read_bytes()
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0x01  # still a loadable graph, with one weight changed
    path.write_bytes(bytes(flipped))
    again = onnx_file(tiny_qa_base, "reader", sha)
    assert "does not match its recorded sha256" in caplog.text
    assert again.read_bytes() == good
    assert (tmp_path / "cache" / "onnx").stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give a folder to another user"
)
def test_an_onnx_cache_folder_of_another_user_is_refused(tiny_qa_base, tmp_path, monkeypatch):
    from rag_qa.errors import ModelError
    from rag_qa.models import weights_sha256
    from rag_qa.runtime import onnx_file

    cache = tmp_path / "cache"
    (cache / "onnx").mkdir(parents=True)
    os.chown(cache / "onnx", 65534, 65534)
    monkeypatch.setenv("RAGQA_CACHE_DIR", str(cache))
    with pytest.raises(ModelError, match="owned by another user"):
        onnx_file(tiny_qa_base, "reader", weights_sha256(tiny_qa_base))


def _sleep_forever():
    import time

    time.sleep(60)


def _allocate(mb):
    return len(bytearray(mb * 2**20))


def test_a_parse_past_its_time_or_memory_bound_is_stopped():
    import time

    from rag_qa.ingest.bounded import LimitExceeded, run_bounded

    start = time.perf_counter()
    with pytest.raises(LimitExceeded, match="longer than 0.5 s"):
        run_bounded(_sleep_forever, (), seconds=0.5, memory_mb=256)
    assert time.perf_counter() - start < 5
    with pytest.raises(LimitExceeded, match="more than 128 MB"):
        run_bounded(_allocate, (1024,), seconds=30, memory_mb=128)
    assert run_bounded(_allocate, (16,), seconds=30, memory_mb=128) == 16 * 2**20


@pytest.mark.slow
def test_hostile_html_is_skipped_with_a_warning_and_the_rest_indexed(tmp_path, monkeypatch):
    from rag_qa import Index
    from rag_qa.ingest import IngestReport, iter_documents

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tags.html").write_text("<div>" * 400_000 + "deep text")
    (docs / "fine.html").write_text("<html><body><p>The ferry leaves at noon.</p></body></html>")
    (docs / "long.jsonl").write_text(json.dumps({"id": "x", "text": "word " * 500_000}) + "\n")
    config = tmp_path / "tight.yaml"
    config.write_text("parse_seconds: 1.5\nparse_memory_mb: 256\nmax_chars: 100000\n")
    from rag_qa.config import IndexConfig
    from rag_qa.ingest.bounded import ReadLimits

    cfg = IndexConfig.from_yaml(config)
    limits = ReadLimits(parse_seconds=cfg.parse_seconds, parse_memory_mb=cfg.parse_memory_mb, max_chars=cfg.max_chars)
    report = IngestReport()
    read = {d.source.rsplit("/", 1)[-1]: d for d in iter_documents([docs], report, limits=limits)}
    assert "fine.html" in read and "The ferry leaves at noon." in read["fine.html"].text
    assert len(read["long.jsonl"].text) == 100_000
    assert [p.rsplit("/", 1)[-1] for p, _ in report.skipped] == ["tags.html"]
    assert "parse_seconds or parse_memory_mb" in report.skipped[0][1]
    result = CliRunner().invoke(
        cli, ["-q", "index", str(docs), "--index-dir", str(tmp_path / "index"), "--config", str(config), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["documents"] == 2
    assert Index.load(tmp_path / "index").search("ferry noon", mode="bm25")


def test_a_faiss_file_that_disagrees_with_its_size_or_its_embeddings_is_named(tmp_path, write_corpus):
    import numpy as np

    from rag_qa.config import DenseConfig
    from rag_qa.errors import IndexCorruptError
    from rag_qa.retrieval.dense import DenseRetriever, build_faiss

    vectors = np.eye(4, 8, dtype=np.float32)
    DenseRetriever(build_faiss(vectors, DenseConfig()), vectors, DenseConfig()).save(tmp_path)
    raw = bytearray((tmp_path / "dense.faiss").read_bytes())
    raw[8:16] = (2**34).to_bytes(8, "little")  # the header's vector count
    (tmp_path / "dense.faiss").write_bytes(bytes(raw[:93]))
    with pytest.raises(IndexCorruptError, match="dense.faiss"):
        DenseRetriever.load(tmp_path, DenseConfig())
    # a whole, readable FAISS file that disagrees with the embeddings beside it
    DenseRetriever(build_faiss(vectors, DenseConfig()), vectors, DenseConfig()).save(tmp_path)
    np.save(tmp_path / "embeddings.npy", vectors[:3])
    with pytest.raises(IndexCorruptError, match="holds 4 vectors"):
        DenseRetriever.load(tmp_path, DenseConfig())


def test_a_question_that_fills_the_window_is_a_one_line_error_through_the_python_api():
    from rag_qa.errors import InputError
    from rag_qa.reading.reader import Reader

    passage = " ".join(["The port is 8080."] * 100)  # several windows: the stride meets the question's length
    with pytest.raises(InputError, match="the question is too long"):
        Reader().read(" ".join(["word"] * 300), [passage])


def test_an_encoder_module_of_a_foreign_type_is_refused_before_it_is_imported(tmp_path, tiny_encoder, monkeypatch):
    import shutil

    from rag_qa.errors import ModelError
    from rag_qa.retrieval.encoder import Encoder

    marker = tmp_path / "imported"
    (tmp_path / "probe_module.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Probe:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = tmp_path / "encoder"
    shutil.copytree(tiny_encoder, folder)
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": len(modules), "name": "2", "path": "", "type": "probe_module.Probe"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelError, match="module 2 is of type 'probe_module.Probe', not one of sentence-transformers'"):
        Encoder(folder, runtime="torch").encode(["a question"])
    assert not marker.exists()


@pytest.mark.slow
def test_an_encoder_folder_named_by_an_index_is_used_only_if_no_one_else_can_write_it(tmp_path, tiny_encoder):
    import shutil

    from rag_qa import Index
    from rag_qa.errors import ModelError

    folder = tmp_path / "encoder"
    shutil.copytree(tiny_encoder, folder)
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "moons.txt").write_text("Io is the innermost of the four Galilean moons of Jupiter.\n")
    directory = tmp_path / "index"
    Index.build([corpus], directory, encoder=folder, show_progress=False)
    # the index records the folder absolute, so it is found from any working directory
    assert json.loads((directory / "manifest.json").read_text())["encoder"]["path"] == str(folder)
    assert Index.load(directory).search("moons of Jupiter", k=1, mode="dense")

    (folder / "model.safetensors").chmod(0o666)  # anyone could now swap the weights it loads
    with pytest.raises(ModelError, match=r"writable by anyone \(model.safetensors\).*copy it to a folder of your own"):
        Index.load(directory).search("moons of Jupiter", k=1, mode="dense")
    (folder / "model.safetensors").chmod(0o644)
    (folder / "1_Pooling").chmod(0o777)  # the folders inside too
    with pytest.raises(ModelError, match=r"writable by anyone \(1_Pooling\)"):
        Index.load(directory).search("moons of Jupiter", k=1, mode="dense")
    (folder / "1_Pooling").chmod(0o755)
    if os.geteuid() == 0:  # another user's folder, which only root can make here
        (folder / "model.safetensors").chmod(0o644)
        os.chown(folder, 65534, 65534)
        with pytest.raises(ModelError, match="owned by another user"):
            Index.load(directory).search("moons of Jupiter", k=1, mode="dense")
    # named by the user, not the index, the same folder is used
    assert Index.load(directory, encoder=folder).search("moons of Jupiter", k=1, mode="dense")


def test_the_onnx_cache_is_made_private_and_never_written_through_a_link(tiny_qa_base, tmp_path, monkeypatch):
    from rag_qa.errors import ModelError
    from rag_qa.models import weights_sha256
    from rag_qa.runtime import onnx_file

    cache = tmp_path / "home" / "cache"
    monkeypatch.setenv("RAGQA_CACHE_DIR", str(cache))
    sha = weights_sha256(tiny_qa_base)
    umask = os.umask(0o002)  # a common default, which leaves new folders group-writable
    try:
        path = onnx_file(tiny_qa_base, "reader", sha)
    finally:
        os.umask(umask)
    for folder in (tmp_path / "home", cache, cache / "onnx", path.parent):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    # a link planted where the export goes is replaced, and what it pointed to is left alone
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    path.unlink()
    path.symlink_to(victim)
    again = onnx_file(tiny_qa_base, "reader", sha)
    assert victim.read_text() == "keep me" and not again.is_symlink() and again.stat().st_size > 1000
    (cache / "onnx").chmod(0o777)
    with pytest.raises(ModelError, match="writable by others: set RAGQA_CACHE_DIR"):
        onnx_file(tiny_qa_base, "reader", sha)


def test_dependency_floors_leave_out_releases_with_known_vulnerabilities():
    import re
    from importlib.metadata import version
    from pathlib import Path

    import tomllib
    from packaging.version import Version

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    floors = dict(re.match(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", d).groups() for d in project["dependencies"])
    for name, safe in {"torch": "2.6", "filelock": "3.20.1"}.items():  # CVE-2025-32434, CVE-2025-68146
        assert Version(floors[name]) >= Version(safe), name
        assert Version(version(name).split("+")[0]) >= Version(safe), name  # and what is installed


def test_the_documented_limits_are_the_defaults():
    """The numbers the README's guarantees give are the ones a default install uses."""
    from rag_qa.config import IndexConfig
    from rag_qa.reading.reader import ReaderConfig
    from rag_qa.retrieval.builder import PRUNE_FREELY
    from rag_qa.text import MAX_WORD_CHARS

    config = IndexConfig()
    assert (config.parse_seconds, config.parse_memory_mb, config.max_pages, config.max_chars) == (
        60.0,
        2048,
        5000,
        5_000_000,
    )
    assert MAX_WORD_CHARS == 40 and ReaderConfig().max_windows_per_passage == 8 and PRUNE_FREELY == 3


def test_a_mistyped_option_is_a_usage_error_with_exit_code_2(tmp_path):
    for args in (["ask", "a question", "--mode", "foo"], ["search", "a query", "-k", "0"], ["ask", "q", "--colour"]):
        result = CliRunner().invoke(cli, [*args, "--index-dir", str(tmp_path)])
        assert result.exit_code == 2, (args, result.output)
        assert "Usage:" in result.output and "Traceback" not in result.output
