"""Reader abstention scored the SQuAD v2.0 way, on answerless paragraphs of the question's article."""

import json

import pytest
from click.testing import CliRunner

from rag_qa.cli import cli
from rag_qa.data import QAExample
from rag_qa.evaluation.reader_eval import abstention_scores


def _ex(qid, answer="x", impossible=False):
    return QAExample(qid, "T", "ctx", "q?", () if impossible else (answer,), () if impossible else (0,), impossible)


def test_abstention_scores_follow_the_v2_metric():
    answerable = [_ex("a1", "red"), _ex("a2", "blue")]
    unanswerable = [_ex("n1", impossible=True), _ex("n2", impossible=True)]
    # a1 right and sure, a2 wrong and unsure, n1 abstains (low margin), n2 answers (high margin)
    predictions = {"a1": ("red", 5.0), "a2": ("green", 1.0), "n1": ("x", -2.0), "n2": ("y", 6.0)}
    scores = abstention_scores(answerable, unanswerable, predictions, threshold=3.0)
    at = scores["at_reader_threshold"]
    assert at["has_ans_exact_match"] == 50.0 and at["no_ans_accuracy"] == 50.0 and at["exact_match"] == 50.0
    assert at["answered_answerable"] == 50.0
    best = scores["at_best_threshold"]
    assert best["exact_match"] >= at["exact_match"]
    never = abstention_scores(answerable, unanswerable, predictions, threshold=float("inf"))["at_reader_threshold"]
    assert never["no_ans_accuracy"] == 100.0 and never["has_ans_exact_match"] == 0.0
    assert scores["always_abstain_exact_match"] == 50.0
    assert scores["at_2_points_has_ans_cost"]["has_ans_exact_match"] >= 50.0 - 2


@pytest.mark.slow
def test_eval_reader_reports_abstention_on_answerless_paragraphs(tmp_path, tiny_qa_base):
    paragraphs = [
        {
            "context": "Anna likes the colour red. It rains.",
            "qas": [
                {
                    "id": "q1",
                    "question": "Which colour does Anna like?",
                    "answers": [{"text": "red", "answer_start": 22}],
                }
            ],
        },
        {
            "context": "Boris keeps bees on the roof.",
            "qas": [
                {"id": "q2", "question": "What does Boris keep?", "answers": [{"text": "bees", "answer_start": 12}]}
            ],
        },
        {
            "context": "The river floods every spring.",
            "qas": [
                {
                    "id": "q3",
                    "question": "When does the river flood?",
                    "answers": [{"text": "every spring", "answer_start": 18}],
                }
            ],
        },
    ]
    data = tmp_path / "squad.json"
    data.write_text(json.dumps({"data": [{"title": "T", "paragraphs": paragraphs}]}))
    result = CliRunner().invoke(
        cli,
        [
            "eval-reader",
            "--data",
            str(data),
            "--reader",
            str(tiny_qa_base),
            "--answerless",
            "1",
            "--json",
            "--runtime",
            "torch",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["questions"] == 3
    assert report["abstention"]["answerable"] == 3 and report["abstention"]["unanswerable"] == 3
    text = (
        CliRunner()
        .invoke(
            cli,
            [
                "eval-reader",
                "--data",
                str(data),
                "--reader",
                str(tiny_qa_base),
                "--answerless",
                "1",
                "--runtime",
                "torch",
            ],
        )
        .output
    )
    assert "NoAns accuracy" in text and "always abstaining scores EM 50.0" in text


@pytest.mark.slow
def test_eval_reader_can_pair_questions_with_retrieved_paragraphs_of_other_articles(tmp_path, tiny_qa_base):
    def article(title, context, qid, question, answer):
        qa = {"id": qid, "question": question, "answers": [{"text": answer, "answer_start": context.find(answer)}]}
        return {"title": title, "paragraphs": [{"context": context, "qas": [qa]}]}

    data = tmp_path / "squad.json"
    articles = [
        article("Anna", "Anna likes the colour red.", "q1", "Which colour does Anna like?", "red"),
        article(
            "Boris", "Boris, who knows Anna, likes the colour blue.", "q2", "Which colour does Boris like?", "blue"
        ),
        article("Bees", "Bees keep to their hive in winter.", "q3", "Where do bees stay?", "their hive"),
    ]
    data.write_text(json.dumps({"data": articles}))

    def unanswerable(source):
        args = ["eval-reader", "--data", str(data), "--reader", str(tiny_qa_base), "--answerless", "1"]
        result = CliRunner().invoke(cli, [*args, "--answerless-from", source, "--json", "--runtime", "torch"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output).get("abstention", {}).get("unanswerable", 0)

    assert unanswerable("article") == 0  # each article has one paragraph: none of its own to pair with
    # q1 and q2 each meet the other's paragraph (shared words, not its answer); q3 shares no word with either
    assert unanswerable("retrieved") == 2
