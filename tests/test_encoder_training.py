import json

import pytest

from rag_qa.training.encoder import EncoderTrainConfig, train_encoder
from rag_qa.training.pairs import from_jsonl, mine_hard_negatives

TOPICS = [
    "volcano",
    "glacier",
    "river",
    "desert",
    "forest",
    "ocean",
    "island",
    "canyon",
    "meadow",
    "swamp",
    "tundra",
    "reef",
    "delta",
    "plateau",
    "lagoon",
    "savanna",
    "fjord",
    "geyser",
    "dune",
    "marsh",
]


def write_pairs(path, n_variants=4):
    rows = []
    for t in TOPICS:
        for v in range(n_variants):
            rows.append(
                {"query": f"tell me about the {t} number {v}", "positive": f"A {t} is a landform; note {v} on the {t}."}
            )
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_jsonl_pairs_and_bm25_hard_negatives(tmp_path):
    pairs = from_jsonl(write_pairs(tmp_path / "p.jsonl"), eval_fraction=0.25)
    assert len(pairs.train) == 60 and len(pairs.eval_queries) == 20
    mine_hard_negatives(pairs, per_query=1)
    for _query, pos, negs in pairs.train:
        assert len(negs) == 1 and negs[0] != pos


@pytest.mark.slow
def test_train_encoder_smoke(tmp_path, tiny_encoder):
    config = EncoderTrainConfig(
        base=str(tiny_encoder),
        epochs=3,
        batch_size=16,
        learning_rate=5e-3,
        eval_steps=8,
        precision="fp32",
        warmup_ratio=0.0,
        eval_fraction=0.25,
    )
    out = tmp_path / "enc"
    results = train_encoder(write_pairs(tmp_path / "p.jsonl"), out, config, show_progress=False)
    key = "heldout_cosine_ndcg@10"
    assert results["after"][key] > results["before"][key]
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(out), device="cpu")  # a plain sentence-transformers directory
    assert model.encode(["a query"]).shape == (1, 32)
    assert not (out / "training_args.bin").exists()
    assert json.loads((out / "eval_results.json").read_text())["steps"] == results["steps"]


def test_export_halves_the_weights_and_keeps_the_vectors(tmp_path, tiny_encoder):
    import numpy as np

    from rag_qa.retrieval.encoder import Encoder
    from rag_qa.training.encoder import export_encoder

    out = export_encoder(tiny_encoder, tmp_path / "fp16")
    assert (out / "model.safetensors").stat().st_size < 0.6 * (tiny_encoder / "model.safetensors").stat().st_size
    texts = ["a question about planets", "Jupiter is the largest planet."]
    before = Encoder(tiny_encoder, device="cpu", precision="float32").encode(texts)
    after = Encoder(out, device="cpu", precision="float32").encode(texts)
    np.testing.assert_allclose(after, before, atol=5e-3)


def test_squad_pairs_hold_out_whole_articles_and_search_only_their_paragraphs(tmp_path):
    from rag_qa.data import is_held_out
    from rag_qa.training.pairs import from_squad

    titles = [f"Article_{i}" for i in range(60)]
    held = [t for t in titles if is_held_out(t)]
    assert held and len(held) < len(titles)
    data = {
        "version": "1.1",
        "data": [
            {
                "title": t,
                "paragraphs": [
                    {
                        "context": f"{t} paragraph {p} text.",
                        "qas": [
                            {
                                "id": f"{t}-{p}",
                                "question": f"What about {t} {p}?",
                                "answers": [{"text": "text", "answer_start": 0}],
                            }
                        ],
                    }
                    for p in range(2)
                ],
            }
            for t in titles
        ],
    }
    (tmp_path / "s.json").write_text(json.dumps(data))
    pairs = from_squad(tmp_path / "s.json")
    assert len(pairs.eval_queries) == 2 * len(held) and len(pairs.train) == 2 * (len(titles) - len(held))
    assert {pairs.corpus[d].split("\n")[0] for d in pairs.eval_corpus} == {t.replace("_", " ") for t in held}
    assert all(d in pairs.eval_corpus for rel in pairs.eval_qrels.values() for d in rel)
