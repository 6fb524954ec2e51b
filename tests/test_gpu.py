"""GPU paths; skipped on machines without CUDA."""

import pytest

pytestmark = pytest.mark.gpu


def test_encoder_and_faiss_use_the_gpu(tmp_path, write_corpus):
    import faiss

    from rag_qa import Index

    idx = Index.build([write_corpus(tmp_path / "docs")], tmp_path / "index", show_progress=False)
    hits = idx.search("Which planet is the largest?", k=1, mode="dense")
    assert hits[0].passage.source.endswith("space.html")
    assert str(idx.encoder.model.device).startswith("cuda")
    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        assert idx.dense.on_gpu
    # An index built on the GPU loads and answers the same on the CPU.
    cpu = Index.load(idx.directory)
    cpu.config = cpu.config.replace(dense={"device": "cpu"})
    assert (
        cpu.search("Which planet is the largest?", k=1, mode="dense")[0].passage.passage_id
        == hits[0].passage.passage_id
    )
