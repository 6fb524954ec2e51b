import numpy as np
import pytest

from rag_qa.reading.spans import decode_window, softmax

NEG = -10.0


def logits(n, **peaks):
    arr = np.full(n, NEG)
    for index, value in peaks.items():
        arr[int(index[1:])] = value
    return arr


# tokens: 0 [CLS], 1-2 question, 3 [SEP], 4-8 context, 9 [SEP]
OFFSETS = [None, None, None, None, (0, 3), (4, 9), (10, 13), (14, 19), (20, 25), None]


def test_best_span_maps_to_characters():
    spans, null = decode_window(logits(10, t5=5.0), logits(10, t6=4.0), OFFSETS)
    assert (spans[0].start, spans[0].end, spans[0].score) == (4, 13, 9.0)
    assert null == 2 * NEG


def test_spans_stay_inside_the_context():
    # The highest logits sit on question tokens; they must not be chosen.
    spans, _ = decode_window(logits(10, t1=9.0, t5=3.0), logits(10, t2=9.0, t5=3.0), OFFSETS)
    assert (spans[0].start, spans[0].end) == (4, 9)
    assert all(OFFSETS[4][0] <= s.start and s.end <= OFFSETS[8][1] for s in spans)


def test_end_before_start_and_too_long_are_refused():
    start, end = logits(10, t7=5.0, t4=0.5), logits(10, t5=5.0, t8=1.0)
    spans, _ = decode_window(start, end, OFFSETS, max_answer_tokens=30)
    assert (spans[0].start, spans[0].end) == (14, 25)  # start 7 with end 8 (6.0), not end 5 (10.0)
    spans, _ = decode_window(logits(10, t4=5.0), logits(10, t8=5.0, t4=0.0), OFFSETS, max_answer_tokens=2)
    assert (0, 25) not in {(s.start, s.end) for s in spans}  # five tokens: too long
    assert (spans[0].start, spans[0].end) == (0, 3)


def test_no_answer_score_is_the_cls_span():
    spans, null = decode_window(logits(10, t0=8.0, t5=1.0), logits(10, t0=7.0, t5=1.0), OFFSETS)
    assert null == 15.0 and spans[0].score == 2.0


def test_window_without_context_gives_no_spans():
    spans, null = decode_window(logits(4, t0=1.0), logits(4, t0=1.0), [None] * 4)
    assert spans == [] and null == 2.0


def test_answer_in_the_second_window_and_across_a_window_edge():
    """Two windows of one context, as the tokenizer makes them with a stride:
    window 0 covers characters 0-25, window 1 covers 14-40. The answer
    (20, 32) crosses window 0's edge; only window 1 holds it whole."""
    w0 = [None, None, (0, 3), (4, 9), (10, 13), (14, 19), (20, 25), None]
    w1 = [None, None, (14, 19), (20, 25), (26, 32), (33, 40), None, None]
    s0, n0 = decode_window(logits(8, t6=2.0, t0=3.0), logits(8, t6=1.0, t0=3.0), w0, window=0)
    s1, n1 = decode_window(logits(8, t3=6.0, t0=-1.0), logits(8, t4=6.0, t0=-1.0), w1, window=1)
    best = max(s0 + s1, key=lambda s: s.score)
    assert (best.start, best.end, best.window) == (20, 32, 1)
    assert min(n0, n1) == -2.0  # the window most sure of an answer sets the null score


def test_softmax_with_temperature():
    p = softmax([2.0, 0.0])
    assert p.sum() == pytest.approx(1.0) and p[0] == pytest.approx(1 / (1 + np.exp(-2)))
    flat = softmax([2.0, 0.0], temperature=100.0)
    assert flat[0] == pytest.approx(0.5, abs=0.01)
