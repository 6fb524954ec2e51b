"""`make run`, the README's first command, answers its question over the project's own guide.

The guide changes with every feature; a passage that quotes the demo question,
or a new section on a near topic, can push the answer out of the passages the
reader reads. This test indexes ``docs/`` as `make run` does and asks the
Makefile's question.
"""

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag_qa.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def _makefile_question() -> str:
    match = re.search(r"^QUESTION \?= (.+)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    assert match, "the Makefile sets no QUESTION for `make run`"
    return match.group(1).strip()


@pytest.mark.slow
def test_make_run_answers_its_question_from_the_guide(tmp_path, monkeypatch):
    # The guide is copied so that the index records the same relative sources as `make run` does.
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    built = runner.invoke(cli, ["-q", "index", "docs/", "--index-dir", "index"])
    assert built.exit_code == 0, built.output

    asked = runner.invoke(cli, ["ask", _makefile_question(), "--index-dir", "index", "--answers", "2", "--json"])
    assert asked.exit_code == 0, asked.output
    result = json.loads(asked.output)
    assert not result["abstained"]
    top = result["answers"][0]
    assert (top["text"], top["source"]) == ("100", "docs/indexing.md"), top
