"""The marked snippets of README.md and docs/ run as written.

A fenced block preceded by ``<!-- snippet: test -->`` is run: Python blocks in
one namespace per file, shell blocks line by line (each ``ragqa ...`` command,
comments stripped, through the CLI), in a folder that holds ``docs/`` (a small
corpus) and ``index/`` built from it.
"""

import re
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag_qa.cli import cli

ROOT = Path(__file__).resolve().parent.parent
MARK = "<!-- snippet: test -->"
_BLOCK = re.compile(r"^" + re.escape(MARK) + r"\s*\n```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def marked_snippets() -> list[tuple[str, int, str, str]]:
    """(file, line, language, code) of every marked block."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            found.append(
                (
                    path.relative_to(ROOT).as_posix(),
                    text.count("\n", 0, match.start()) + 1,
                    match.group(1),
                    match.group(2),
                )
            )
    return found


SNIPPETS = marked_snippets()


def test_snippets_are_marked_in_the_readme_and_the_guide():
    files = {f for f, *_ in SNIPPETS}
    assert {"README.md", "docs/asking.md", "docs/python-api.md", "docs/searching.md"} <= files


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, write_corpus):
    folder = tmp_path_factory.mktemp("snippets")
    write_corpus(folder / "docs")
    result = CliRunner().invoke(cli, ["-q", "index", str(folder / "docs"), "--index-dir", str(folder / "index")])
    assert result.exit_code == 0, result.output
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _commands(code: str) -> list[list[str]]:
    commands = []
    for line in code.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line.startswith("ragqa "):
            commands.append(shlex.split(line)[1:])
    return commands


@pytest.mark.slow
@pytest.mark.parametrize(("file", "line", "language", "code"), SNIPPETS, ids=[f"{f}:{n}" for f, n, *_ in SNIPPETS])
def test_snippet_runs(file, line, language, code, workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    if language == "python":
        exec(compile(code, f"{file}:{line}", "exec"), {"__name__": "__snippet__"})
        return
    commands = _commands(code)
    assert commands, f"{file}:{line} has no ragqa command to run"
    for args in commands:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, f"{file}:{line}: ragqa {shlex.join(args)}\n{result.output}"


def _guarantee_rows() -> list[tuple[str, list[str]]]:
    """(guarantee, test references) of each row of README's "What ragqa guarantees" table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("## What ragqa guarantees", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] not in ("guarantee", "---"):
            rows.append((cells[0], re.findall(r"`([^`]+)`", cells[1])))
    return rows


def test_every_guarantee_names_tests_that_exist():
    rows = _guarantee_rows()
    assert len(rows) >= 20
    for guarantee, refs in rows:
        assert refs, f"no test named for: {guarantee}"
        file = None
        for ref in refs:
            name = None
            if "::" in ref:
                file, name = ref.split("::")
            elif ref.endswith(".py"):
                file = ref
            else:
                name = ref  # a test of the file named before it in the row
            assert file is not None, f"{ref} names no file: {guarantee}"
            path = ROOT / file if file.startswith("bench/") else ROOT / "tests" / file
            assert path.is_file(), f"{file} does not exist: {guarantee}"
            if name is not None:
                assert re.search(rf"^def {re.escape(name)}\(", path.read_text(encoding="utf-8"), re.MULTILINE), (
                    f"{file} has no test {name}: {guarantee}"
                )
