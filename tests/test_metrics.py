import math

import pytest

from rag_qa.evaluation.metrics import exact_match, f1, normalize_answer, squad_scores
from rag_qa.evaluation.retrieval_metrics import dedupe, hit_at_k, mrr_at_k, ndcg_at_k, recall_at_k


def test_squad_normalisation_and_scores():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert exact_match("the Eiffel tower", "Eiffel Tower.") == 1.0
    # prediction "eiffel tower in paris" vs truth "eiffel tower": p = 2/4, r = 2/2
    assert f1("Eiffel Tower in Paris", "the Eiffel Tower") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert f1("Paris", "Eiffel Tower") == 0.0
    scores = squad_scores({"a": "Paris", "b": "blue"}, {"a": ["paris", "Paris, France"], "b": ["red"], "c": ["x"]})
    assert scores == {"exact_match": pytest.approx(100 / 3), "f1": pytest.approx(100 / 3), "count": 3}


def test_ranking_metrics_match_hand_computed_values():
    ranked = ["d3", "d1", "d7", "d2"]
    relevant = {"d1", "d2"}
    assert recall_at_k(ranked, relevant, 1) == 0.0
    assert recall_at_k(ranked, relevant, 2) == 0.5
    assert recall_at_k(ranked, relevant, 4) == 1.0
    assert hit_at_k(ranked, relevant, 2) == 1.0
    assert mrr_at_k(ranked, relevant, 10) == 0.5
    assert mrr_at_k(ranked, {"d9"}, 10) == 0.0
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(ranked, relevant, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["d1", "d2"], relevant, 10) == pytest.approx(1.0)
    assert dedupe(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]
