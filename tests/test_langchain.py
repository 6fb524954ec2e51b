import json

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from rag_qa.integrations.langchain import RagQARetriever


def test_retriever_returns_documents_with_source_and_offsets(built_index, corpus_dir):
    retriever = RagQARetriever(index_dir=str(built_index.directory), k=2)
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke("Which planet is the largest?")
    assert len(docs) == 2 and all(isinstance(d, Document) for d in docs)
    top = docs[0]
    assert top.metadata["source"].endswith("space.html")
    assert top.metadata["title"] == "The planets"
    assert top.metadata["rank"] == 1 and top.metadata["score"] > docs[1].metadata["score"]
    assert "Jupiter is the largest planet" in top.page_content
    assert {"start", "end", "passage_id", "bm25_score", "dense_score"} <= set(top.metadata)


def test_offsets_recover_the_text_from_the_file(built_index, corpus_dir):
    # plain text: offsets into the file; Markdown: into its extracted text, with the file's line
    retriever = RagQARetriever.from_index(built_index, k=1, mode="bm25")
    (doc,) = retriever.invoke("domesticated wolves")
    text = (corpus_dir / "animals.txt").read_text()
    assert text[doc.metadata["start"] : doc.metadata["end"]] == doc.page_content
    (doc,) = retriever.invoke("manifest checksum")
    assert doc.metadata["source"].endswith("guide.md") and "# Installing" not in doc.page_content
    lines = (corpus_dir / "guide.md").read_text().split("\n")
    assert doc.page_content.split("\n")[0] in lines[doc.metadata["line"] - 1]


def test_source_filter_is_passed_through(built_index):
    docs = RagQARetriever.from_index(built_index, k=5, source="*.jsonl").invoke("anything about rivers")
    assert docs and {d.metadata["source"].rsplit("/", 1)[-1] for d in docs} == {"records.jsonl"}


def test_record_metadata_never_overwrites_ragqa_fields(tmp_path):
    from rag_qa import Index

    docs = tmp_path / "docs"
    docs.mkdir()
    record = {
        "id": "x",
        "text": "The lighthouse keeper lit the lamp at dusk.",
        "metadata": {"score": "five stars", "start": -1, "source": "elsewhere", "topic": "sea"},
    }
    others = [
        {"id": "y", "text": "Bread rises in a warm oven."},
        {"id": "z", "text": "Trains leave the station on time."},
    ]
    (docs / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [record, *others]))
    index = Index.build([docs], tmp_path / "index", show_progress=False)
    (doc,) = RagQARetriever.from_index(index, k=1, mode="bm25").invoke("lighthouse keeper lamp")
    assert isinstance(doc.metadata["score"], float) and doc.metadata["start"] == 0
    assert doc.metadata["source"].endswith("records.jsonl")
    assert doc.metadata["topic"] == "sea"  # the record's own fields are still there
