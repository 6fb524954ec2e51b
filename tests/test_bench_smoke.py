"""The benchmark scripts run end to end on a tiny corpus, so they do not rot."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))


def write_tiny_data(root: Path) -> Path:
    squad = {
        "version": "1.1",
        "data": [
            {
                "title": f"Article_{a}",
                "paragraphs": [
                    {
                        "context": f"Article {a} paragraph {p} talks about topic{a}{p} and shared words.",
                        "qas": [
                            {
                                "id": f"q{a}{p}",
                                "question": f"What about topic{a}{p}?",
                                "answers": [{"text": f"topic{a}{p}", "answer_start": 30}],
                            }
                        ],
                    }
                    for p in range(4)
                ],
            }
            for a in range(5)
        ],
    }
    (root / "squad_v1.1").mkdir(parents=True)
    with gzip.open(root / "squad_v1.1" / "train-v1.1.json.gz", "wt", encoding="utf-8") as fh:
        json.dump(squad, fh)
    scifact = root / "scifact_beir"
    scifact.mkdir()
    (scifact / "corpus.jsonl").write_text(
        "\n".join(
            json.dumps({"_id": str(i), "title": f"Study {i}", "text": f"Cells of type {i} respond to drug {i}."})
            for i in range(10)
        )
    )
    (scifact / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": str(i), "text": f"Drug {i} changes cells."}) for i in range(5))
    )
    return root


def test_timings_warm_up_untimed_and_report_linear_percentiles():
    from common import Timings, time_calls, time_once

    seen = []
    timings = time_calls(lambda x: seen.append(x) or 2 * x, [1, 2, 3], warmup=2)
    assert seen == [1, 2, 1, 2, 3] and timings.results == (2, 4, 6) and timings.calls == 3
    assert time_once(lambda: "built")[0] == "built"
    ms = Timings(tuple(i / 1000 for i in range(1, 21)))  # 1..20 ms
    assert ms.latency() == pytest.approx({"p50_ms": 10.5, "p95_ms": 19.05})
    assert ms.spread() == pytest.approx({"median_s": 0.0105, "min_s": 0.001, "max_s": 0.020, "runs": 20})
    assert ms.per_second() == pytest.approx(20 / 0.210) and ms.per_second(420) == pytest.approx(2000)


@pytest.mark.slow
def test_retrieval_speed_runs_and_writes_results(tmp_path, capsys):
    import retrieval_speed

    data = write_tiny_data(tmp_path / "data")
    out = tmp_path / "results.json"
    results = retrieval_speed.main(
        [
            "--data",
            str(data),
            "--queries",
            "10",
            "--rank-bm25-queries",
            "5",
            "--dense-queries",
            "5",
            "--repeat",
            "1",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "| BM25 ragqa (1 thread) |" in printed and "rank-bm25" in printed
    saved = json.loads(out.read_text())
    assert saved["corpus"]["documents"] == 30
    assert saved["bm25"]["agreement_top10_with_rank_bm25"] == 1.0
    assert results["bm25"]["ragqa"]["qps"] > 0 and "cpu" in saved["machine"]


@pytest.mark.slow
def test_reader_speed_runs_and_writes_results(tmp_path, capsys, tiny_qa_base):
    import reader_speed

    write_held_out_squad(tmp_path / "data")
    out = tmp_path / "reader.json"
    results = reader_speed.main(
        [
            "--data",
            str(tmp_path / "data"),
            "--reader",
            str(tiny_qa_base),
            "--questions",
            "6",
            "--asks",
            "3",
            "--cold-runs",
            "1",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "| cpu | torch float32 |" in printed and "Warm ask" in printed and "Cold `ragqa ask`" in printed
    saved = json.loads(out.read_text())
    assert (
        saved["warm_ask"]["asks"] == 3
        and saved["cold_ask_s"]["runs"] == 1
        and saved["cold_ask_s"]["torch"]["runs"] == 1
    )
    assert {q["precision"] for q in results["gold_passages"]} == {
        "torch float32",
        "torch bfloat16",
        "onnx float32",
        "onnx int8",
    }


@pytest.mark.slow
def test_scaling_runs_and_writes_results(tmp_path, capsys, tiny_encoder):
    import scaling

    data = write_tiny_data(tmp_path / "data")
    out = tmp_path / "scaling.json"
    results = scaling.main(
        ["--data", str(data), "--sizes", "20,60", "--queries", "8", "--encoder", str(tiny_encoder), "--out", str(out)]
    )
    printed = capsys.readouterr().out
    assert "| passages | build s |" in printed
    saved = json.loads(out.read_text())
    assert [r["target_passages"] for r in saved["sizes"]] == [20, 60]
    small, large = results["sizes"]
    assert small["passages"] >= 20 and large["passages"] >= 60
    assert large["index_mb"] > small["index_mb"] and small["build_peak_rss_mb"] > 50
    assert small["bm25"]["queries"] == 8 and large["dense"]["p50_ms"] > 0
    assert (tmp_path / "scaling.png").stat().st_size > 0


def write_held_out_squad(root: Path) -> Path:
    from rag_qa.data import is_held_out

    titles = [t for t in (f"Article_{i}" for i in range(400)) if is_held_out(t)][:2]
    data = root / "squad_v1.1"
    data.mkdir(parents=True)

    def paragraphs(t):
        return [
            {
                "context": f"Paragraph {p}: the code word is word{p}.",
                "qas": [
                    {
                        "id": f"{t}-{p}",
                        "question": f"What is the code word of paragraph {p}?",
                        "answers": [{"text": f"word{p}", "answer_start": 26 + len(str(p))}],
                    }
                ],
            }
            for p in range(5)
        ]

    with gzip.open(data / "train-v1.1.json.gz", "wt", encoding="utf-8") as fh:
        json.dump({"version": "1.1", "data": [{"title": t, "paragraphs": paragraphs(t)} for t in titles]}, fh)
    return root


@pytest.mark.slow
def test_peers_runs_each_system_in_its_own_process(tmp_path, capsys, tiny_qa_base):
    import importlib.util

    import peers

    data = write_held_out_squad(tmp_path / "data")
    systems = ["ragqa"] + [
        s
        for s, module in (("langchain", "langchain_classic"), ("haystack", "haystack"))
        if importlib.util.find_spec(module)
    ]
    out = tmp_path / "peers.json"
    results = peers.main(
        [
            "--data",
            str(data),
            "--questions",
            "8",
            "--e2e-questions",
            "4",
            "--reader-questions",
            "4",
            "--reader",
            str(tiny_qa_base),
            "--systems",
            ",".join(systems),
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "| ragqa | bm25 |" in printed and "End to end" in printed
    assert not results["not_run"], results["not_run"]
    assert set(json.loads(out.read_text())["systems"]) == set(systems)
    ragqa = results["systems"]["ragqa"]
    assert ragqa["retrieval"]["bm25"]["recall@100"] == 1.0  # ten paragraphs: everything is in the top 100
    assert ragqa["end_to_end"]["ragqa hybrid (base encoder)"]["questions"] == 4


def test_report_rewrites_only_the_marked_readme_section(tmp_path):
    import report

    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nBefore.\n\n{report.BEGIN}\nold tables\n{report.END}\n\nAfter.\n")
    report.main(["--readme", str(readme)])
    text = readme.read_text()
    assert text.startswith("# Title\n\nBefore.\n") and text.endswith("\n\nAfter.\n")
    assert "old tables" not in text and "### BM25 and retrieval speed" in text and "| BM25, ragqa (1 thread) |" in text
    (tmp_path / "plain.md").write_text("no markers")
    with pytest.raises(SystemExit, match="no bench markers"):
        report.main(["--readme", str(tmp_path / "plain.md")])


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` with a fixed identity; its output."""
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@example.com", "-c", "commit.gpgsign=false"]
    return subprocess.run(
        ["git", "-C", str(repo), *identity, *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def commit(repo: Path, path: str, text: str) -> str:
    """Write ``path`` and commit it; the short hash, as results files record it."""
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git(repo, "add", path)
    git(repo, "commit", "-q", "-m", f"change {path}")
    return git(repo, "rev-parse", "--short", "HEAD")


def write_result(folder: Path, name: str, commit_hash: str | None, like: Path | None = None) -> None:
    """A results file measured at ``commit_hash``: a copy of ``like`` or just its machine record."""
    folder.mkdir(exist_ok=True)
    result = json.loads(like.read_text()) if like else {}
    result["machine"] = {**result.get("machine", {}), "commit": commit_hash}
    (folder / f"{name}.json").write_text(json.dumps(result))


def test_report_marks_results_measured_before_their_code_changed(tmp_path, capsys):
    import report

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    for path in ("bench/common.py", "bench/scaling.py", "bench/peers.py"):
        commit(repo, path, "# v1\n")
    before = commit(repo, "rag_qa/__init__.py", "# v1\n")
    changed = commit(repo, "rag_qa/__init__.py", "# v2\n")
    after = commit(repo, "docs.md", "not measured code\n")
    peers_changed = commit(repo, "bench/peers.py", "# v2\n")

    assert report.freshness({"machine": {"commit": before}}, "scaling.py", repo).stale is True
    assert report.freshness({"machine": {"commit": changed}}, "scaling.py", repo).stale is False
    assert report.freshness({"machine": {"commit": after}}, "scaling.py", repo).stale is False
    assert report.freshness({"machine": {"commit": after}}, "peers.py", repo).stale is True  # its own script changed
    assert report.freshness({"machine": {"commit": peers_changed}}, "peers.py", repo).stale is False
    assert report.freshness({"machine": {"commit": None}}, "scaling.py", repo).stale is True
    assert report.freshness({"machine": {"commit": "0" * 40}}, "scaling.py", repo).stale is True
    stale = report.freshness({"machine": {"commit": before}}, "scaling.py", repo)
    assert stale.note == f"stale: measured at {before}, code changed since at {changed}; re-run `make bench`"

    # The tables carry the mark, and --check fails while any result is stale.
    results, measured = tmp_path / "results", report.RESULTS / "scaling_quick.json"
    write_result(results, "scaling", after, like=measured)
    write_result(results, "scaling_quick", before, like=measured)
    assert report.section(results, repo).count("> stale") == 1 and f"> {stale.note}" in report.section(results, repo)
    with pytest.raises(SystemExit) as failed:
        report.main(["--check", "--results", str(results), "--repo", str(repo)])
    assert failed.value.code == 1
    assert f"scaling_quick: {stale.note}" in capsys.readouterr().out
    write_result(results, "scaling_quick", changed, like=measured)
    assert "> stale" not in report.section(results, repo)
    report.main(["--check", "--results", str(results), "--repo", str(repo)])
    assert capsys.readouterr().out.count(": current: measured at") == 2

    # Without git history the check says so instead of failing.
    plain = tmp_path / "plain"
    plain.mkdir()
    unchecked = report.freshness({"machine": {"commit": before}}, "scaling.py", plain)
    assert unchecked.stale is None and "could not be checked" in unchecked.note
    report.main(["--check", "--results", str(results), "--repo", str(plain)])
    assert "could not be checked" in capsys.readouterr().out


def test_passages_read_reads_only_the_first_k_passages_candidates():
    import numpy as np
    import passages_read

    from rag_qa.evaluation.tune_reader import Candidates

    def candidates(texts, logits, retriever, positions, nulls, gold):
        return Candidates(
            texts,
            np.asarray(logits),
            np.asarray(retriever),
            min(nulls, default=np.inf),
            gold,
            positions,
            nulls,
            [None] * len(nulls),
        )

    # the best span is in the third passage
    row = candidates(["Lyon", "Paris"], [6.0, 9.0], [1.0, 0.5], [(0, 0, 4), (2, 10, 15)], [1.0, 5.0, -2.0], ["Paris"])
    assert passages_read.top(row, 1, 0.0) == ("Lyon", 5.0)  # margin over the first passage's no-answer score only
    assert passages_read.top(row, 3, 0.0) == ("Paris", 11.0)  # the lowest no-answer score of the three
    assert passages_read.top(row, 3, 8.0)[0] == "Lyon"  # a retriever bonus for the top passage can outweigh the span
    assert passages_read.em([row], 1, 0.0) == 0.0 and passages_read.em([row], 3, 0.0) == 100.0
    assert passages_read.top(candidates([], [], [], [], [], ["x"]), 5, 0.0) == ("", float("-inf"))
