"""The package's layers import only downward, and the defects fixed with the layering stay fixed."""

import ast
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import rag_qa
from rag_qa.cli import cli
from rag_qa.types import Answer, Passage

PACKAGE = Path(rag_qa.__file__).parent

# Lowest first. A module may import from its own unit and from units of lower layers only.
LAYERS = [
    ["errors", "choices"],
    ["text", "types"],
    ["config", "models", "data"],
    ["runtime", "ingest"],
    ["retrieval", "reading"],
    ["pipeline", "integrations"],
    ["evaluation"],
    ["training"],
    ["service"],
    ["cli"],
    ["__main__"],
]
RANK = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def _unit(module: str) -> str:
    return module.split(".")[1]


def _imports(path: Path) -> set[str]:
    """Every rag_qa module a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("rag_qa.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("rag_qa."):
            found.add(node.module)
    return found


def upward_imports() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        if rel.parts == ("rag_qa", "__init__"):
            continue  # re-exports the public API lazily
        unit = rel.parts[1]
        for target in _imports(path):
            other = _unit(target)
            if other != unit and (RANK[other] >= RANK[unit]):
                bad.append(f"{'/'.join(rel.parts)} imports {target}")
    return bad


def test_every_module_has_a_layer():
    units = {
        p.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for p in PACKAGE.iterdir()
        if p.suffix == ".py" or (p / "__init__.py").is_file()
    }
    assert units - {"__init__"} <= set(RANK), f"add to LAYERS: {sorted(units - set(RANK) - {'__init__'})}"


def test_imports_only_go_down_the_layers():
    assert upward_imports() == []


def test_the_layer_check_catches_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "rag_qa"
    (fake / "reading").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "reading" / "x.py").write_text("def f():\n    from rag_qa.evaluation.metrics import squad_scores\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert upward_imports() == ["rag_qa/reading/x imports rag_qa.evaluation.metrics"]


def test_types_import_nothing_of_ragqa():
    assert _imports(PACKAGE / "types.py") == set()


# ------------------------------------------------------------ fixed defects
@pytest.mark.slow
def test_jsonl_answers_are_on_the_record_line_and_text_answers_on_their_own(tmp_path, tiny_qa_base):
    from rag_qa import Index, RagQA, Reader

    docs = tmp_path / "docs"
    docs.mkdir()
    records = [
        {"id": "a", "text": "Ships sail.\nHarbours hold ships.\nLighthouses guide ships home."},
        {"id": "b", "text": "Bread is baked in ovens."},
        {"id": "c", "text": "Snow falls in winter."},
    ]
    (docs / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    notes = "Sailing notes.\nShips need harbours.\nLighthouses guide ships.\n"
    (docs / "notes.txt").write_text(notes)
    qa = RagQA(
        Index.build([docs], tmp_path / "index", show_progress=False),
        Reader(tiny_qa_base, no_answer_threshold=float("-inf")),
    )
    answers = qa.ask("What guides ships home?", top_k_answers=20, top_k_passages=5)
    assert {a.source.rsplit("/", 1)[-1] for a in answers} >= {"records.jsonl", "notes.txt"}
    for a in answers:
        if a.source.endswith(".jsonl"):
            assert a.line == 1 if a.passage.doc_id.endswith("#a") else a.line in (2, 3)
        else:
            assert a.line == notes[: a.start].count("\n") + 1


def test_show_context_marks_the_span_found_not_the_first_same_text(monkeypatch, tmp_path):
    from rag_qa.pipeline import AskResult, RagQA

    text = "The red door and the blue door."
    passage = Passage("p", "d", "doors.txt", text, 0, len(text))
    second = text.rindex("door")
    answer = Answer("door", 0.9, second, second + 4, "doors.txt", passage, 3.0, context=text, context_start=0)

    class Fake:
        def ask_full(self, question, **kwargs):
            return AskResult(question, [answer], [], 1.0)

    monkeypatch.setattr(RagQA, "load", classmethod(lambda cls, *a, **k: Fake()))
    result = CliRunner().invoke(cli, ["ask", "Which door?", "--index-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert '"The red door and the blue [door]."' in result.output


@pytest.mark.slow
def test_quiet_and_verbose_are_accepted_after_the_command(tmp_path, write_corpus):
    docs = write_corpus(tmp_path / "docs")
    result = CliRunner().invoke(cli, ["index", str(docs), "--index-dir", str(tmp_path / "index"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "documents" in result.output
    assert CliRunner().invoke(cli, ["info", "--index-dir", str(tmp_path / "index"), "-v"]).exit_code == 0


def test_yaml_numbers_written_as_text_are_numbers_and_a_wrong_type_names_its_key(tmp_path):
    from rag_qa.errors import InputError
    from rag_qa.training.reader import ReaderTrainConfig

    good = tmp_path / "good.yaml"
    good.write_text("learning_rate: 2e-5\nbatch_size: 8\n")
    assert ReaderTrainConfig.from_yaml(good).learning_rate == pytest.approx(2e-5)
    bad = tmp_path / "bad.yaml"
    bad.write_text("batch_size: many\n")
    with pytest.raises(InputError, match=r"bad.yaml: batch_size: .*integer.*'many'") as caught:
        ReaderTrainConfig.from_yaml(bad)
    assert "\n" not in str(caught.value)


def test_nested_index_config_from_plain_dicts():
    from rag_qa.config import IndexConfig

    assert IndexConfig(chunking={"size": 50}).chunking.size == 50
    assert IndexConfig().replace(dense={"encoder": "x"}).dense.encoder == "x"


def test_reader_takes_fitted_settings_whatever_way_it_is_configured(tmp_path, tiny_qa_base):
    import shutil

    from rag_qa.reading.reader import READER_SETTINGS, Reader, ReaderConfig

    folder = tmp_path / "reader"
    shutil.copytree(tiny_qa_base, folder)
    (folder / READER_SETTINGS).write_text(
        json.dumps({"temperature": 0.5, "retriever_weight": 2.0, "no_answer_threshold": 4.0})
    )
    for reader in (
        Reader(folder),
        Reader(folder, runtime="torch"),
        Reader(folder, config=ReaderConfig(runtime="torch")),
    ):
        assert (reader.config.temperature, reader.config.retriever_weight, reader.config.no_answer_threshold) == (
            0.5,
            2.0,
            4.0,
        )
    assert Reader(folder, config=ReaderConfig(temperature=2.0)).config.temperature == 2.0
    assert Reader(folder, no_answer_threshold=-1.0).config.no_answer_threshold == -1.0
    assert Reader(tiny_qa_base).config.temperature == 1.0  # nothing fitted


def test_one_query_check_for_search_ask_and_reader(built_index, tiny_qa_base):
    from rag_qa import RagQAError, Reader

    reader = Reader(tiny_qa_base)
    for bad in ("", " \t", "\x00\x01\x1b"):
        for call in (lambda q: built_index.search(q), lambda q: reader.read(q, ["Some text."])):
            with pytest.raises(RagQAError, match="query is empty"):
                call(bad)
    # control characters inside a real question are read as spaces by the reader too
    assert reader.read("which\x00text?", ["Some text."], top_k=1) == reader.read("which text?", ["Some text."], top_k=1)
