"""`ragqa index --engine ray`: the same index as a local build, from reading, embedding and BM25 on Ray."""

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'ragqa[ray]'")

from rag_qa import Index  # noqa: E402
from rag_qa.cli import cli  # noqa: E402
from rag_qa.errors import InputError  # noqa: E402
from rag_qa.retrieval.bm25 import BM25Retriever, shard_counts  # noqa: E402
from rag_qa.retrieval.builder import build_index  # noqa: E402
from rag_qa.retrieval.engines import make_engine  # noqa: E402
from rag_qa.retrieval.tokenize import tokenize  # noqa: E402

pytestmark = pytest.mark.slow
ENV = dict(os.environ, HF_HUB_OFFLINE="1")


@pytest.fixture(scope="module", autouse=True)
def ray_files_of_our_own():
    """Ray's sessions and sockets in a folder of these tests (short: socket paths are limited), removed after."""
    folder = tempfile.mkdtemp(prefix="ray-")
    before = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = folder
    yield
    if before is None:
        os.environ.pop("RAY_TMPDIR", None)
    else:
        os.environ["RAY_TMPDIR"] = before
    shutil.rmtree(folder, ignore_errors=True)


def generation(directory: Path) -> tuple[Path, dict]:
    manifest = json.loads((directory / "manifest.json").read_text())
    return directory / manifest["data_dir"], manifest


def assert_same_index(a: Path, b: Path) -> None:
    """Same passages, documents and BM25 arrays byte for byte; embeddings within 1e-4 cosine."""
    (ga, ma), (gb, mb) = generation(a), generation(b)
    for name in ("passages.jsonl", "documents.json", "keys.json"):
        assert (ga / name).read_bytes() == (gb / name).read_bytes(), name
    for f in sorted((ga / "bm25").iterdir()):
        assert f.read_bytes() == (gb / "bm25" / f.name).read_bytes(), f.name
    va, vb = np.load(ga / "embeddings.npy"), np.load(gb / "embeddings.npy")
    assert va.shape == vb.shape
    cosine = (va * vb).sum(1) / np.linalg.norm(va, axis=1) / np.linalg.norm(vb, axis=1)
    assert cosine.min() >= 1 - 1e-4
    for key in ("counts", "config", "encoder", "roots", "excludes", "source_root", "faiss"):
        assert ma[key] == mb[key], key


@pytest.fixture
def docs(tmp_path, corpus_dir):
    folder = tmp_path / "docs"
    shutil.copytree(corpus_dir, folder)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really a pdf")  # skipped, with one warning
    return folder


def test_the_cli_builds_on_a_ray_it_starts_and_stops_the_same_index(tmp_path, docs, monkeypatch):
    monkeypatch.chdir(tmp_path)  # sources are stored relative to the working directory
    assert not ray.is_initialized()
    local = CliRunner().invoke(cli, ["-q", "index", "docs", "--index-dir", "local", "--json"])
    on_ray = CliRunner().invoke(cli, ["-q", "index", "docs", "--index-dir", "on-ray", "--engine", "ray", "--json"])
    assert local.exit_code == 0, local.output
    assert on_ray.exit_code == 0, on_ray.output
    assert not ray.is_initialized()  # the Ray it started for the build is stopped
    assert json.loads(on_ray.stdout) == {**json.loads(local.stdout), "index_dir": "on-ray"}
    assert_same_index(tmp_path / "local", tmp_path / "on-ray")
    asked = CliRunner().invoke(
        cli, ["ask", "Which planet is the largest in the solar system?", "--index-dir", "on-ray", "--json"]
    )
    assert asked.exit_code == 0, asked.output
    assert "Jupiter" in json.loads(asked.stdout)["answers"][0]["text"]


def test_ray_options_need_the_ray_engine(tmp_path, docs):
    result = CliRunner().invoke(cli, ["index", str(docs), "--index-dir", str(tmp_path / "i"), "--workers", "2"])
    assert result.exit_code == 1
    assert "--workers applies to --engine ray" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "i").exists()  # nothing made


def test_no_cluster_at_the_address_is_a_one_line_error_and_nothing_is_made(tmp_path, docs):
    assert not ray.is_initialized()
    result = CliRunner().invoke(
        cli, ["-q", "index", str(docs), "--index-dir", str(tmp_path / "i"), "--engine", "ray", "--ray-address", "auto"]
    )
    assert result.exit_code == 1, result.output
    line = result.output.strip()
    assert "Ray could not start or connect at auto" in line and "ray start --head" in line
    assert "\n" not in line and "Traceback" not in line
    assert not (tmp_path / "i" / "manifest.json").exists()


def test_more_gpus_than_the_cluster_has_is_refused(tmp_path, docs):
    with pytest.raises(InputError, match="needs 2 GPUs, but the Ray cluster has 0"):
        build_index([docs], tmp_path / "i", show_progress=False, engine="ray", workers=2, gpus_per_worker=1)
    assert not ray.is_initialized()  # the Ray started to find out is stopped


def test_without_ray_installed_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    with pytest.raises(InputError, match=r"pip install 'ragqa\[ray\]'"):
        make_engine("ray")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the tests below (2 CPUs, as on this machine): builds use it and leave it running."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


def test_several_workers_and_shards_give_the_same_index_and_the_same_warnings(tmp_path, docs, local_ray, caplog):
    with caplog.at_level(logging.WARNING, logger="rag_qa"):
        build_index([docs], tmp_path / "local", show_progress=False)
    local_warnings = [r.getMessage() for r in caplog.records]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rag_qa"):
        report = build_index([docs], tmp_path / "ray", show_progress=False, engine="ray", workers=2)
    assert [r.getMessage() for r in caplog.records] == local_warnings  # from the workers, once each
    assert any("broken.pdf" in w for w in local_warnings)
    assert report.skipped and report.skipped[0][0].endswith("broken.pdf")
    assert ray.is_initialized()  # a Ray it did not start is left running
    assert_same_index(tmp_path / "local", tmp_path / "ray")
    a, b = Index.load(tmp_path / "local"), Index.load(tmp_path / "ray")
    for query in ("largest planet", "capital of France", "how are passages stored"):
        assert np.array_equal(a._bm25.get_scores(query), b._bm25.get_scores(query))
        assert [h.passage.passage_id for h in a.search(query, k=5)] == [
            h.passage.passage_id for h in b.search(query, k=5)
        ]


def test_an_incremental_ray_build_embeds_only_what_changed(tmp_path, docs, local_ray):
    build_index([docs], tmp_path / "ray", show_progress=False, engine="ray")
    (docs / "heron.md").write_text("# Herons\n\nThe heron of Lake Orla is grey and nests in the reeds.\n")
    report = build_index(None, tmp_path / "ray", show_progress=False, engine="ray")
    assert (report.added, report.changed, report.removed) == (1, 0, 0)
    assert report.embedded == 1 and report.reused == report.passages - 1
    build_index([docs], tmp_path / "fresh", show_progress=False)  # a local build of the same files, from scratch
    assert_same_index(tmp_path / "fresh", tmp_path / "ray")
    assert build_index(None, tmp_path / "ray", show_progress=False, engine="ray").up_to_date


def test_bm25_from_shards_equals_one_count_over_the_corpus():
    texts = [
        "The heron nests in the reeds.",
        "",
        "Reeds and reeds again: herons, herons.",
        "Jupiter is the largest planet.",
        "the the the",
    ]
    tokens = [tokenize(t) for t in texts]
    whole = BM25Retriever.from_tokens(tokens)
    for size in (1, 2, 3):
        sharded = BM25Retriever.from_shards([shard_counts(tokens[i : i + size]) for i in range(0, len(tokens), size)])
        assert sharded._engine.vocab_dict == whole._engine.vocab_dict
        for key in ("data", "indices", "indptr"):
            assert np.array_equal(sharded._engine.scores[key], whole._engine.scores[key]), key
        assert np.array_equal(sharded.get_scores("reeds heron"), whole.get_scores("reeds heron"))


def test_ask_does_not_import_ray(built_index):
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom rag_qa.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['ask', 'Which planet is the largest in the solar system?', '--index-dir', "
        f"{str(built_index.directory)!r}, '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
