import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag_qa.cli import cli


@pytest.fixture()
def runner():
    return CliRunner()


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory, write_corpus):
    root = tmp_path_factory.mktemp("cli")
    docs = write_corpus(root / "docs")
    result = CliRunner().invoke(cli, ["-q", "index", str(docs), "--index-dir", str(root / "index")])
    assert result.exit_code == 0, result.output
    return root / "index"


def test_index_prints_a_one_line_summary(runner, tmp_path, write_corpus):
    docs = write_corpus(tmp_path / "docs")
    (docs / "junk.txt").write_bytes(b"\x00\x01\x02binary")
    result = runner.invoke(cli, ["-q", "index", str(docs), "--index-dir", str(tmp_path / "index")])
    assert result.exit_code == 0
    assert "6 documents" in result.output and "6 added" in result.output and "1 skipped" in result.output
    again = runner.invoke(cli, ["-q", "index", "--index-dir", str(tmp_path / "index"), "--json"])
    report = json.loads(again.output)
    assert report["unchanged"] == 6 and report["embedded"] == 0
    assert report["skipped"][0]["path"].endswith("junk.txt")


def test_search_text_and_json(runner, cli_index):
    result = runner.invoke(cli, ["search", "Which planet is the largest?", "--index-dir", str(cli_index), "-k", "2"])
    assert result.exit_code == 0
    assert result.output.startswith("1. ") and "space.html" in result.output.splitlines()[0]
    result = runner.invoke(cli, ["search", "volcano", "--index-dir", str(cli_index), "--mode", "bm25", "--json"])
    hits = json.loads(result.output)
    assert hits[0]["title"] == "Volcanoes" and hits[0]["rank"] == 1
    assert {"source", "start", "end", "score", "bm25_score", "dense_score", "text", "id"} <= set(hits[0])


def test_search_source_filter(runner, cli_index):
    result = runner.invoke(cli, ["search", "planet", "--index-dir", str(cli_index), "--source", "*.md", "--json"])
    assert {h["source"].rsplit("/", 1)[-1] for h in json.loads(result.output)} == {"guide.md"}


def test_info(runner, cli_index):
    result = runner.invoke(cli, ["info", "--index-dir", str(cli_index), "--json"])
    info = json.loads(result.output)
    assert info["documents"] == 6 and info["faiss"]["type"] == "Flat"
    assert "Documents:  6" in runner.invoke(cli, ["info", "--index-dir", str(cli_index)]).output


def test_empty_query(runner, cli_index, one_line_error):
    one_line_error(runner.invoke(cli, ["search", "  ", "--index-dir", str(cli_index)]), "query is empty")


def test_missing_index(runner, tmp_path, one_line_error):
    one_line_error(
        runner.invoke(cli, ["search", "q", "--index-dir", str(tmp_path / "nope")]), "no index", "ragqa index"
    )


def test_missing_path(runner, tmp_path, one_line_error):
    one_line_error(
        runner.invoke(cli, ["-q", "index", str(tmp_path / "nope"), "--index-dir", str(tmp_path / "i")]),
        "does not exist",
    )


def test_empty_folder_keeps_the_old_index(runner, tmp_path, cli_index, one_line_error):
    (tmp_path / "empty").mkdir()
    import shutil

    copy = tmp_path / "index"
    shutil.copytree(cli_index, copy)
    before = (copy / "manifest.json").read_bytes()
    one_line_error(
        runner.invoke(cli, ["-q", "index", str(tmp_path / "empty"), "--index-dir", str(copy)]),
        "no readable documents",
        "nothing was changed",
    )
    assert (copy / "manifest.json").read_bytes() == before


def test_folder_of_unreadable_files(runner, tmp_path, one_line_error):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_bytes(b"")
    (tmp_path / "d" / "b.txt").write_bytes(b"\x00" * 100)
    result = runner.invoke(cli, ["-q", "index", str(tmp_path / "d"), "--index-dir", str(tmp_path / "i")])
    one_line_error(result, "2 skipped")


def test_corrupt_index(runner, tmp_path, cli_index, one_line_error):
    import shutil

    copy = tmp_path / "index"
    shutil.copytree(cli_index, copy)
    (copy / "manifest.json").write_text("{ not json")
    one_line_error(runner.invoke(cli, ["search", "q", "--index-dir", str(copy)]), "not valid JSON", "ragqa index")


def test_bad_encoder_directory(runner, tmp_path, write_corpus, one_line_error):
    docs = write_corpus(tmp_path / "docs")
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "config.json").write_text("{}")
    (tmp_path / "enc" / "pytorch_model.bin").write_bytes(b"not loaded")
    result = runner.invoke(
        cli, ["-q", "index", str(docs), "--index-dir", str(tmp_path / "i"), "--encoder", str(tmp_path / "enc")]
    )
    one_line_error(result, "no safetensors weights", "pytorch_model.bin")


def test_bad_config(runner, tmp_path, write_corpus, one_line_error):
    docs = write_corpus(tmp_path / "docs")
    (tmp_path / "c.yaml").write_text("chunking: {sise: 10}\n")
    result = runner.invoke(
        cli, ["-q", "index", str(docs), "--index-dir", str(tmp_path / "i"), "--config", str(tmp_path / "c.yaml")]
    )
    one_line_error(result, "unknown key(s) sise")


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from rag_qa.cli import cli\n"
        "try:\n"
        "    cli(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('torch' in sys.modules, 'faiss' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"


def test_control_characters_in_a_query_are_read_as_spaces(runner, cli_index, one_line_error):
    result = runner.invoke(
        cli,
        [
            "search",
            "\x00Which\x07 planet\x1b[31m is the largest?\x7f",
            "--index-dir",
            str(cli_index),
            "--json",
            "-k",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Jupiter" in json.loads(result.output)[0]["text"]
    one_line_error(runner.invoke(cli, ["search", "\x00\x01\x02\x1b", "--index-dir", str(cli_index)]), "query is empty")


def test_control_characters_in_a_query_through_the_api(cli_index):
    from rag_qa import Index, RagQAError

    index = Index.load(cli_index)
    assert "Jupiter" in index.search("largest\x00 planet\x08", k=1)[0].passage.text
    with pytest.raises(RagQAError, match="query is empty"):
        index.search("\x00\x1f")


def test_unreadable_file_is_reported_and_the_rest_indexed(runner, tmp_path, unreadable_as_root, write_corpus):
    docs = write_corpus(tmp_path / "docs")
    locked = docs / "locked.txt"
    locked.write_text("Secret words nobody may read.")
    locked.chmod(0)
    result = runner.invoke(cli, ["index", str(docs), "--index-dir", str(tmp_path / "index"), "--json"])
    assert result.exit_code == 0
    report = json.loads(result.output[result.output.index("{") :])
    assert report["documents"] == 6
    assert report["skipped"] == [{"path": str(locked), "reason": "Permission denied"}]


@pytest.mark.slow
def test_streamed_file_answers_with_lines_of_the_whole_file(runner, tmp_path, monkeypatch):
    from rag_qa.ingest import readers

    monkeypatch.setattr(readers, "STREAM_BYTES", 2_000)
    monkeypatch.setattr(readers, "PART_BYTES", 500)
    lines = [f"Entry {i}: the station logged a quiet night." for i in range(400)]
    lines[321] = "Entry 321: the pump in hall B failed at noon."
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "log.txt").write_text("\n".join(lines) + "\n")
    result = runner.invoke(
        cli, ["-q", "index", str(tmp_path / "docs"), "--index-dir", str(tmp_path / "index"), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["documents"] > 5  # the file came in parts
    hits = json.loads(
        runner.invoke(
            cli,
            [
                "search",
                "pump hall failed",
                "--index-dir",
                str(tmp_path / "index"),
                "--mode",
                "bm25",
                "--json",
                "-k",
                "1",
            ],
        ).output
    )
    text = (tmp_path / "docs" / "log.txt").read_text()
    assert "pump in hall B" in hits[0]["text"]
    assert text[hits[0]["start"] : hits[0]["end"]] == hits[0]["text"]
    assert hits[0]["metadata"]["line"] == text.count("\n", 0, hits[0]["start"]) + 1


def test_documents_without_words_make_no_index(runner, tmp_path, one_line_error):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "blank.txt").write_text("   \n\t\n")
    one_line_error(
        runner.invoke(cli, ["-q", "index", str(tmp_path / "d"), "--index-dir", str(tmp_path / "i")]),
        "1 skipped",
        "nothing was changed",
    )
    one_line_error(
        runner.invoke(cli, ["ask", "anything?", "--index-dir", str(tmp_path / "i")]), "no ragqa index", "ragqa index"
    )


def test_search_locates_hits_by_page_or_line_with_paths_that_open(runner, cli_index):
    args = ["search", "glaciers carve valleys", "--index-dir", str(cli_index), "--mode", "bm25", "-k", "1"]
    hit = json.loads(runner.invoke(cli, [*args, "--json"]).stdout)[0]
    assert hit["source"].endswith("paper.pdf") and Path(hit["path"]).is_file()
    assert runner.invoke(cli, args).stdout.startswith(f"1. {hit['path']} p.1 [")
    args = ["search", "virtual environment", "--index-dir", str(cli_index), "--mode", "bm25", "-k", "1"]
    hit = json.loads(runner.invoke(cli, [*args, "--json"]).stdout)[0]
    assert hit["path"].endswith("guide.md") and Path(hit["path"]).is_file()
    assert runner.invoke(cli, args).stdout.startswith(f"1. {hit['path']}:{hit['metadata']['line']} [")
