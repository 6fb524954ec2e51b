import json

import pytest
from click.testing import CliRunner

from rag_qa.cli import cli
from rag_qa.evaluation.runner import beir_eval_set, squad_eval_set
from test_cli import one_line_error

PARAGRAPHS = [
    ("Planets", "Jupiter is the largest planet in the solar system. It has dozens of moons.", "Which is the largest planet?", "Jupiter"),
    ("Planets", "Mars is called the red planet because of iron oxide dust on its surface.", "Why is Mars red?", "iron oxide dust"),
    ("Rivers", "The Nile flows north through eleven countries into the Mediterranean Sea.", "Where does the Nile flow into?", "the Mediterranean Sea"),
    ("Rivers", "The Amazon carries more water than any other river on Earth.", "Which river carries the most water?", "The Amazon"),
]


@pytest.fixture()
def squad_file(tmp_path):
    data = {}
    for i, (title, context, question, answer) in enumerate(PARAGRAPHS):
        data.setdefault(title, []).append({"context": context, "qas": [{"id": f"q{i}", "question": question, "answers": [{"text": answer, "answer_start": context.index(answer)}]}]})
    path = tmp_path / "mini.json"
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": t, "paragraphs": p} for t, p in data.items()]}))
    return path


@pytest.fixture()
def beir_dir(tmp_path):
    d = tmp_path / "beir"
    (d / "qrels").mkdir(parents=True)
    docs = {"d1": "Aspirin reduces the risk of heart attacks.", "d2": "Vitamin D is made in skin exposed to sunlight.", "d3": "Coffee contains caffeine, a stimulant."}
    (d / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": k, "title": "", "text": v}) for k, v in docs.items()))
    (d / "queries.jsonl").write_text("\n".join(json.dumps({"_id": q, "text": t}) for q, t in [("1", "aspirin heart attack risk"), ("2", "sunlight vitamin D skin"), ("3", "no relevance judged")]))
    (d / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n2\td2\t1\n2\td3\t0\n")
    return d


def test_squad_eval_set_maps_questions_to_their_paragraph(squad_file):
    es = squad_eval_set(squad_file)
    assert len(es.corpus) == 4 and len(es.queries) == 4
    assert es.qrels["q2"] == {"p2": 1.0}


def test_beir_eval_set_reads_qrels(beir_dir):
    es = beir_eval_set(beir_dir)
    assert [q for q, _ in es.queries] == ["1", "2"]  # query 3 has no positive judgement
    assert es.qrels["2"] == {"d2": 1.0}


def test_eval_cli_squad_reports_retrieval_reader_and_end_to_end(squad_file, tiny_qa_base, tmp_path):
    result = CliRunner().invoke(cli, ["-q", "eval", "--data", str(squad_file), "--reader", str(tiny_qa_base), "--json", "--index-dir", str(tmp_path / "idx")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data["modes"]) == {"bm25", "dense", "hybrid"}
    assert data["modes"]["bm25"]["recall@5"] == 1.0  # four documents: always in the top 5
    assert data["modes"]["bm25"]["recall@1"] >= 0.75
    assert 0 <= data["reader_gold_passage"]["f1"] <= 100 and "exact_match" in data["end_to_end"]
    again = CliRunner().invoke(cli, ["-q", "eval", "--data", str(squad_file), "--no-reader", "--modes", "bm25", "--index-dir", str(tmp_path / "idx")])
    assert again.exit_code == 0 and "| bm25 |" in again.output and "End to end" not in again.output


def test_eval_cli_beir(beir_dir):
    result = CliRunner().invoke(cli, ["-q", "eval", "--beir", str(beir_dir), "--modes", "bm25,dense", "--json"])
    data = json.loads(result.output)
    assert data["modes"]["bm25"]["ndcg@10"] == pytest.approx(1.0)
    assert data["questions"] == 2


def test_eval_cli_bad_arguments(squad_file, tmp_path):
    one_line_error(CliRunner().invoke(cli, ["eval"]), "exactly one of --data")
    one_line_error(CliRunner().invoke(cli, ["eval", "--data", str(squad_file), "--modes", "sparse"]), "unknown mode")
    one_line_error(CliRunner().invoke(cli, ["eval", "--beir", str(tmp_path)]), "corpus.jsonl")


def test_eval_plot_writes_a_png(squad_file, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "recall.png"
    result = CliRunner().invoke(cli, ["-q", "eval", "--data", str(squad_file), "--no-reader", "--modes", "bm25,hybrid", "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
