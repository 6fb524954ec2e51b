"""Answers are whole spans: a fragment never outranks the span it is part of,
a span never starts or ends inside a word, and an answer's text is shown with
its white space collapsed while its offsets point at the source as it is."""

import numpy as np
import pytest

from rag_qa.errors import InputError
from rag_qa.reading.reader import Reader
from rag_qa.reading.scoring import rank_answers
from rag_qa.types import Passage

MIDI = "Serve MIDI files as audio/x-midi."  # audio/x-midi: 20-32, x-midi: 26-32


def ranked_texts(cands, positions=True, null=0.0):
    """Answer texts, best first, for candidates given as (text, logit, passage, start, end)."""
    texts = [c[0] for c in cands]
    ranked = rank_answers(
        texts,
        [c[1] for c in cands],
        np.zeros(len(cands)),
        null,
        positions=[c[2:] for c in cands] if positions else None,
    )
    return [(texts[i], p) for p, i in ranked.answers], ranked


def test_a_fragment_proposed_by_many_windows_does_not_outrank_its_span():
    # Two passages hold MIDI; each proposes the whole type once and its tail in three windows.
    cands = []
    for passage, (whole, tail) in enumerate([(8.0, 7.5), (7.6, 7.2)]):
        cands.append(("audio/x-midi", whole, passage, 20, 32))
        cands += [("x-midi", tail, passage, 26, 32)] * 3
    merged_by_text, _ = ranked_texts(cands, positions=False)
    assert merged_by_text[0][0] == "x-midi"  # what summing by text alone shows
    answers, ranked = ranked_texts(cands)
    assert [t for t, _ in answers] == ["audio/x-midi"]
    assert answers[0][1] == pytest.approx(sum(p for t, p in merged_by_text if t == "audio/x-midi"))
    assert ranked.margin == 8.0  # the best span's logit over no-answer: unchanged


def test_a_fragment_standing_alone_or_scoring_best_is_an_answer():
    cands = [
        ("audio/x-midi", 8.0, 0, 20, 32),
        ("x-midi", 7.0, 0, 26, 32),  # part of the better span: not an answer
        ("x-midi", 7.9, 1, 4, 10),  # alone in passage 1 ("Use x-midi."): an answer
    ]
    answers, _ = ranked_texts(cands)
    assert [t for t, _ in answers] == ["audio/x-midi", "x-midi"]
    probs = np.exp([8.0, 7.0, 7.9, 0.0]) / np.exp([8.0, 7.0, 7.9, 0.0]).sum()
    assert answers[1][1] == pytest.approx(probs[2])  # only the lone one counts
    # "7159" scoring better than "RFC 7159" around it: both are answers, neither takes from the other
    answers, _ = ranked_texts([("7159", 10.0, 0, 4, 8), ("RFC 7159", 9.7, 0, 0, 8)])
    assert [t for t, _ in answers] == ["7159", "RFC 7159"]
    probs = np.exp([10.0, 9.7, 0.0]) / np.exp([10.0, 9.7, 0.0]).sum()
    assert [p for _, p in answers] == pytest.approx(list(probs[:2]))


def test_a_long_span_does_not_gather_the_parts_around_the_best_span():
    # "the war in 1998 and after": the best span is 1998; the long span holds it and
    # many weaker parts, which must not lift it above 1998.
    outer = "the war in 1998 and after"
    cands = [("1998", 9.0, 0, 11, 15), (outer, 8.5, 0, 0, 25)]
    cands += [(outer[: 10 + i], 7.5, 0, 0, 10 + i) for i in range(6)]  # all inside the long span
    answers, _ = ranked_texts(cands)
    assert answers[0][0] == "1998"
    own = np.exp(8.5) / (np.exp(9.0) + np.exp(8.5) + 6 * np.exp(7.5) + np.exp(0.0))
    assert dict(answers)[outer] == pytest.approx(own)  # it gained nothing from the spans inside it
    kept = {t for t, _ in answers} - {"1998", outer}
    assert kept == {"the war in", "the war in 1998"}  # whole words inside it are answers; word cuts are not


def test_positions_must_match_the_candidates():
    with pytest.raises(InputError, match="2 positions for 1 candidates"):
        rank_answers(["a"], [1.0], [0.0], 0.0, positions=[(0, 0, 1), (0, 1, 2)])


# ------------------------------------------------------------------ with the shipped reader
@pytest.fixture(scope="module")
def reader():
    return Reader(no_answer_threshold=float("-inf"))


def test_the_shipped_reader_answers_with_whole_words(reader):
    text = "Set the variable DPKG_FRONTEND_LOCKED to stop dpkg from taking the frontend lock."
    answers = reader.read("Which variable stops dpkg from taking the frontend lock?", [text], top_k=3)
    assert answers[0].text == "DPKG_FRONTEND_LOCKED"
    words = set(text.replace(".", " ").split())
    for a in answers:  # every answer starts and ends on a word's edge
        assert a.text.split()[0] in words and a.text.split()[-1].rstrip(".") in words


def test_answer_text_collapses_white_space_and_offsets_point_at_the_source(reader):
    document = "# Processes\n\nTo get the resource usage of a child process, use the wait3\n   system call."
    start = document.index("To get")
    passage = Passage("p0", "d0", "proc.md", document[start:], start, len(document))
    answers = reader.read("Which system call returns the resource usage of a child process?", [passage], top_k=5)
    assert answers
    assert any("\n" in document[a.start : a.end] for a in answers)  # a span across the line break
    for a in answers:
        assert a.text == " ".join(document[a.start : a.end].split())
        assert "\n" not in a.text and "  " not in a.text
    assert "wait3 system call" in [a.text for a in answers]
