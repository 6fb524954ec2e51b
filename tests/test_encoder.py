"""The encoder gives sentence-transformers' vectors, with or without it."""

import subprocess
import sys

import numpy as np
import pytest

from rag_qa.models import default_encoder_path
from rag_qa.retrieval.encoder import Encoder

TEXTS = [
    "What is the capital of France?",
    "Paris is the capital and most populous city of France. " * 40,
    "short",
    "Ünïcödé text, with accents.",
]


@pytest.mark.parametrize("which", ["default", "tiny"])
def test_plain_path_matches_sentence_transformers(which, tiny_encoder):
    from sentence_transformers import SentenceTransformer

    path = default_encoder_path() if which == "default" else tiny_encoder
    encoder = Encoder(path, device="cpu", precision="float32", batch_size=3)
    ours = encoder.encode(TEXTS)
    assert type(encoder.model).__name__ == "_PooledTransformer"
    theirs = SentenceTransformer(str(path), device="cpu", local_files_only=True).encode(
        TEXTS, normalize_embeddings=True
    )
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert (
        encoder.info().max_seq_length
        == SentenceTransformer(str(path), device="cpu", local_files_only=True).max_seq_length
    )


def test_other_module_stacks_load_with_sentence_transformers(tmp_path, tiny_encoder):
    import json
    import shutil

    folder = tmp_path / "enc"
    shutil.copytree(tiny_encoder, folder)
    pooling = folder / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    if "pooling_mode" in config:
        config["pooling_mode"] = "max"
    else:
        config.update({"pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": True})
    pooling.write_text(json.dumps(config))
    encoder = Encoder(folder, device="cpu", precision="float32")
    vectors = encoder.encode(TEXTS)
    assert type(encoder.model).__name__ == "SentenceTransformer"
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_searching_does_not_import_sentence_transformers(built_index):
    code = (
        "import sys; from rag_qa import Index; "
        f"hits = Index.load({str(built_index.directory)!r}).search('largest planet', k=2, mode='hybrid'); "
        "assert hits; print('sentence_transformers' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
