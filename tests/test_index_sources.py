"""Indexing more paths adds them; removing documents is explicit."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag_qa.cli import cli


def _folder(path, names):
    path.mkdir(parents=True, exist_ok=True)
    for name in names:
        (path / f"{name}.txt").write_text(f"The {name} file talks about {name} and nothing else.")
    return path


def _index(*args):
    result = CliRunner().invoke(cli, ["-q", "index", *map(str, args), "--json"])
    return result, (json.loads(result.output) if result.exit_code == 0 else None)


@pytest.mark.slow
def test_indexing_a_new_folder_adds_it(tmp_path):
    a, b, c = _folder(tmp_path / "a", ["apple"]), _folder(tmp_path / "b", ["bread"]), _folder(tmp_path / "c", ["cider"])
    index = tmp_path / "index"
    _, first = _index(a, b, "--index-dir", index)
    assert first["documents"] == 2
    _, second = _index(c, "--index-dir", index)
    assert second["documents"] == 3 and second["added"] == 1 and second["removed"] == 0
    _, again = _index("--index-dir", index)  # no paths: all three scanned again
    assert again["documents"] == 3 and again["unchanged"] == 3
    _, only_c = _index(c, "--prune", "--index-dir", index)  # --prune with paths: exactly those
    assert only_c["documents"] == 1 and only_c["removed"] == 2


@pytest.mark.slow
def test_dropping_many_documents_needs_prune_and_remove_takes_paths_out(tmp_path):
    docs = _folder(tmp_path / "docs", ["one", "two", "three", "four", "five", "six"])
    _folder(docs / "old", ["seven", "eight"])
    index = tmp_path / "index"
    _index(docs, "--index-dir", index)
    for name in ("one", "two", "three", "four"):
        (docs / f"{name}.txt").unlink()
    refused, _ = _index("--index-dir", index)
    assert refused.exit_code == 1 and "would remove 4 documents" in refused.output and "--prune" in refused.output
    info = json.loads(CliRunner().invoke(cli, ["info", "--index-dir", str(index), "--json"]).output)
    assert info["documents"] == 8  # nothing was changed
    _, pruned = _index("--prune", "--index-dir", index)
    assert pruned["documents"] == 4

    removed = CliRunner().invoke(cli, ["-q", "remove", str(docs / "old"), "--index-dir", str(index), "--json"])
    assert removed.exit_code == 0, removed.output
    assert json.loads(removed.output)["documents"] == 2
    _, rescanned = _index("--index-dir", index)
    assert rescanned["documents"] == 2  # stays out on updates
    _, back = _index(docs / "old", "--index-dir", index)
    assert back["documents"] == 4  # indexed again on request
    missing = CliRunner().invoke(cli, ["remove", str(tmp_path / "elsewhere"), "--index-dir", str(index)])
    assert missing.exit_code == 1 and "is not in the index" in missing.output


@pytest.mark.slow
def test_sources_stay_relative_to_the_recorded_root_whatever_folder_later_builds_run_in(tmp_path, monkeypatch):
    project = tmp_path / "project"
    _folder(project / "docs", ["apple"])
    elsewhere = tmp_path / "elsewhere"
    _folder(elsewhere / "more", ["bread"])
    index = tmp_path / "index"
    monkeypatch.chdir(project)
    first, _ = _index("docs", "--index-dir", index)
    assert first.exit_code == 0, first.output
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["source_root"] == str(project.resolve())

    monkeypatch.chdir(elsewhere)  # a later update from another folder, adding a folder beside it
    second, _ = _index("more", "--index-dir", index)
    assert second.exit_code == 0, second.output
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["source_root"] == str(project.resolve())  # the first build's root is kept
    rows = [json.loads(line) for line in (index / manifest["data_dir"] / "passages.jsonl").read_text().splitlines()]
    by_name = {row["source"].rsplit("/", 1)[-1]: row["source"] for row in rows}
    assert by_name["apple.txt"] == "docs/apple.txt"  # not re-rooted at the new working directory
    assert by_name["bread.txt"] == str((elsewhere / "more" / "bread.txt").resolve())  # outside the root: absolute
    monkeypatch.chdir(tmp_path)
    for source in by_name.values():  # every source opens from any folder once joined to the root
        assert (Path(manifest["source_root"]) / source).is_file()
