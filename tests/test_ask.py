import json

import pytest
from click.testing import CliRunner

from rag_qa.cli import cli
from rag_qa.models import default_encoder_path


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


def ask(runner, index, reader, *extra):
    return runner.invoke(
        cli, ["ask", "Which planet is the largest?", "--index-dir", str(index), "--reader", str(reader), *extra]
    )


def test_ask_prints_answer_source_and_context(runner, built_index, tiny_qa_base):
    result = ask(runner, built_index.directory, tiny_qa_base, "-k", "3", "--answers", "2", "--show-context")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "confidence" in lines[0]
    assert "(characters " in lines[1]
    assert "[" in lines[2] and "]" in lines[2]  # the answer marked in its sentence
    assert "Passages read:" in result.output


def test_ask_json_offsets_point_into_the_source(runner, built_index, tiny_qa_base, corpus_dir):
    result = ask(runner, built_index.directory, tiny_qa_base, "--json", "--answers", "3")
    data = json.loads(result.output)
    assert data["question"] == "Which planet is the largest?"
    assert 1 <= len(data["answers"]) <= 3
    scores = [a["score"] for a in data["answers"]]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    for a in data["answers"]:
        passage = next(p for p in built_index.passages if p.passage_id == a["passage_id"])
        assert passage.start <= a["start"] < a["end"] <= passage.end
        span = passage.text[a["start"] - passage.start : a["end"] - passage.start]
        assert " ".join(span.split()) == " ".join(a["text"].split())


def test_no_answer_threshold_says_so_plainly(runner, built_index, tiny_qa_base):
    result = ask(runner, built_index.directory, tiny_qa_base, "--no-answer-threshold", "1000")
    assert result.exit_code == 0
    assert result.output.startswith("No answer found in the indexed documents")


def test_ask_bad_inputs(runner, built_index, tiny_qa_base, tmp_path, one_line_error):
    one_line_error(
        runner.invoke(cli, ["ask", " ", "--index-dir", str(built_index.directory), "--reader", str(tiny_qa_base)]),
        "query is empty",
    )
    one_line_error(
        runner.invoke(
            cli, ["ask", "x" * 100_000, "--index-dir", str(built_index.directory), "--reader", str(tiny_qa_base)]
        ),
        "characters",
    )
    one_line_error(
        runner.invoke(cli, ["ask", "q", "--index-dir", str(tmp_path / "none"), "--reader", str(tiny_qa_base)]),
        "no index",
    )


@pytest.mark.parametrize(
    "kind, words",
    [
        ("empty", ["no config.json"]),
        ("noweights", ["no safetensors weights"]),
        ("pickle", ["no safetensors weights", "pytorch_model.bin"]),
        ("remote", ["remote code"]),
    ],
)
def test_bad_reader_directories(runner, built_index, tmp_path, kind, words, bad_reader, one_line_error):
    one_line_error(ask(runner, built_index.directory, bad_reader(tmp_path, kind)), *words)


def test_an_encoder_is_not_a_reader(runner, built_index, one_line_error):
    one_line_error(ask(runner, built_index.directory, default_encoder_path()), "not a question-answering model")
