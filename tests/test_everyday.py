"""Python API behaviour a first week of use runs into."""

import pytest

from rag_qa import RagQA, Reader


def test_ask_takes_the_no_answer_threshold_like_the_cli(built_index, tiny_qa_base):
    qa = RagQA(built_index, Reader(tiny_qa_base))
    assert qa.ask("Which planet is the largest?", no_answer_threshold=1e9) == []
    answers = qa.ask("Which planet is the largest?", no_answer_threshold=float("-inf"))
    assert answers and answers[0].text


def test_reader_reads_plain_strings_and_names_what_it_cannot(tiny_qa_base):
    from rag_qa import RagQAError

    reader = Reader(tiny_qa_base, no_answer_threshold=float("-inf"))
    (answer,) = reader.read("Who likes red?", ["Anna likes red."], top_k=1)
    assert answer.text in "Anna likes red." and answer.passage.text == "Anna likes red."
    with pytest.raises(RagQAError, match="pass strings or rag_qa.Passage"):
        reader.read("Who likes red?", [42])
