"""What `ragqa ask` tells its user: abstention, warnings about the question,
the passages read, and locations that open from the working directory."""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag_qa.cli import cli, openable_path
from rag_qa.pipeline import LONG_QUESTION_TOKENS, not_english_reason

QUESTION = "Which planet is the largest?"
ALWAYS = ["--no-answer-threshold", "-1e9"]
NEVER = ["--no-answer-threshold", "1000"]


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


@pytest.fixture(scope="module")
def ask(runner, built_index, tiny_qa_base):
    """``ask(*args, question=QUESTION, index=built_index) -> click Result`` with the tiny reader."""

    def run(*args, question=QUESTION, index=None):
        index_dir = str(index or built_index.directory)
        return runner.invoke(cli, ["ask", question, "--index-dir", index_dir, "--reader", str(tiny_qa_base), *args])

    return run


def ask_json(ask, *args, **kwargs) -> dict:
    result = ask("--json", *args, **kwargs)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ------------------------------------------------------------------ abstention
def test_abstention_is_said_in_json_with_the_best_candidate(ask, built_index):
    data = ask_json(ask, *NEVER)
    assert data["abstained"] is True and data["answers"] == []
    assert data["no_answer_threshold"] == 1000
    assert data["no_answer_margin"] < data["no_answer_threshold"]
    best = data["best_candidate"]
    passage = next(p for p in built_index.passages if p.passage_id == best["passage_id"])
    span = passage.text[best["start"] - passage.start : best["end"] - passage.start]
    assert " ".join(span.split()) == " ".join(best["text"].split())
    assert best["source"] == passage.source and 0 <= best["score"] <= 1


def test_the_best_candidate_is_the_answer_given_at_a_lower_threshold(ask):
    never, always = ask_json(ask, *NEVER), ask_json(ask, *ALWAYS)
    assert always["abstained"] is False
    assert always["best_candidate"] == always["answers"][0]
    assert never["best_candidate"] == always["answers"][0]
    assert never["no_answer_margin"] == always["no_answer_margin"]


def test_without_a_threshold_the_readers_own_applies(ask, tiny_qa_base):
    from rag_qa.reading.reader import Reader

    data = ask_json(ask)
    assert data["no_answer_threshold"] == Reader(tiny_qa_base).config.no_answer_threshold
    assert data["abstained"] is (data["no_answer_margin"] < data["no_answer_threshold"])


def test_abstention_in_text_is_one_line_with_margin_and_threshold(ask):
    margin = ask_json(ask, *NEVER)["no_answer_margin"]
    result = ask(*NEVER)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("No answer found in the indexed documents")
    assert f"{margin:.2f}" in lines[0] and "threshold 1000.00" in lines[0]


def test_explain_shows_the_best_candidate_where_it_is(ask):
    best = ask_json(ask, *NEVER)["best_candidate"]
    out = ask(*NEVER, "--explain").stdout
    assert "Best candidate" in out
    assert " ".join(best["text"].split()) in out
    assert f"(characters {best['start']}-{best['end']})" in out


def test_explain_when_answering_states_margin_and_threshold(ask):
    margin = ask_json(ask, *ALWAYS)["no_answer_margin"]
    out = ask(*ALWAYS, "--explain").stdout
    assert f"margin over 'no answer' is {margin:.2f} (no-answer threshold -1000000000.00)" in out


def test_help_states_the_shipped_readers_threshold(runner):
    from rag_qa.reading.reader import default_reader_path, load_reader_settings

    shipped = load_reader_settings(default_reader_path())["no_answer_threshold"]
    out = runner.invoke(cli, ["ask", "--help"]).output
    assert f"{shipped:.2f} for the shipped reader" in " ".join(out.split())


# ------------------------------------------------------------------ questions the reader reads badly
ENGLISH = [
    QUESTION,
    "How many words does a passage have by default?",
    "What does the manifest record?",
    "Where are the ONNX exports cached?",
    "Which runtime does ragqa use on a machine without a GPU?",
    "List all supported input file types",
    "When was Marie Curie awarded her second Nobel Prize?",
    "Jupiter?",
]
NOT_ENGLISH = [
    "Wie viele Wörter hat ein Abschnitt standardmäßig?",
    "Combien de mots contient un passage par défaut ?",
    "¿Cuántas palabras tiene un pasaje por defecto?",
    "Сколько слов в отрывке по умолчанию?",
    "默认情况下一段有多少个词？",
]


@pytest.mark.parametrize("question", ENGLISH)
def test_english_questions_are_not_flagged(question):
    assert not_english_reason(question) is None


@pytest.mark.parametrize("question", NOT_ENGLISH)
def test_questions_in_other_languages_are_flagged(question):
    assert not_english_reason(question)


def test_a_question_in_another_language_is_warned_about(ask):
    question = NOT_ENGLISH[0]
    warnings = ask_json(ask, question=question)["warnings"]
    assert len(warnings) == 1 and "English" in warnings[0]
    result = ask(question=question)
    assert result.exit_code == 0
    assert result.stderr.startswith("warning: the question does not look like English")
    assert "warning" not in result.stdout
    assert "warning" not in ask("-q", question=question).stderr


def test_a_long_question_is_warned_about(ask):
    long = "I would like to know, having read the guide and the notes on the solar system closely, " * 3 + QUESTION
    warnings = ask_json(ask, question=long)["warnings"]
    assert len(warnings) == 1 and f"at most {LONG_QUESTION_TOKENS} tokens" in warnings[0]
    assert ask_json(ask)["warnings"] == []
    assert "the question has" in ask(question=long).stderr


def test_a_question_the_reader_cannot_read_is_a_one_line_error(ask, one_line_error):
    one_line_error(ask(question="where " * 300 + "?"), "301 tokens", "252", "shorten it")


# ------------------------------------------------------------------ the passages read
def _passage_blocks(out: str) -> list[tuple[str, str]]:
    """(header, text joined on one line) of each passage under "Passages read:"."""
    blocks: list[tuple[str, list[str]]] = []
    for line in out.split("Passages read:\n", 1)[1].splitlines():
        if line.startswith("  ") and not line.startswith("     "):
            blocks.append((line.strip(), []))
        elif blocks:
            blocks[-1][1].append(line.strip())
    return [(header, " ".join(text)) for header, text in blocks]


def test_show_context_prints_the_passages_with_the_answer_marked(ask):
    data = ask_json(ask, *ALWAYS, "--show-context", "-k", "3")
    answer = data["answers"][0]
    blocks = _passage_blocks(ask(*ALWAYS, "--show-context", "-k", "3").stdout)
    assert len(blocks) == len(data["passages"]) == 3
    for (header, text), hit in zip(blocks, data["passages"]):
        assert header.startswith(f"{hit['rank']}. ") and f"retriever score {hit['score']:.4f}" in header
        assert hit["path"] in header
        assert text.replace("[[", "").replace("]]", "") == " ".join(hit["text"].split())
    marked = [text for _, text in blocks if f"[[{' '.join(answer['text'].split())}]]" in text]
    holding = [h for h in data["passages"] if h["doc_id"] == answer["doc_id"] and h["start"] <= answer["start"]]
    assert marked and len(marked) <= len(holding)


def test_show_context_marks_nothing_when_abstaining_without_explain(ask):
    blocks = _passage_blocks(ask(*NEVER, "--show-context", "-k", "2").stdout)
    assert len(blocks) == 2 and not any("[[" in text for _, text in blocks)
    assert any("[[" in text for _, text in _passage_blocks(ask(*NEVER, "--show-context", "--explain").stdout))


# ------------------------------------------------------------------ locations
def test_a_pdf_answer_is_located_by_its_page(ask):
    data = ask_json(ask, *ALWAYS, "--source", "*.pdf")
    assert data["answers"][0]["page"] == 1
    assert f"{data['answers'][0]['path']} p.1 (characters" in ask(*ALWAYS, "--source", "*.pdf").stdout


def test_a_text_answer_is_located_by_its_line(ask):
    answer = ask_json(ask, *ALWAYS, "--source", "*.md")["answers"][0]
    assert answer["line"] and answer["page"] is None
    assert f"{answer['path']}:{answer['line']} (characters" in ask(*ALWAYS, "--source", "*.md").stdout


@pytest.fixture(scope="module")
def relative_index(tmp_path_factory, write_corpus):
    """An index built from inside its folder, so its sources are stored relative to it."""
    from rag_qa import Index

    root = tmp_path_factory.mktemp("rel").resolve()
    write_corpus(root / "docs")
    before = os.getcwd()
    os.chdir(root)
    try:
        Index.build([Path("docs")], root / "index", show_progress=False)
    finally:
        os.chdir(before)
    (root / "elsewhere").mkdir()
    return root


def test_paths_open_from_wherever_ragqa_ask_runs(ask, relative_index, monkeypatch):
    index = relative_index / "index"
    for cwd, expected in [
        (relative_index, "docs/guide.md"),
        (relative_index / "docs", "guide.md"),
        (relative_index / "elsewhere", str(relative_index / "docs" / "guide.md")),
    ]:
        monkeypatch.chdir(cwd)
        answer = ask_json(ask, *ALWAYS, "--source", "*guide.md", index=index)["answers"][0]
        assert answer["source"] == "docs/guide.md"  # as stored
        assert answer["path"] == expected and Path(answer["path"]).is_file()
        assert f"{expected}:{answer['line']}" in ask(*ALWAYS, "--source", "*guide.md", index=index).stdout


def test_search_shows_the_same_paths(runner, relative_index, monkeypatch):
    monkeypatch.chdir(relative_index / "elsewhere")
    args = ["search", "volcano", "--index-dir", str(relative_index / "index"), "--mode", "bm25", "-k", "1"]
    hit = json.loads(runner.invoke(cli, [*args, "--json"]).stdout)[0]
    assert hit["source"] == "records.jsonl" or hit["source"].endswith("records.jsonl")
    assert Path(hit["path"]).is_absolute() and Path(hit["path"]).is_file()
    assert runner.invoke(cli, args).stdout.startswith(f"1. {hit['path']}:")


def test_an_index_without_a_source_root_shows_sources_as_stored(ask, relative_index, tmp_path, monkeypatch):
    import shutil

    from rag_qa.retrieval import storage

    old = tmp_path / "index"
    shutil.copytree(relative_index / "index", old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest.pop("source_root", None)
    if "sha256" in manifest:
        manifest["sha256"] = storage.manifest_sha256(manifest)
    (old / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.chdir(relative_index / "elsewhere")
    answer = ask_json(ask, *ALWAYS, "--source", "*guide.md", index=old)["answers"][0]
    assert answer["path"] == answer["source"] == "docs/guide.md"


def test_openable_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = str(tmp_path / "project")
    assert openable_path("docs/a.md", root) == os.path.join("project", "docs", "a.md")
    assert openable_path("../other/b.md", root) == os.path.join("other", "b.md")
    assert openable_path("docs/a.md", "/srv/where") == "/srv/where/docs/a.md"
    assert openable_path("/srv/c.txt", root) == "/srv/c.txt"
    assert openable_path(str(tmp_path / "d.txt"), root) == "d.txt"
    assert openable_path("docs/a.md", None) == "docs/a.md"


def test_passage_marks_are_plain_off_a_terminal_and_styled_on_one():
    from rag_qa.cli import _marked_passage

    text = "The red\n door  and the blue door."
    last = text.rindex("door")
    spans = [(last, last + 4), (4, 7)]
    assert _marked_passage(text, spans, styled=False) == "The [[red]] door and the blue [[door]]."
    styled = _marked_passage(text, spans, styled=True)
    assert "[[" not in styled and "\x1b[1m\x1b[4mdoor\x1b[0m." in styled
