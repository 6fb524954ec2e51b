import numpy as np
import pytest

from rag_qa.reading.spans import decode_window, softmax, word_bounds

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


# "Remove DPKG_FRONTEND_LOCKED first." cut as a WordPiece tokenizer cuts it:
# Remove | DP ##KG _ FR ##ONTEND _ LOCK ##ED | first | .
WORD_CONTEXT = "Remove DPKG_FRONTEND_LOCKED first."
WORD_OFFSETS = [None, None, (0, 6), (7, 9), (9, 11), (11, 12), (12, 14), (14, 20), (20, 21), (21, 25), (25, 27)]
WORD_OFFSETS += [(28, 33), (33, 34), None]


def test_a_span_cut_inside_a_word_is_widened_to_the_whole_word():
    start, end = logits(14, t6=6.0), logits(14, t10=5.0)  # FR ... ##ED: "FRONTEND_LOCKED"
    cut, _ = decode_window(start, end, WORD_OFFSETS)
    assert WORD_CONTEXT[cut[0].start : cut[0].end] == "FRONTEND_LOCKED"  # the pieces as the model chose them
    spans, _ = decode_window(start, end, WORD_OFFSETS, context=WORD_CONTEXT)
    assert WORD_CONTEXT[spans[0].start : spans[0].end] == "DPKG_FRONTEND_LOCKED"
    assert spans[0].score == cut[0].score
    spans, _ = decode_window(logits(14, t4=6.0), logits(14, t4=5.0), WORD_OFFSETS, context=WORD_CONTEXT)
    assert WORD_CONTEXT[spans[0].start : spans[0].end] == "DPKG_FRONTEND_LOCKED"  # "KG" alone


def test_widening_stops_at_spaces_and_punctuation():
    spans, _ = decode_window(logits(14, t11=6.0), logits(14, t11=5.0), WORD_OFFSETS, context=WORD_CONTEXT)
    assert WORD_CONTEXT[spans[0].start : spans[0].end] == "first"  # not "first."
    spans, _ = decode_window(logits(14, t2=6.0), logits(14, t2=5.0), WORD_OFFSETS, context=WORD_CONTEXT)
    assert WORD_CONTEXT[spans[0].start : spans[0].end] == "Remove"


def test_spans_that_widen_to_the_same_words_are_one_span():
    # FR..##ED (11.0), DP..##ED (10.0) and LOCK..##ED (9.0) all become DPKG_FRONTEND_LOCKED
    start, end = logits(14, t6=6.0, t3=5.0, t9=4.0), logits(14, t10=5.0)
    spans, _ = decode_window(start, end, WORD_OFFSETS, context=WORD_CONTEXT)
    whole = [s for s in spans if (s.start, s.end) == (7, 27)]
    assert len(whole) == 1 and whole[0].score == 11.0 and spans[0] == whole[0]
    assert len({(s.start, s.end) for s in spans}) == len(spans)


@pytest.mark.parametrize(
    "text, part, word",
    [
        ("set DPKG_FRONTEND_LOCKED.", "LOCKED", "DPKG_FRONTEND_LOCKED"),
        ("in the 1990s, when", "1990", "1990s"),
        ("about 3,086,000 people", "086", "3,086,000"),
        ("rose by 33.7 points", "7", "33.7"),
        ("served as audio/x-midi here", "x-midi", "x-midi"),  # "/" and "-" separate words
        ("a 16-bit bus", "16", "16"),
        ("Beyoncé's album", "Beyon", "Beyoncé"),  # the "'s" stays out
        ("(see RFC 7159)", "715", "7159"),
        ("東京都に住む", "京", "京"),  # a CJK ideograph is a word by itself
    ],
)
def test_word_bounds(text, part, word):
    start = text.index(part)
    s, e = word_bounds(text, start, start + len(part))
    assert text[s:e] == word


def test_a_span_never_crosses_a_blank_line():
    # two table rows as extracted text: "Status: 4; Meaning: unsupported." / "Status: 5; ..."
    context = "status: 4.\n\nstatus: 5."
    offsets = [None, (0, 6), (6, 7), (8, 9), (9, 10), (12, 18), (18, 19), (20, 21), (21, 22), None]
    start, end = logits(10, t3=6.0), logits(10, t7=6.0, t3=5.0)  # best raw span: "4.\n\nstatus: 5"
    raw, _ = decode_window(start, end, offsets)
    assert "\n\n" in context[raw[0].start : raw[0].end]
    spans, _ = decode_window(start, end, offsets, context=context)
    assert spans and all("\n\n" not in context[s.start : s.end] for s in spans)
    assert context[spans[0].start : spans[0].end] == "4"
