import re

from hypothesis import given, settings
from hypothesis import strategies as st

from rag_qa.config import ChunkingConfig
from rag_qa.ingest.chunking import chunk_document
from rag_qa.text import split_sentences
from rag_qa.types import Document


def doc(text: str) -> Document:
    return Document(doc_id="d", source="d.txt", text=text)


def test_passages_are_exact_slices_that_end_on_sentences():
    text = "First sentence here. Second one is here! Third? " + "Fourth sentence that is long. " * 5
    passages = chunk_document(doc(text), ChunkingConfig(size=10, overlap=4))
    assert len(passages) > 1
    for p in passages:
        assert text[p.start : p.end] == p.text
        assert p.text.endswith((".", "!", "?"))


def test_consecutive_passages_overlap_but_always_add_new_text():
    text = " ".join(f"Sentence number {i} is here." for i in range(30))
    passages = chunk_document(doc(text), ChunkingConfig(size=20, overlap=8))
    for a, b in zip(passages, passages[1:]):
        assert b.start > a.start and b.end > a.end
        assert b.start < a.end  # shares words with the previous passage


def test_long_sentence_is_cut_at_words():
    text = " ".join(["word"] * 50)
    passages = chunk_document(doc(text), ChunkingConfig(size=20, overlap=0))
    assert [len(p.text.split()) for p in passages] == [20, 20, 10]


def test_passage_ids_are_stable_and_distinct():
    text = "Alpha beta. Gamma delta. " * 20
    first = chunk_document(doc(text), ChunkingConfig(size=8, overlap=2))
    second = chunk_document(doc(text), ChunkingConfig(size=8, overlap=2))
    assert [p.passage_id for p in first] == [p.passage_id for p in second]
    assert len({p.passage_id for p in first}) == len(first)


def test_blank_line_ends_a_sentence():
    assert split_sentences("A heading\n\nBody text without a stop") == [(0, 9), (11, 35)]


def test_whitespace_only_document_has_no_passages():
    assert chunk_document(doc("  \n\t "), ChunkingConfig()) == []


words = st.text(alphabet=st.sampled_from("abcé.!? \n\t"), min_size=0, max_size=400)


@settings(max_examples=200, deadline=None)
@given(text=words, size=st.integers(8, 40), overlap=st.integers(0, 7))
def test_offsets_map_back_and_no_word_is_lost(text, size, overlap):
    passages = chunk_document(doc(text), ChunkingConfig(size=size, overlap=overlap))
    covered = set()
    for p in passages:
        assert text[p.start : p.end] == p.text
        assert len(p.text.split()) <= size
        covered.update(range(p.start, p.end))
    for m in re.finditer(r"\S+", text):
        assert set(range(*m.span())) <= covered
    starts = [p.start for p in passages]
    assert starts == sorted(set(starts))  # no passage duplicated


def test_a_passage_across_a_page_break_knows_the_page_of_each_offset():
    from rag_qa.types import Answer

    first, second = "The first page ends here.", "The answer sits on page two."
    text = f"{first}\n\n{second}"
    doc = Document(doc_id="m", source="manual.pdf", text=text, metadata={"page_starts": [0, len(first) + 2]})
    (passage,) = chunk_document(doc)
    assert passage.metadata["page"] == 1 and passage.line_at(0) is None  # a PDF has pages, not file lines
    at = text.index("answer")
    assert passage.page_at(0) == 1 and passage.page_at(at) == 2
    answer = Answer("answer", 0.9, at, at + 6, "manual.pdf", passage, 10.0)
    assert answer.page == 2
