"""Dense retrieval: a FAISS inner-product index over the passage vectors
(on a GPU when faiss-gpu and CUDA are there)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from rag_qa.config import DenseConfig
from rag_qa.errors import IndexCorruptError
from rag_qa.retrieval.topk import top_k
from rag_qa.runtime import resolve_device

logger = logging.getLogger(__name__)


def build_faiss(vectors: np.ndarray, config: DenseConfig):
    """Exact inner product for small corpora, ``config.faiss_factory`` above the threshold."""
    import faiss

    n, dim = vectors.shape
    if n <= config.exact_threshold:
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.index_factory(dim, config.faiss_factory, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            index.train(vectors)
    if n:
        index.add(vectors)
    return index


def describe_faiss(index) -> str:
    import faiss

    return "Flat" if isinstance(index, faiss.IndexFlat) else type(index).__name__


class DenseRetriever:
    """A FAISS index whose row ``i`` is passage ``i``, plus the stored vectors."""

    def __init__(self, index, vectors: np.ndarray, config: DenseConfig):
        self.config = config
        self.vectors = vectors  # memory-mapped when loaded from disk
        self.index = self._tune(self._maybe_to_gpu(index))

    def _tune(self, index):
        import faiss

        try:
            params = faiss.ParameterSpace()
            if "HNSW" in self.config.faiss_factory:
                params.set_index_parameter(index, "efSearch", self.config.hnsw_ef_search)
            if "IVF" in self.config.faiss_factory:
                params.set_index_parameter(index, "nprobe", self.config.ivf_nprobe)
        except RuntimeError:
            pass  # the parameter does not apply to this index (e.g. Flat)
        return index

    def _maybe_to_gpu(self, index):
        import faiss

        if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
            return index
        if resolve_device(self.config.device) == "cpu":
            return index
        try:
            self._gpu_resources = faiss.StandardGpuResources()
            gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, index)
            logger.info("FAISS index moved to GPU 0")
            return gpu_index
        except RuntimeError as exc:  # e.g. HNSW has no GPU version
            logger.info("FAISS index stays on CPU: %s", exc)
            return index

    @property
    def on_gpu(self) -> bool:
        return type(self.index).__name__.startswith("Gpu")

    def search_batch(
        self, query_vectors: np.ndarray, k: int, mask: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-``k`` rows and cosine scores per query.

        With a ``mask`` the allowed rows are scored exactly against the
        stored vectors, so a filter never hides a match the index would find.
        """
        n = len(self.vectors)
        k = min(k, n)
        if k == 0:
            return [(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)) for _ in query_vectors]
        if mask is not None:
            rows = np.flatnonzero(mask)
            scores = np.asarray(self.vectors[rows], dtype=np.float32) @ query_vectors.T
            out = []
            for j in range(len(query_vectors)):
                idx, vals = top_k(scores[:, j], k)
                out.append((rows[idx], vals))
            return out
        scores, ids = self.index.search(np.ascontiguousarray(query_vectors, dtype=np.float32), k)
        return [(i[i >= 0].astype(np.int64), s[i >= 0]) for s, i in zip(scores, ids)]

    def save(self, directory: Path) -> None:
        import faiss

        index = self.index
        if self.on_gpu:
            index = faiss.index_gpu_to_cpu(index)
        faiss.write_index(index, str(directory / "dense.faiss"))
        target = directory / "embeddings.npy"
        vectors = self.vectors
        if isinstance(vectors, np.memmap) and vectors.filename and Path(vectors.filename) == target.resolve():
            vectors.flush()  # written in place as it was filled
            return
        np.save(target, np.asarray(vectors, dtype=np.float32), allow_pickle=False)

    @classmethod
    def load(cls, directory: Path, config: DenseConfig) -> "DenseRetriever":
        path = directory / "dense.faiss"
        try:
            vectors = np.load(directory / "embeddings.npy", mmap_mode="r", allow_pickle=False)
            index = _read_mapped(path)
        except (RuntimeError, MemoryError, ValueError, OSError) as exc:
            raise IndexCorruptError(
                f"{path} or its embeddings could not be read ({type(exc).__name__}); rebuild the index"
            ) from None
        if index.ntotal != len(vectors) or (len(vectors) and index.d != vectors.shape[1]):
            raise IndexCorruptError(
                f"{path} holds {index.ntotal} vectors of {index.d} dimensions but the index has {vectors.shape}; "
                "rebuild the index"
            )
        return cls(index, vectors, config)


def _read_mapped(path: Path):
    """The FAISS index at ``path``, its vectors and graph mapped from the file
    rather than read into memory where this FAISS can (``IO_FLAG_MMAP_IFC``:
    flat codes, HNSW neighbours, IVF lists), else memory-mapped inverted
    lists only, else read whole. The generation's files never change once
    written, so mapping them is safe."""
    import faiss

    flags = [faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY]
    if hasattr(faiss, "IO_FLAG_MMAP_IFC"):
        flags.insert(0, faiss.IO_FLAG_MMAP_IFC)
    for flag in flags:
        try:
            return faiss.read_index(str(path), flag)
        except RuntimeError:
            continue
    return faiss.read_index(str(path))


__all__ = ["DenseRetriever", "build_faiss", "describe_faiss"]
