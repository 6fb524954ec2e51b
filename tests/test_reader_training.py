import json
import math
import random

import pytest

from rag_qa.reading.reader import Reader
from rag_qa.training.reader import ReaderTrainConfig, train_reader
from rag_qa.types import Passage

COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white"]
NAMES = ["Anna", "Boris", "Chen", "Dara", "Emil", "Fatima", "Goran", "Hana"]


def make_squad(path, n, seed):
    """Questions whose answer is always the colour in 'X likes the colour C.'"""
    rng = random.Random(seed)
    paragraphs = []
    for i in range(n):
        name, color = rng.choice(NAMES), rng.choice(COLORS)
        filler = " ".join(rng.choice(["It", "rains", "often", "here", "and", "there", "today"]) for _ in range(rng.randint(3, 12)))
        context = f"{filler}. {name} likes the colour {color}. {filler}."
        paragraphs.append({"context": context, "qas": [{"id": f"q{i}", "question": f"Which colour does {name} like?", "answers": [{"text": color, "answer_start": context.index(f"colour {color}") + 7}]}]})
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": f"t{seed}", "paragraphs": paragraphs}]}))
    return path


@pytest.mark.slow
def test_train_reader_smoke(tmp_path, tiny_qa_base):
    train = make_squad(tmp_path / "train.json", 256, seed=1)
    dev = make_squad(tmp_path / "dev.json", 32, seed=2)
    config = ReaderTrainConfig(base=str(tiny_qa_base), max_seq_length=64, doc_stride=32, learning_rate=2e-3, batch_size=16, epochs=3, eval_steps=16, logging_steps=4, precision="fp32", warmup_ratio=0.0)
    out = tmp_path / "reader"
    results = train_reader(train, out, config, eval_path=dev, show_progress=False)

    losses = [h["loss"] for h in results["log_history"] if "loss" in h]
    assert losses[-1] < losses[0] * 0.7
    assert results["f1"] > 50
    saved = json.loads((out / "eval_results.json").read_text())
    assert saved["exact_match"] == results["exact_match"]
    assert "exact match" in (out / "README.md").read_text()
    assert not (out / "training_args.bin").exists()  # no pickle in the model directory

    from transformers import AutoModelForQuestionAnswering

    AutoModelForQuestionAnswering.from_pretrained(str(out))  # plain transformers loads it
    reader = Reader(out, max_seq_length=64, doc_stride=32, precision="float32")
    passage = Passage("p", "d", "d.txt", "It rains here. Boris likes the colour purple. Today.", 0, 52)
    (answer,) = reader.read("Which colour does Boris like?", [passage], top_k=1)
    assert answer.text == "purple"
    assert passage.text[answer.start : answer.end] == "purple"


def test_reader_train_config_rejects_bad_stride():
    from rag_qa.errors import InputError

    with pytest.raises(InputError, match="doc_stride"):
        ReaderTrainConfig(max_seq_length=64, doc_stride=64).validate()


def test_train_reader_continues_from_a_float16_reader(tmp_path, tiny_qa_base):
    """The shipped readers are float16; training further from one must work (float32 master weights)."""
    from rag_qa.training.reader import export_reader

    half = export_reader(tiny_qa_base, tmp_path / "half", dtype="float16")
    train = make_squad(tmp_path / "train.json", 32, seed=3)
    config = ReaderTrainConfig(base=str(half), max_seq_length=64, doc_stride=32, batch_size=16, max_steps=2, eval_steps=2, logging_steps=1, precision="bf16", eval_examples=8)
    results = train_reader(train, tmp_path / "reader", config, eval_path=train, show_progress=False)
    assert all(math.isfinite(h["loss"]) for h in results["log_history"] if "loss" in h)
