import json
import shutil

import numpy as np
import pytest

from rag_qa import Index
from rag_qa.config import IndexConfig
from rag_qa.errors import IndexCorruptError, IndexLockedError, IndexMismatchError, IndexMissingError, InputError
from rag_qa.retrieval import storage
from rag_qa.retrieval.builder import build_index


def sources(hits):
    return [h.passage.source.rsplit("/", 1)[-1] for h in hits]


def test_round_trip_keeps_passages_and_manifest(built_index):
    loaded = Index.load(built_index.directory)
    assert [p.passage_id for p in loaded.passages] == [p.passage_id for p in built_index.passages]
    m = loaded.manifest
    assert m["format_version"] == storage.FORMAT_VERSION
    assert m["counts"] == {"documents": 6, "passages": len(loaded), "vocabulary": m["counts"]["vocabulary"]}
    assert m["encoder"]["dimension"] == 384 and len(m["encoder"]["sha256"]) == 64
    assert m["faiss"]["type"] == "Flat" and m["faiss"]["ntotal"] == len(loaded)
    assert set(m["files"]) >= {"passages.jsonl", "dense.faiss", "embeddings.npy", "bm25/data.csc.index.npy"}


def test_passage_offsets_point_into_the_source_file(built_index, corpus_dir):
    # plain text: offsets into the file; Markdown is read as the text it shows, its lines point into the file
    animals = [p for p in built_index.passages if p.source.endswith("animals.txt")]
    text = (corpus_dir / "animals.txt").read_text()
    assert animals and all(text[p.start : p.end] == p.text for p in animals)
    guide = [p for p in built_index.passages if p.source.endswith("guide.md")]
    lines = (corpus_dir / "guide.md").read_text().splitlines()
    assert guide and all(p.text.split()[0] in lines[p.line_at(0) - 1] for p in guide)


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_each_mode_finds_the_right_document(built_index, mode):
    assert sources(built_index.search("Which planet is the largest?", k=3, mode=mode))[0] == "space.html"
    assert sources(built_index.search("what does the manifest record", k=3, mode=mode))[0] == "guide.md"


def test_dense_finds_a_paraphrase_bm25_cannot(built_index):
    query = "feline companions"  # no word in common with the text about cats
    assert built_index.search(query, k=3, mode="bm25") == []
    assert sources(built_index.search(query, k=1, mode="dense")) == ["animals.txt"]


def test_hybrid_records_both_scores(built_index):
    top = built_index.search("volcano magma crust", k=1, mode="hybrid")[0]
    assert top.passage.title == "Volcanoes"
    assert top.bm25_score > 0 and top.dense_score > 0
    assert top.score == pytest.approx(0.5 * 1.0 + 0.5 * 1.0)  # first in both: min-max scores of 1, equal weights


def test_source_glob_and_metadata_filters(built_index):
    hits = built_index.search("planet", k=10, mode="hybrid", source="*.jsonl")
    assert hits and set(sources(hits)) == {"records.jsonl"}
    hits = built_index.search("water and rivers", k=10, mode="dense", where={"topic": "geology"})
    assert [h.passage.title for h in hits] == ["Volcanoes"]
    assert built_index.search("planet", source="*.nothing") == []


def test_search_batch_matches_single_searches(built_index):
    queries = ["largest planet", "domesticated wolves"]
    batch = built_index.search_batch(queries, k=2, mode="hybrid")
    singles = [built_index.search(q, k=2, mode="hybrid") for q in queries]
    assert [[h.passage.passage_id for h in hits] for hits in batch] == [
        [h.passage.passage_id for h in hits] for hits in singles
    ]
    for hits, single in zip(batch, singles):
        assert [h.dense_score for h in hits] == pytest.approx([h.dense_score for h in single], abs=1e-5)


@pytest.mark.parametrize("query", ["", "   ", "x" * 20_000])
def test_bad_queries_are_refused(built_index, query):
    with pytest.raises(InputError):
        built_index.search(query)


def test_incremental_update_embeds_only_what_changed(tmp_path, write_corpus):
    docs = write_corpus(tmp_path / "docs")
    directory = tmp_path / "index"
    first = build_index([docs], directory, show_progress=False)
    assert first.added == 6 and first.embedded == first.passages

    (docs / "animals.txt").write_text("Horses can sleep standing up.")
    (docs / "notes" / "space.html").unlink()
    (docs / "new.md").write_text("# New\n\nA brand new document about tea.")
    report = build_index(None, directory, show_progress=False)  # re-scans the recorded roots
    assert (report.added, report.changed, report.removed, report.unchanged) == (1, 1, 1, 4)
    assert report.embedded == 2 and report.reused == report.passages - 2

    idx = Index.load(directory)
    assert "space.html" not in {s.rsplit("/", 1)[-1] for s in (p.source for p in idx.passages)}
    assert sources(idx.search("horses sleeping", k=1, mode="bm25")) == ["animals.txt"]
    assert idx.search("Cats carnivorous", k=3, mode="bm25") == []
    # Reused vectors are the same as freshly computed ones.
    fresh = Index.build([docs], tmp_path / "fresh", show_progress=False)
    a = {p.passage_id: v for p, v in zip(idx.passages, np.asarray(idx.dense.vectors))}
    b = {p.passage_id: v for p, v in zip(fresh.passages, np.asarray(fresh.dense.vectors))}
    assert a.keys() == b.keys()
    for key in a:  # equal up to the encoder's precision (bfloat16 on some CPUs)
        assert float(a[key] @ b[key]) > 0.99


def test_failed_build_leaves_the_old_index_untouched(tmp_path, monkeypatch, write_corpus):
    docs = write_corpus(tmp_path / "docs")
    directory = tmp_path / "index"
    build_index([docs], directory, show_progress=False)
    before = Index.load(directory).search("largest planet", k=3)

    def files():
        return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}

    files_before = files()

    (docs / "extra.txt").write_text("More text that triggers a rebuild.")
    from rag_qa.retrieval.dense import DenseRetriever

    def fail(self, folder):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(DenseRetriever, "save", fail)
    with pytest.raises(OSError, match="No space left"):
        build_index([docs], directory, show_progress=False)
    assert files() == files_before  # byte for byte, and no file added (no temporary left behind)
    assert not list(directory.glob(".tmp-*"))
    assert Index.load(directory).search("largest planet", k=3) == before


def test_a_second_writer_is_refused_while_the_lock_is_held(tmp_path, write_corpus):
    docs = write_corpus(tmp_path / "docs")
    with storage.WriteLock(tmp_path / "index"):
        with pytest.raises(IndexLockedError, match="another `ragqa index`"):
            build_index([docs], tmp_path / "index", show_progress=False)


def test_missing_index(tmp_path):
    with pytest.raises(IndexMissingError, match="ragqa index"):
        Index.load(tmp_path / "none")


def test_corrupt_file_is_named(built_index, tmp_path):
    """Loading checks sizes and counts (fast); a flipped byte is named by the full check, `ragqa info --verify`."""
    from click.testing import CliRunner

    from rag_qa.cli import cli

    copy = tmp_path / "copy"
    shutil.copytree(built_index.directory, copy)
    folder = storage.data_dir(copy, storage.read_manifest(copy))
    target = folder / "embeddings.npy"
    original = target.read_bytes()
    data = bytearray(original)
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    loaded = Index.load(copy)
    with pytest.raises(IndexCorruptError, match="embeddings.npy fails its checksum"):
        loaded.verify()
    result = CliRunner().invoke(cli, ["info", "--verify", "--index-dir", str(copy)])
    assert result.exit_code == 1 and "embeddings.npy fails its checksum" in result.output
    assert len(result.output.strip().splitlines()) == 1
    target.write_bytes(original)
    result = CliRunner().invoke(cli, ["info", "--verify", "--index-dir", str(copy)])
    assert result.exit_code == 0 and "every checksum matches" in result.output
    assert Index.load(copy).verify() == sum(f["bytes"] for f in loaded.manifest["files"].values())
    (folder / "passages.jsonl").write_text("")
    with pytest.raises(IndexCorruptError, match="passages.jsonl has 0 bytes"):
        Index.load(copy)


def test_passage_offsets_that_do_not_fit_the_file_are_refused_on_load(built_index, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(built_index.directory, copy)
    folder = storage.data_dir(copy, storage.read_manifest(copy))
    offsets = np.load(folder / "passages.offsets.npy")
    np.save(folder / "passages.offsets.npy", np.concatenate([[0], offsets[2:], [offsets[-1]]]))  # same size
    with pytest.raises(IndexCorruptError, match="could not be read.*offsets.*rebuild it"):
        Index.load(copy)


def test_passages_are_read_in_place(built_index, tmp_path):
    store = Index.load(built_index.directory).passages
    first, last = store[0], store[-1]
    assert list(store) == list(built_index.passages) and store[1:3] == [store[1], store[2]]
    assert store.get(last.passage_id) == last and store.get(first.passage_id) == first
    assert store.get("no-such-passage") is None and store.get("x" * 100) is None
    with pytest.raises(IndexError):
        store[len(store)]
    # an index written before the offsets and sources arrays is read by scanning its passages once
    copy = tmp_path / "copy"
    shutil.copytree(built_index.directory, copy)
    manifest = storage.read_manifest(copy)
    folder = storage.data_dir(copy, manifest)
    for name in ("passages.offsets.npy", "passages.sources.npy", "sources.json", "passages.ids.npy"):
        (folder / name).unlink()
        del manifest["files"][name]
    manifest["sha256"] = storage.manifest_sha256(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    old = Index.load(copy)
    assert list(old.passages) == list(store) and old.passage(last.passage_id) == last
    hits = old.search("dogs wolves", k=3, source="*animals.txt", mode="bm25")
    assert hits and all(h.passage.source.endswith("animals.txt") for h in hits)


def test_newer_format_is_refused(built_index, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(built_index.directory, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = storage.FORMAT_VERSION + 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatchError, match="upgrade ragqa"):
        Index.load(copy)


def test_other_encoder_is_refused_for_dense_search(built_index, tiny_encoder):
    idx = Index.load(built_index.directory, encoder=tiny_encoder)
    assert idx.search("planet", mode="bm25")  # BM25 does not need the encoder
    with pytest.raises(IndexMismatchError, match="ragqa index --encoder"):
        idx.search("planet", mode="dense")


def test_index_built_with_another_encoder(tmp_path, tiny_encoder, write_corpus):
    docs = write_corpus(tmp_path / "docs")
    idx = Index.build(
        [docs],
        tmp_path / "index",
        config=IndexConfig().replace(dense={"encoder": str(tiny_encoder)}),
        show_progress=False,
    )
    assert idx.manifest["encoder"]["dimension"] == 32 and not idx.manifest["encoder"]["default"]
    assert len(idx.search("planet", mode="dense", k=2)) == 2
    report = build_index([docs], tmp_path / "index", config=IndexConfig(), show_progress=False)
    assert report.reused == 0 and "encoder changed" in report.summary()


def test_refuses_to_build_into_a_foreign_folder(tmp_path, write_corpus):
    docs = write_corpus(tmp_path / "docs")
    with pytest.raises(InputError, match="not empty and holds no ragqa index"):
        build_index([docs], docs, show_progress=False)


def test_approximate_index_above_the_threshold(tmp_path, write_corpus):
    docs = write_corpus(tmp_path / "docs")
    config = IndexConfig().replace(dense={"exact_threshold": 2, "faiss_factory": "HNSW16,Flat"})
    idx = Index.build([docs], tmp_path / "index", config=config, show_progress=False)
    assert idx.manifest["faiss"]["type"] != "Flat"
    assert sources(idx.search("Which planet is the largest?", k=1, mode="dense")) == ["space.html"]
    # loaded from disk (graph and vectors mapped from the file): the same index, the same hits
    loaded = Index.load(tmp_path / "index")
    assert type(loaded.dense.index) is type(idx.dense.index)
    for question in ("Which planet is the largest?", "How do I install it?"):
        built, again = idx.search(question, k=3, mode="dense"), loaded.search(question, k=3, mode="dense")
        assert [h.passage.passage_id for h in again] == [h.passage.passage_id for h in built]
        assert [h.score for h in again] == pytest.approx([h.score for h in built], abs=1e-6)


def test_the_section_heading_path_is_embedded_after_the_title():
    from rag_qa.retrieval.builder import _embed_text
    from rag_qa.types import Passage

    def passage(**metadata):
        return Passage("p", "d", "guide.md", "Run make.", 0, 9, title="Guide", metadata=metadata)

    assert (
        _embed_text(passage(section="Installing > From source"), True) == "Guide\nInstalling > From source\nRun make."
    )
    assert _embed_text(passage(), True) == "Guide\nRun make."  # no section: as before
    assert _embed_text(passage(section="Guide"), True) == "Guide\nRun make."  # the title is not said twice
    assert _embed_text(passage(section="Installing"), False) == "Run make."


@pytest.mark.slow
def test_bm25_finds_a_passage_by_the_words_of_its_section(tmp_path):
    descale = " ".join(f"Descale the machine in month {i} with a cup of citric acid." for i in range(12))
    wipe = " ".join(f"Wipe the counter on day {i} with a damp cloth and soap." for i in range(40))
    (tmp_path / "manual.md").write_text(
        f"# Manual\n\n## Troubleshooting\n\n### Espresso\n\n{descale}\n\n## Cleaning\n\n{wipe}\n"
    )
    index = Index.build([tmp_path / "manual.md"], tmp_path / "index", show_progress=False)
    assert len(index) > 1
    hits = index.search("espresso troubleshooting", k=1, mode="bm25")  # words only in the heading path
    assert hits and hits[0].passage.metadata["section"] == "Manual > Troubleshooting > Espresso"
    assert "Descale" in hits[0].passage.text


def test_a_faiss_that_cannot_map_an_index_in_place_falls_back_to_reading_it(tmp_path, monkeypatch):
    import faiss
    import numpy as np

    from rag_qa.retrieval import dense

    vectors = np.random.default_rng(0).standard_normal((300, 16)).astype("float32")
    index = faiss.index_factory(16, "HNSW8,Flat", faiss.METRIC_INNER_PRODUCT)
    index.add(vectors)
    path = tmp_path / "dense.faiss"
    faiss.write_index(index, str(path))
    expected = index.search(vectors[:5], 3)[1]
    assert (dense._read_mapped(path).search(vectors[:5], 3)[1] == expected).all()

    real, flags = faiss.read_index, []

    def read_index(name, flag=0):
        flags.append(flag)
        if flag:  # as a FAISS would that maps nothing of this index
            raise RuntimeError("cannot map")
        return real(name, flag)

    monkeypatch.setattr(faiss, "read_index", read_index)
    assert (dense._read_mapped(path).search(vectors[:5], 3)[1] == expected).all()
    assert flags[0] == faiss.IO_FLAG_MMAP_IFC and flags[-1] == 0  # mapped in place first, read whole last
