from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import tempfile

# ONNX exports of the models go to a cache of the test session's own.
os.environ["RAGQA_CACHE_DIR"] = tempfile.mkdtemp(prefix="ragqa-test-cache-")

import json
import logging
from pathlib import Path

import pytest

# ------------------------------------------------------------------ shared helpers
# Test modules never import each other nor a helper module: what they share is
# here, handed out as fixtures (most of them return the helper function itself).

DOCS = {
    "guide.md": (
        "# Installing the tool\n\n"
        "Run make run to install everything into a virtual environment. "
        "The manifest records a checksum for every file of the index.\n\n"
        "Updating is incremental: only changed passages are embedded again."
    ),
    "animals.txt": (
        "Cats are small carnivorous mammals that people keep as pets. "
        "Dogs were domesticated from wolves thousands of years ago."
    ),
    "notes/space.html": (
        "<html><head><title>The planets</title><style>p {color: red}</style></head>"
        "<body><h1>Planets</h1><p>Jupiter is the largest planet in the solar system.</p>"
        "<script>var hidden = 'should not be indexed';</script>"
        "<p>Mars is called the red planet because of iron oxide dust.</p></body></html>"
    ),
}

JSONL_ROWS = [
    {
        "id": "v1",
        "title": "Volcanoes",
        "text": "A volcano erupts when magma rises through the crust.",
        "metadata": {"topic": "geology"},
    },
    {
        "id": "r1",
        "title": "Rivers",
        "text": "The Nile is one of the longest rivers on Earth.",
        "metadata": {"topic": "geography"},
    },
]

PDF_TEXT = "Glaciers are slow rivers of ice that carve valleys."


def _make_pdf(text: str) -> bytes:
    """A valid one-page PDF whose page shows ``text`` (Helvetica, no compression)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>"
        ),
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _write_corpus(root: Path) -> Path:
    """The standard fixture corpus: .md, .txt, .html, .jsonl and .pdf."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / "records.jsonl").write_text("\n".join(json.dumps(r) for r in JSONL_ROWS) + "\n", encoding="utf-8")
    (root / "paper.pdf").write_bytes(_make_pdf(PDF_TEXT))
    return root


def _one_line_error(result, *words):
    """A CLI failure is exit status 1 and one ``Error: ...`` line holding every one of ``words``."""
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0]


def _bad_reader(tmp_path: Path, kind: str) -> Path:
    """A model folder that must be refused: ``empty``, ``noweights``, ``pickle`` or ``remote`` (code)."""
    d = tmp_path / kind
    d.mkdir()
    if kind == "empty":
        return d
    (d / "config.json").write_text(
        json.dumps(
            {"model_type": "bert", "auto_map": {"AutoModel": "x.X"}} if kind == "remote" else {"model_type": "bert"}
        )
    )
    if kind == "pickle":
        (d / "pytorch_model.bin").write_bytes(b"pickle bytes that must never be loaded")
    if kind == "remote":
        (d / "model.safetensors").write_bytes(b"")
    return d


@pytest.fixture(scope="session")
def write_corpus():
    """``write_corpus(root) -> root``: writes the standard fixture corpus (.md, .txt, .html, .jsonl, .pdf)."""
    return _write_corpus


@pytest.fixture(scope="session")
def make_pdf():
    """``make_pdf(text) -> bytes``: a valid one-page PDF showing ``text``."""
    return _make_pdf


@pytest.fixture(scope="session")
def pdf_text() -> str:
    """The text on the page of the corpus's ``paper.pdf``."""
    return PDF_TEXT


@pytest.fixture(scope="session")
def one_line_error():
    """``one_line_error(result, *words)``: asserts a CLI result failed with one ``Error:`` line naming ``words``."""
    return _one_line_error


@pytest.fixture(scope="session")
def bad_reader():
    """``bad_reader(tmp_path, kind) -> folder``: a model folder of a ``kind`` that must be refused."""
    return _bad_reader


# ------------------------------------------------------------------ hooks and shared models
def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    return _write_corpus(tmp_path_factory.mktemp("corpus") / "docs")


@pytest.fixture(scope="session")
def built_index(tmp_path_factory, corpus_dir):
    """An index of the fixture corpus with the bundled encoder (read-only in tests)."""
    from rag_qa import Index

    directory = tmp_path_factory.mktemp("idx") / "index"
    return Index.build([corpus_dir], directory, show_progress=False)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    """A small randomly initialised sentence-transformers model (another encoder)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel

    from rag_qa.models import default_encoder_path

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny") / "encoder"
    base = default_encoder_path()
    word = Transformer(str(base))
    config = BertConfig(
        vocab_size=word.model.config.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    word.model = BertModel(config)
    pooling = Pooling(32, pooling_mode="mean")
    SentenceTransformer(modules=[word, pooling], device="cpu").save(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_qa_base(tmp_path_factory) -> Path:
    """A small randomly initialised BERT question-answering model with a real tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    from rag_qa.models import default_encoder_path

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tinyqa") / "base"
    tokenizer = AutoTokenizer.from_pretrained(str(default_encoder_path()), local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
    )
    BertForQuestionAnswering(config).save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


@pytest.fixture()
def unreadable_as_root(monkeypatch):
    """Files chmod-ed to 000 refuse to be read, as they do for users, even
    when the tests run as root (who may read anything)."""
    real = Path.read_bytes

    def read_bytes(self):
        if not (self.stat().st_mode & 0o444):
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)


@pytest.fixture(autouse=True)
def _ragqa_logs_reach_caplog():
    """The CLI sends ragqa's logs to its own stderr handler, not the root logger;
    after each test they propagate again, so ``caplog`` sees them in any test order."""
    yield
    logger = logging.getLogger("rag_qa")
    logger.propagate = True
    logger.handlers[:] = []
    logger.setLevel(logging.NOTSET)
