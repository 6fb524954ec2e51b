"""A model's identity covers every file that changes what it computes, so an
index refuses an encoder whose pooling or tokenizer was changed behind it."""

from __future__ import annotations

import json
import shutil

import pytest

from rag_qa.errors import IndexMismatchError
from rag_qa.models import weights_sha256


def test_identity_covers_configs_but_not_model_cards(tiny_encoder, tmp_path):
    copy = tmp_path / "encoder"
    shutil.copytree(tiny_encoder, copy)
    before = weights_sha256(copy)
    (copy / "README.md").write_text("# notes\nanything\n")
    (copy / "eval_results.json").write_text("{}")
    assert weights_sha256(copy) == before
    pooling = next(copy.glob("*_Pooling/config.json"))
    config = json.loads(pooling.read_text())
    config["pooling_mode_mean_tokens"], config["pooling_mode_cls_token"] = False, True
    pooling.write_text(json.dumps(config))
    changed = weights_sha256(copy)
    assert changed != before
    with (copy / "vocab.txt").open("a") as vocab:  # another tokenizer: the same ids mean other words
        vocab.write("newword\n")
    assert weights_sha256(copy) != changed


def test_an_index_refuses_its_encoder_once_its_pooling_changed(tiny_encoder, corpus_dir, tmp_path):
    from rag_qa import Index

    encoder = tmp_path / "encoder"
    shutil.copytree(tiny_encoder, encoder)
    index_dir = tmp_path / "index"
    Index.build([corpus_dir], index_dir, encoder=encoder, show_progress=False)
    assert Index.load(index_dir).search("what is the manifest", k=1, mode="dense")
    pooling = next(encoder.glob("*_Pooling/config.json"))
    config = json.loads(pooling.read_text())
    config["pooling_mode_mean_tokens"], config["pooling_mode_cls_token"] = False, True
    pooling.write_text(json.dumps(config))
    with pytest.raises(IndexMismatchError, match="or its weights, configs or tokenizer changed"):
        Index.load(index_dir).search("what is the manifest", k=1, mode="dense")
