import pytest

from rag_qa.retrieval.hybrid import min_max, rank_fused, reciprocal_rank_fusion, weighted_fusion


def test_rrf_matches_hand_computed_scores():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60)
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[2] == pytest.approx(1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert [d for d, _ in rank_fused(fused, 3)] == [1, 3, 2]


def test_rrf_weights_scale_each_list():
    fused = reciprocal_rank_fusion([[7], [8]], k=10, weights=[2.0, 1.0])
    assert fused == {7: pytest.approx(2 / 11), 8: pytest.approx(1 / 11)}


def test_min_max_scales_to_unit_range_and_handles_ties():
    assert min_max({1: 2.0, 2: 4.0, 3: 3.0}) == {1: 0.0, 2: 1.0, 3: 0.5}
    assert min_max({1: 5.0, 2: 5.0}) == {1: 1.0, 2: 1.0}
    assert min_max({}) == {}


def test_weighted_fusion_matches_hand_computed_scores():
    bm25 = {1: 10.0, 2: 5.0, 3: 0.0}  # -> 1.0, 0.5, 0.0
    dense = {2: 0.9, 4: 0.5}  # -> 1.0, 0.0
    fused = weighted_fusion([bm25, dense], [0.3, 0.7])
    assert fused == {1: pytest.approx(0.3), 2: pytest.approx(0.15 + 0.7), 3: pytest.approx(0.0), 4: pytest.approx(0.0)}
    assert rank_fused(fused, 2)[0][0] == 2


def test_rank_fused_breaks_ties_by_smaller_id():
    assert rank_fused({5: 1.0, 2: 1.0, 9: 0.5}, 2) == [(2, 1.0), (5, 1.0)]
