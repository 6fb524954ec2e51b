from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import tempfile

# ONNX exports of the models go to a cache of the test session's own.
os.environ["RAGQA_CACHE_DIR"] = tempfile.mkdtemp(prefix="ragqa-test-cache-")

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fixtures import write_corpus  # noqa: E402


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
    return write_corpus(tmp_path_factory.mktemp("corpus") / "docs")


@pytest.fixture(scope="session")
def built_index(tmp_path_factory, corpus_dir):
    """An index of the fixture corpus with the bundled encoder (read-only in tests)."""
    from rag_qa import Index

    directory = tmp_path_factory.mktemp("idx") / "index"
    return Index.build([corpus_dir], directory, show_progress=False)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    """A small randomly initialised sentence-transformers model (another encoder)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel

    from rag_qa.models import default_encoder_path

    import torch

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny") / "encoder"
    base = default_encoder_path()
    word = Transformer(str(base))
    config = BertConfig(vocab_size=word.model.config.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
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
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, max_position_embeddings=512)
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
