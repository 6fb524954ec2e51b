"""Guarantees under faults: killed builds, concurrent readers, malicious files."""

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag_qa import Index
from rag_qa.errors import ModelError
from rag_qa.reading.spans import decode_window
from rag_qa.retrieval.builder import build_index


def write_many(root: Path, n: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sentences = " ".join(f"Document {i} sentence {j} mentions topic{i % 17} and item{j}." for j in range(25))
        (root / f"doc{i:04d}.txt").write_text(sentences)
    return root


def snapshot(directory):
    idx = Index.load(directory)
    return [h.passage.passage_id for h in idx.search("largest planet Jupiter", k=3, mode="bm25")], len(idx)


def start_build(docs, directory):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "rag_qa.cli", "index", str(docs), "--index-dir", str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )


def kill_when(proc, ready, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    return False


def wait_for_stderr(proc, text):
    seen = ""
    while proc.poll() is None and text not in seen:
        seen = (seen + proc.stderr.read(32))[-200:]
    return proc.poll() is None


@pytest.mark.slow
def test_sigkill_at_any_point_leaves_the_old_index_answering(tmp_path, write_corpus):
    old_docs = write_corpus(tmp_path / "old")
    directory = tmp_path / "index"
    build_index([old_docs], directory, show_progress=False)
    before = snapshot(directory)
    new_docs = write_many(tmp_path / "new", 120)

    kill_points = {
        "while loading": lambda proc: (time.sleep(1.0), proc.poll() is None)[1],
        "mid-embedding": lambda proc: wait_for_stderr(proc, "Embedding"),
        "mid-write": lambda proc: kill_when(proc, lambda: any(directory.glob(".tmp-*"))) or None,
    }
    killed = []
    for name, reach in kill_points.items():
        proc = start_build(new_docs, directory)
        if reach(proc) and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.returncode == -signal.SIGKILL:
            killed.append(name)
            assert snapshot(directory) == before, f"index changed after a kill {name}"
    assert len(killed) >= 2, killed

    done = start_build(new_docs, directory)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    assert len(Index.load(directory)) > before[1]
    assert not list(directory.glob(".tmp-*"))


@pytest.mark.slow
def test_readers_during_rebuilds_see_a_whole_index(tmp_path, write_corpus):
    docs = write_corpus(tmp_path / "docs")
    directory = tmp_path / "index"
    build_index([docs], directory, show_progress=False)
    errors, seen = [], set()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                idx = Index.load(directory)
                hits = idx.search("Jupiter planet", k=1, mode="bm25")
                seen.add((len(idx), hits[0].passage.text[:20] if hits else None))
            except Exception as exc:  # noqa: BLE001 - any failure is the bug we look for
                errors.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(4):
            (docs / f"extra{i}.txt").write_text(f"Extra document number {i} about moons.")
            build_index([docs], directory, show_progress=False)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert len(seen) >= 2  # it saw the index change, whole every time


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_malicious_pickle_in_a_model_directory_is_never_executed(tmp_path, tiny_qa_base):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "config.json").write_text((tiny_qa_base / "config.json").read_text())
    (evil / "pytorch_model.bin").write_bytes(pickle.dumps(_Exploit(str(marker))))
    from rag_qa.reading.reader import Reader

    with pytest.raises(ModelError, match="no safetensors weights"):
        Reader(evil).warm_up()
    # Next to real safetensors weights the pickle is ignored as well.
    for f in tiny_qa_base.iterdir():
        (evil / f.name).write_bytes(f.read_bytes())
    (evil / "pytorch_model.bin").write_bytes(pickle.dumps(_Exploit(str(marker))))
    Reader(evil, precision="float32").warm_up()
    from rag_qa.retrieval.encoder import Encoder

    with pytest.raises(ModelError):
        Encoder(tmp_path / "missing")
    assert not marker.exists()


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    n=st.integers(min_value=2, max_value=40),
    max_len=st.integers(min_value=1, max_value=10),
)
def test_decoded_spans_always_lie_inside_the_context(data, n, max_len):
    start = np.asarray(data.draw(st.lists(st.floats(-20, 20), min_size=n, max_size=n)))
    end = np.asarray(data.draw(st.lists(st.floats(-20, 20), min_size=n, max_size=n)))
    in_ctx = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    offsets, pos = [], 0
    for flag in in_ctx:
        offsets.append((pos, pos + 3) if flag else None)
        pos += 4
    spans, _ = decode_window(start, end, offsets, max_answer_tokens=max_len)
    ctx_tokens = [o for o in offsets if o is not None]
    for sp in spans:
        assert sp.start < sp.end
        assert any(o[0] == sp.start for o in ctx_tokens) and any(o[1] == sp.end for o in ctx_tokens)
        first = next(i for i, o in enumerate(offsets) if o and o[0] == sp.start)
        last = next(i for i, o in enumerate(offsets) if o and o[1] == sp.end)
        assert 0 <= last - first < max_len


def write_bad_folder(docs: Path) -> tuple[Path, dict[str, str]]:
    """Adds to the fixture corpus in ``docs`` one file of each kind users drop into
    folders; returns the folder and, per bad file, a word its skip reason must hold."""
    (docs / "loop").symlink_to(docs, target_is_directory=True)
    (docs / "empty.txt").write_bytes(b"")
    (docs / "image.txt").write_bytes(bytes(range(256)) * 40)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    (docs / "latin.txt").write_bytes("Crème brûlée is a French dessert.".encode("latin-1"))
    (docs / "wide.txt").write_bytes("Die Donau fließt ins Schwarze Meer.".encode("utf-16"))
    (docs / "controls.txt").write_text("Ring\x07 the bell\x1b[0m at noon. The bell has a clear tone.")
    (docs / "rows.jsonl").write_text('{"id": "1", "text": "The tide rises twice a day."}\n{oops\n')
    locked = docs / "locked.txt"
    locked.write_text("Nobody may read this.")
    locked.chmod(0)
    return docs, {
        "empty.txt": "empty",
        "image.txt": "binary",
        "broken.pdf": "PDF",
        "rows.jsonl:2": "invalid JSON",
        "locked.txt": "Permission denied",
    }


def check_skips(skipped: list[tuple[str, str]], expected: dict[str, str]) -> None:
    by_name = {path.rsplit("/", 1)[-1]: reason for path, reason in skipped}
    assert set(by_name) == set(expected), by_name
    for name, word in expected.items():
        assert word in by_name[name], (name, by_name[name])


def test_bad_folder_through_the_api(tmp_path, unreadable_as_root, write_corpus):
    docs, expected = write_bad_folder(write_corpus(tmp_path / "docs"))
    report = build_index([docs], tmp_path / "index", show_progress=False)
    check_skips(report.skipped, expected)
    assert report.documents == 6 + 4  # the fixture corpus, then latin, wide, controls and the good JSONL line
    index = Index.load(tmp_path / "index")
    for query, word in [
        ("French dessert", "Crème brûlée"),
        ("Donau Meer", "fließt"),
        ("bell noon", "bell"),
        ("tide", "tide"),
    ]:
        assert word in index.search(query, k=1, mode="bm25")[0].passage.text


def test_bad_folder_through_the_cli(tmp_path, unreadable_as_root, write_corpus):
    from click.testing import CliRunner

    from rag_qa.cli import cli

    docs, expected = write_bad_folder(write_corpus(tmp_path / "docs"))
    result = CliRunner().invoke(cli, ["index", str(docs), "--index-dir", str(tmp_path / "index"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(
        result.output[result.output.index("{\n") if "{\n" in result.output else result.output.index("{") :]
    )
    check_skips([(s["path"], s["reason"]) for s in report["skipped"]], expected)
    assert report["documents"] == 10


@pytest.mark.parametrize(
    "question, error",
    [
        ("", "query is empty"),
        ("   \n\t", "query is empty"),
        ("\x00\x01\x1b", "query is empty"),
        ("x" * 100_000, "characters"),
    ],
)
def test_bad_questions_through_the_api(built_index, tiny_qa_base, question, error):
    from rag_qa import RagQA, RagQAError

    qa = RagQA(built_index, __import__("rag_qa").Reader(tiny_qa_base))
    with pytest.raises(RagQAError, match=error):
        qa.ask(question)


@pytest.mark.parametrize(
    "kind, error",
    [
        ("empty", "no config.json"),
        ("noweights", "no safetensors weights"),
        ("pickle", "pytorch_model.bin"),
        ("remote", "remote code"),
    ],
)
def test_bad_model_directories_through_the_api(tmp_path, kind, error, bad_reader, write_corpus):
    from rag_qa import RagQAError, Reader

    folder = bad_reader(tmp_path, kind)
    with pytest.raises(RagQAError, match=error):
        Reader(folder).warm_up()
    with pytest.raises(RagQAError, match=error):
        build_index([write_corpus(tmp_path / "docs")], tmp_path / "index", encoder=folder, show_progress=False)
    assert not (tmp_path / "index" / "manifest.json").exists()
