import json

import pytest
from click.testing import CliRunner

from rag_qa.cli import cli
from rag_qa.evaluation.runner import beir_eval_set, squad_eval_set

PARAGRAPHS = [
    (
        "Planets",
        "Jupiter is the largest planet in the solar system. It has dozens of moons.",
        "Which is the largest planet?",
        "Jupiter",
    ),
    (
        "Planets",
        "Mars is called the red planet because of iron oxide dust on its surface.",
        "Why is Mars red?",
        "iron oxide dust",
    ),
    (
        "Rivers",
        "The Nile flows north through eleven countries into the Mediterranean Sea.",
        "Where does the Nile flow into?",
        "the Mediterranean Sea",
    ),
    (
        "Rivers",
        "The Amazon carries more water than any other river on Earth.",
        "Which river carries the most water?",
        "The Amazon",
    ),
]


@pytest.fixture()
def squad_file(tmp_path):
    data = {}
    for i, (title, context, question, answer) in enumerate(PARAGRAPHS):
        data.setdefault(title, []).append(
            {
                "context": context,
                "qas": [
                    {
                        "id": f"q{i}",
                        "question": question,
                        "answers": [{"text": answer, "answer_start": context.index(answer)}],
                    }
                ],
            }
        )
    path = tmp_path / "mini.json"
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": t, "paragraphs": p} for t, p in data.items()]}))
    return path


@pytest.fixture()
def beir_dir(tmp_path):
    d = tmp_path / "beir"
    (d / "qrels").mkdir(parents=True)
    docs = {
        "d1": "Aspirin reduces the risk of heart attacks.",
        "d2": "Vitamin D is made in skin exposed to sunlight.",
        "d3": "Coffee contains caffeine, a stimulant.",
    }
    (d / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": k, "title": "", "text": v}) for k, v in docs.items()))
    (d / "queries.jsonl").write_text(
        "\n".join(
            json.dumps({"_id": q, "text": t})
            for q, t in [
                ("1", "aspirin heart attack risk"),
                ("2", "sunlight vitamin D skin"),
                ("3", "no relevance judged"),
            ]
        )
    )
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
    result = CliRunner().invoke(
        cli,
        [
            "-q",
            "eval",
            "--data",
            str(squad_file),
            "--reader",
            str(tiny_qa_base),
            "--json",
            "--index-dir",
            str(tmp_path / "idx"),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data["modes"]) == {"bm25", "dense", "hybrid"}
    assert data["modes"]["bm25"]["recall@5"] == 1.0  # four documents: always in the top 5
    assert data["modes"]["bm25"]["recall@1"] >= 0.75
    assert 0 <= data["reader_gold_passage"]["f1"] <= 100
    e2e = data["end_to_end"]
    # The thresholded answers are the top answers minus abstentions: never more right.
    assert 0 <= e2e["with_threshold"]["answered"] <= 1
    assert e2e["with_threshold"]["exact_match"] <= e2e["exact_match"] and e2e["with_threshold"]["f1"] <= e2e["f1"]
    again = CliRunner().invoke(
        cli,
        [
            "-q",
            "eval",
            "--data",
            str(squad_file),
            "--no-reader",
            "--modes",
            "bm25",
            "--index-dir",
            str(tmp_path / "idx"),
        ],
    )
    assert again.exit_code == 0 and "| bm25 |" in again.output and "End to end" not in again.output


def test_eval_cli_beir(beir_dir):
    result = CliRunner().invoke(cli, ["-q", "eval", "--beir", str(beir_dir), "--modes", "bm25,dense", "--json"])
    data = json.loads(result.output)
    assert data["modes"]["bm25"]["ndcg@10"] == pytest.approx(1.0)
    assert data["questions"] == 2


def test_eval_cli_bad_arguments(squad_file, tmp_path, one_line_error):
    one_line_error(CliRunner().invoke(cli, ["eval"]), "exactly one of --data")
    one_line_error(CliRunner().invoke(cli, ["eval", "--data", str(squad_file), "--modes", "sparse"]), "unknown mode")
    one_line_error(CliRunner().invoke(cli, ["eval", "--beir", str(tmp_path)]), "corpus.jsonl")


def test_eval_plot_writes_a_png(squad_file, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "recall.png"
    result = CliRunner().invoke(
        cli, ["-q", "eval", "--data", str(squad_file), "--no-reader", "--modes", "bm25,hybrid", "--plot", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def synthetic_candidates(n: int, bm25_good: bool):
    """Questions whose one relevant document is ranked first by one retriever
    and 30th by the other."""
    import random

    from rag_qa.evaluation.tune_fusion import Candidates

    rng = random.Random(0)
    out = []
    for q in range(n):
        gold = q
        others = [d for d in rng.sample(range(1000), 60) if d != gold][:50]
        good = {gold: 10.0, **{d: 9.0 - i * 0.1 for i, d in enumerate(others[:40])}}
        bad = {**{d: 9.0 - i * 0.1 for i, d in enumerate(others[10:39])}, gold: 5.0}
        out.append(Candidates(f"q{q}", good if bm25_good else bad, bad if bm25_good else good, {f"doc{gold}": 1.0}))
    return out


@pytest.mark.parametrize("bm25_good", [True, False])
def test_fusion_tuning_follows_the_better_retriever(bm25_good):
    from rag_qa.evaluation.tune_fusion import tune

    docs = [f"doc{i}" for i in range(1000)]
    report = tune({"synthetic": (synthetic_candidates(200, bm25_good), docs)})
    chosen = report["chosen"]
    assert (chosen["bm25_weight"] > chosen["dense_weight"]) == bm25_good
    test = report["datasets"]["synthetic"]
    assert test["questions"]["fit"] + test["questions"]["test"] == 200 and min(test["questions"].values()) > 60
    assert test["test_chosen"]["mrr@10"] == pytest.approx(1.0)
    assert test["test_chosen"]["mrr@10"] >= test["test_current"]["mrr@10"]


def test_tune_fusion_cli_on_a_beir_folder(tmp_path, one_line_error):
    d = tmp_path / "beir"
    (d / "qrels").mkdir(parents=True)
    topics = ["aspirin", "sunlight", "coffee", "glaciers", "volcanoes", "tides", "bees", "copper", "saturn", "tea"]
    (d / "corpus.jsonl").write_text(
        "\n".join(
            json.dumps({"_id": f"d{i}", "title": "", "text": f"A study of {t} and what {t} does."})
            for i, t in enumerate(topics)
        )
    )
    queries = [(f"{i}-{j}", f"question {j} about {t}") for i, t in enumerate(topics) for j in range(6)]
    (d / "queries.jsonl").write_text("\n".join(json.dumps({"_id": q, "text": t}) for q, t in queries))
    (d / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "\n".join(f"{q}\td{q.split('-')[0]}\t1" for q, _ in queries) + "\n"
    )
    result = CliRunner().invoke(cli, ["-q", "tune-fusion", "--beir", str(d), "--split", "test", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert len(report["grid"]) == 35
    assert report["grid"][0]["fit_ndcg@10_sum"] == max(g["fit_ndcg@10_sum"] for g in report["grid"])
    ((name, data),) = report["datasets"].items()
    from rag_qa.data import held_out_beir_queries

    held, tuning = held_out_beir_queries(d, split="test"), held_out_beir_queries(d, split="test", role="tune")
    assert len(held) == 12 and 0 < len(tuning) < 12  # the 20% train-encoder holds out; its tuning half
    assert sum(data["questions"].values()) == len(tuning)
    one_line_error(CliRunner().invoke(cli, ["tune-fusion"]), "--data", "--beir")


def held_out_squad(path):
    """A SQuAD file of 3 held-out articles, 3 paragraphs each, 4 questions a paragraph."""
    from rag_qa.data import is_held_out

    titles = [t for t in (f"Article_{i}" for i in range(400)) if is_held_out(t)][:3]
    data = {
        "version": "1.1",
        "data": [
            {
                "title": t,
                "paragraphs": [
                    {
                        "context": f"{t} paragraph {p} says {p}.",
                        "qas": [
                            {
                                "id": f"{t}-{p}-{q}",
                                "question": f"What does {t} {p} say ({q})?",
                                "answers": [{"text": str(p), "answer_start": len(f"{t} paragraph {p} says ")}],
                            }
                            for q in range(4)
                        ],
                    }
                    for p in range(3)
                ],
            }
            for t in titles
        ],
    }
    path.write_text(json.dumps(data))
    return path


def test_held_out_questions_split_into_a_tuning_and_a_test_half(tmp_path):
    """Settings are chosen on one half of the held-out questions and scores reported on the other."""
    from rag_qa.data import held_out_role

    path = held_out_squad(tmp_path / "squad.json")
    test = squad_eval_set(path, held_out=True)
    tune = squad_eval_set(path, held_out=True, role="tune")
    test_ids, tune_ids = {q for q, _ in test.queries}, {q for q, _ in tune.queries}
    assert test_ids and tune_ids and not test_ids & tune_ids
    assert len(test_ids | tune_ids) == 36
    assert all(held_out_role(q) == "test" for q in test_ids)
    assert len(test.corpus) == len(tune.corpus) == 9  # both search every held-out paragraph


def test_end_to_end_also_reads_without_each_questions_own_paragraph(squad_file, tiny_qa_base, tmp_path, monkeypatch):
    from rag_qa.evaluation.runner import run_eval
    from rag_qa.pipeline import RagQA
    from rag_qa.reading.reader import Reader

    eval_set = squad_eval_set(squad_file)
    gold_of = {q: set(docs) for q, docs in eval_set.qrels.items()}
    question_of = {text: q for q, text in eval_set.queries}
    read = []
    real = RagQA.read_prepared

    def spy(self, prepared):
        read.append([[str(h.passage.metadata["id"]) for h in p.hits] for p in prepared])
        read[-1].insert(0, question_of[prepared[0].question])
        return real(self, prepared)

    monkeypatch.setattr(RagQA, "read_prepared", spy)
    reader = Reader(tiny_qa_base, no_answer_threshold=1e9)  # abstains on everything
    results = run_eval(eval_set, tmp_path / "idx", modes=("bm25",), reader=reader, show_progress=False)
    assert len(read) == len(eval_set.queries)
    for qid, with_gold, without in read:
        assert gold_of[qid] <= set(with_gold)  # four documents: the gold one is always among the ten
        assert without and not gold_of[qid] & set(without)
    assert results["end_to_end"]["gold_removed"]["abstained"] == 1.0
    always = Reader(tiny_qa_base, no_answer_threshold=float("-inf"))
    results = run_eval(eval_set, tmp_path / "idx", modes=("bm25",), reader=always, show_progress=False)
    assert results["end_to_end"]["gold_removed"]["abstained"] == 0.0


def test_calibration_error_and_its_interval_tell_a_calibrated_confidence_from_an_overconfident_one():
    import numpy as np

    from rag_qa.evaluation.tune_reader import ece, ece_interval

    rng = np.random.default_rng(3)
    confidence = rng.uniform(0, 1, 2000)
    calibrated = (rng.uniform(0, 1, 2000) < confidence).astype(float)
    error, table = ece(confidence, calibrated)
    assert error < 0.04 and sum(row["count"] for row in table) == 2000
    low, high = ece_interval(confidence, calibrated, rounds=200)
    assert low < 0.01 and high < 0.05  # the true error is 0

    overconfident = (rng.uniform(0, 1, 2000) < confidence / 2).astype(float)  # right half as often as it says
    error = ece(confidence, overconfident)[0]
    assert error == pytest.approx(0.25, abs=0.03)
    low, high = ece_interval(confidence, overconfident, rounds=200)
    assert 0.2 < low <= 0.25 <= high < 0.3  # the true error is 0.25

    # fewer questions, a wider interval
    small = ece_interval(confidence[:200], calibrated[:200], rounds=200)
    assert small[1] - small[0] > high - low


@pytest.mark.slow
def test_tune_reader_writes_the_settings_the_reader_then_uses_and_reports_the_ones_it_replaced(tmp_path, tiny_qa_base):
    import shutil

    from rag_qa.data import held_out_role, read_squad
    from rag_qa.reading.reader import Reader

    data = held_out_squad(tmp_path / "squad.json")
    tuning = sum(held_out_role(e.qid) == "tune" for e in read_squad(data))
    reader_dir = tmp_path / "reader"
    shutil.copytree(tiny_qa_base, reader_dir)
    (reader_dir / "ragqa_reader.json").write_text(
        json.dumps({"temperature": 2.0, "retriever_weight": 1.0, "no_answer_threshold": 0.0})
    )
    result = CliRunner().invoke(
        cli,
        ["-q", "tune-reader", "--data", str(data), "--reader", str(reader_dir), "--questions", "100", "-k", "3"]
        + ["--runtime", "torch"],
    )
    assert result.exit_code == 0, result.output
    assert "95% interval" in result.output
    report = json.loads((reader_dir / "calibration.json").read_text())
    assert report["questions"]["fit"] + report["questions"]["test"] == tuning  # the whole tuning half, no more
    previous = report["test_previous_settings"]
    assert (previous["temperature"], previous["retriever_weight"]) == (2.0, 1.0)
    low, high = previous["ece_95"]
    assert 0 <= low <= high <= 1
    reader = Reader(reader_dir)
    assert reader.config.temperature == pytest.approx(report["temperature"])
    assert reader.config.retriever_weight == report["retriever_weight"]
    assert reader.config.no_answer_threshold == pytest.approx(report["no_answer_threshold"])
