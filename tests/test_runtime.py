"""ONNX Runtime gives the answers and vectors torch gives, and starts without torch."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rag_qa.errors import InputError, ModelError
from rag_qa.models import default_encoder_path, weights_sha256
from rag_qa.reading.reader import Reader, default_reader_path
from rag_qa.retrieval.encoder import Encoder
from rag_qa.runtime import FastTokenizer, OnnxModel, onnx_file, resolve_runtime, serving_reader_runtime
from rag_qa.types import Passage

pytest.importorskip("onnxruntime")

CONTEXTS = [
    "The manifest records every file's sha256 and size. " * 40,  # several windows
    "Crème brûlée was first served in 1691 by François Massialot — in Paris (Île-de-France).",
    "短い文。 Ñandú and naïve café\tstrings, with  double  spaces\nand lines.",
]
QUESTIONS = ["What does the manifest record?", "Who served crème brûlée first?", "What is a ñandú?"]


def test_windows_match_the_transformers_tokenizer():
    from transformers import AutoTokenizer

    path = default_reader_path()
    hf = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    expected = hf(
        QUESTIONS,
        CONTEXTS,
        truncation="only_second",
        max_length=64,
        stride=16,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    windows = FastTokenizer(path).windows(QUESTIONS, CONTEXTS, max_length=64, stride=16)

    assert len(windows) == len(expected["input_ids"]) > len(CONTEXTS)
    assert windows.sample_map == list(expected["overflow_to_sample_mapping"])
    for w, ids in enumerate(expected["input_ids"]):
        n = len(ids)
        assert windows.arrays["input_ids"][w, :n].tolist() == ids
        assert windows.arrays["token_type_ids"][w, :n].tolist() == expected["token_type_ids"][w]
        assert windows.arrays["attention_mask"][w].sum() == n
        assert windows.sequence_ids[w] == expected.sequence_ids(w)
        assert [tuple(o) for o in windows.offsets[w]] == [tuple(o) for o in expected["offset_mapping"][w]]


def test_texts_match_the_transformers_tokenizer():
    from transformers import AutoTokenizer

    path = default_encoder_path()
    hf = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    texts = CONTEXTS + ["x"]
    expected = hf(texts, padding=True, truncation=True, max_length=32, return_tensors="np")
    got = FastTokenizer(path, kind="encoder").texts(texts, max_length=32)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(got[key], expected[key])


def test_onnx_reader_gives_the_answers_of_torch(tiny_qa_base):
    passages = [Passage(f"p{i}", f"d{i}", f"d{i}.txt", text, 0, len(text)) for i, text in enumerate(CONTEXTS)]
    settings = dict(max_seq_length=64, doc_stride=16, no_answer_threshold=float("-inf"))
    torch_answers = Reader(tiny_qa_base, runtime="torch", precision="float32", **settings).read(
        QUESTIONS[0], passages, top_k=5
    )
    onnx_reader = Reader(tiny_qa_base, runtime="onnx", **settings)
    onnx_answers = onnx_reader.read(QUESTIONS[0], passages, top_k=5)
    assert onnx_reader.backend == "onnx float32"
    assert [(a.text, a.source, a.start) for a in onnx_answers] == [(a.text, a.source, a.start) for a in torch_answers]
    np.testing.assert_allclose([a.logit for a in onnx_answers], [a.logit for a in torch_answers], atol=1e-3)


def test_int8_reader_is_smaller_and_still_reads(tiny_qa_base):
    reader = Reader(
        tiny_qa_base, runtime="onnx-int8", max_seq_length=64, doc_stride=16, no_answer_threshold=float("-inf")
    )
    passage = Passage("p", "d", "d.txt", CONTEXTS[1], 0, len(CONTEXTS[1]))
    (answer,) = reader.read(QUESTIONS[1], [passage], top_k=1)
    assert passage.text[answer.start : answer.end] == answer.text != ""
    sha = weights_sha256(tiny_qa_base)
    assert (
        onnx_file(tiny_qa_base, "reader", sha, quantized=True).stat().st_size
        < 0.5 * onnx_file(tiny_qa_base, "reader", sha).stat().st_size
    )


def test_onnx_encoder_gives_the_vectors_of_torch(tiny_encoder):
    texts = CONTEXTS + ["a short query"]
    expected = Encoder(tiny_encoder, runtime="torch", precision="float32").encode(texts)
    onnx = Encoder(tiny_encoder, runtime="onnx")
    got = onnx.encode(texts)
    assert got.shape == expected.shape
    assert np.min(np.sum(got * expected, axis=1)) > 0.9999
    assert onnx.info().dimension == 32


def test_export_is_cached_by_weights_and_a_damaged_one_is_redone(tiny_qa_base, caplog):
    sha = weights_sha256(tiny_qa_base)
    path = onnx_file(tiny_qa_base, "reader", sha)
    before = path.stat().st_mtime_ns
    assert onnx_file(tiny_qa_base, "reader", sha).stat().st_mtime_ns == before  # not exported again
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])  # a truncated copy
    model = OnnxModel(tiny_qa_base, "reader", sha)
    assert "exporting it again" in caplog.text
    assert len(model.run(FastTokenizer(tiny_qa_base).texts(["a b c"], 8))) == 2


def test_unwritable_cache_is_a_clear_error(tiny_qa_base, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("RAGQA_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(ModelError, match="RAGQA_CACHE_DIR"):
        Reader(tiny_qa_base, runtime="onnx").warm_up()


def test_runtime_choice():
    assert resolve_runtime("torch") == "torch"
    assert resolve_runtime("auto", precision="bfloat16") == "torch"  # a torch precision asks for torch
    assert resolve_runtime("auto", device="cuda") == "torch"
    with pytest.raises(InputError, match="CPU only"):
        resolve_runtime("onnx", device="cuda")
    with pytest.raises(InputError, match="unknown runtime"):
        resolve_runtime("tensorrt")


def test_a_service_reads_with_torch_only_where_bfloat16_is_in_hardware(monkeypatch):
    import rag_qa.runtime.select as select

    monkeypatch.setattr(select, "_has_nvidia_gpu", lambda: False)
    monkeypatch.setattr(select, "cpu_has_native_bf16", lambda: True)
    assert serving_reader_runtime(None) == "torch"
    assert serving_reader_runtime("onnx") == "onnx"  # what was asked for is kept
    assert serving_reader_runtime("auto") == "auto"  # --runtime auto: onnx on this CPU, as its help says
    monkeypatch.setattr(select, "cpu_has_native_bf16", lambda: False)
    assert serving_reader_runtime(None) is None  # float32 CPUs keep ONNX Runtime (the reader's auto)
    monkeypatch.setattr(select, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(select, "_has_nvidia_gpu", lambda: True)
    assert serving_reader_runtime("auto") == "auto"  # auto is torch on a GPU already


def test_the_service_picks_its_reader_runtime(built_index, tmp_path, monkeypatch):
    pytest.importorskip("fastapi")
    import rag_qa.runtime.select as select
    from rag_qa.service import ServeConfig
    from rag_qa.service.app import _Service

    monkeypatch.setattr(select, "_has_nvidia_gpu", lambda: False)
    for native, runtime in ((True, "torch"), (False, "auto")):
        monkeypatch.setattr(select, "cpu_has_native_bf16", lambda native=native: native)
        app = _Service(ServeConfig(index_dir=str(built_index.directory), feedback_dir=str(tmp_path / "fb")))
        assert app.qa.reader.config.runtime == runtime
        assert app.qa.index.config.dense.runtime == "auto"  # the query encoder keeps the index's runtime
    asked = _Service(ServeConfig(index_dir=str(built_index.directory), feedback_dir=str(tmp_path), runtime="onnx"))
    assert asked.qa.reader.config.runtime == "onnx"


@pytest.mark.slow
def test_ask_starts_without_importing_torch(corpus_dir, tmp_path, monkeypatch):
    """What makes a cold `ragqa ask` fast: once `ragqa index` has exported the
    models, neither torch nor transformers is imported to answer."""
    from click.testing import CliRunner

    from rag_qa.cli import cli

    monkeypatch.setenv("RAGQA_CACHE_DIR", str(tmp_path / "cache"))  # nothing exported yet
    index_dir = tmp_path / "index"
    built = CliRunner().invoke(cli, ["-q", "index", str(corpus_dir), "--index-dir", str(index_dir)])
    assert built.exit_code == 0, built.output
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from rag_qa.cli import cli\n"
        "result = CliRunner().invoke(cli, ['ask', 'What does the manifest record?', "
        f"'--index-dir', {str(index_dir)!r}, '--json'])\n"
        "print(result.output)\n"
        "print('HEAVY', sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ), timeout=600, check=True
    ).stdout
    assert "HEAVY []" in out
    answers = json.loads(out[: out.rindex("HEAVY")])["answers"]
    assert answers and answers[0]["text"]
