from pathlib import Path

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from rag_qa.config import BM25Config
from rag_qa.retrieval.bm25 import BM25Retriever, top_k
from rag_qa.retrieval.tokenize import tokenize

CORPUS = [
    "The cat sat on the mat with another cat.",
    "Dogs and cats are common pets in many homes.",
    "A mat is a flat piece of fabric on the floor.",
    "Solar panels turn sunlight into electricity.",
    "The electricity grid carries power to homes and factories.",
    "Wolves are the wild ancestors of dogs.",
    "Sunlight is strongest at noon in summer.",
    "Pets need food, water and a warm place to sleep.",
    "Factories use power, water and raw materials.",
    "The the the common words appear everywhere in text.",
]
QUERIES = [
    "cat on a mat",
    "cat cat pets",
    "power for factories",
    "sunlight electricity",
    "wild dogs wolves",
    "water",
    "the",
    "unknownword",
]


@pytest.mark.parametrize("stopwords", ["en", "none"])
def test_scores_equal_rank_bm25(stopwords):
    config = BM25Config(stopwords=stopwords)
    tokens = [tokenize(t, stopwords) for t in CORPUS]
    reference = BM25Okapi(tokens)
    ours = BM25Retriever.from_tokens(tokens, config)
    for query in QUERIES:
        expected = reference.get_scores(tokenize(query, stopwords))
        got = ours.get_scores(query)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        ranked_ref = [i for i in np.argsort(-expected, kind="stable") if expected[i] > 0]
        rows, _ = ours.search(query, k=len(CORPUS))
        assert rows.tolist() == ranked_ref


def test_negative_idf_is_floored_like_rank_bm25():
    # "common" is in most documents, so its raw idf is negative.
    corpus = [["common", "a"], ["common", "b"], ["common", "c"], ["d"]]
    reference = BM25Okapi(corpus)
    ours = BM25Retriever.from_tokens(corpus, BM25Config(stopwords="none"))
    np.testing.assert_allclose(ours.get_scores("common"), reference.get_scores(["common"]), rtol=1e-6)
    assert ours.get_scores("common")[0] > 0


def mapped_files() -> set[str]:
    """The files this process has memory-mapped, as the OS reports them (Linux)."""
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        pytest.skip("needs /proc/self/maps to see which files are memory-mapped")
    fields = (line.split(maxsplit=5) for line in maps.read_text().splitlines())
    return {f[5].strip() for f in fields if len(f) == 6}


def test_save_and_memory_mapped_load_give_the_same_scores(tmp_path):
    built = BM25Retriever.build(CORPUS)
    built.save(tmp_path / "bm25")
    loaded = BM25Retriever.load(tmp_path / "bm25", BM25Config(), mmap=True)
    # The term weights are mapped from the saved file, not read into memory.
    assert str((tmp_path / "bm25" / "data.csc.index.npy").resolve()) in mapped_files()
    for query in QUERIES:
        np.testing.assert_array_equal(loaded.get_scores(query), built.get_scores(query))


def test_mask_filters_results():
    bm25 = BM25Retriever.build(CORPUS)
    mask = np.zeros(len(CORPUS), dtype=bool)
    mask[[1, 7]] = True
    rows, _ = bm25.search("pets cat", k=5, mask=mask)
    assert set(rows.tolist()) <= {1, 7} and len(rows) == 2


def test_top_k_orders_by_score_then_row():
    rows, values = top_k(np.array([0.5, 2.0, 0.5, 1.0], dtype=np.float32), 3)
    assert rows.tolist() == [1, 3, 0]
    assert values.tolist() == [2.0, 1.0, 0.5]
