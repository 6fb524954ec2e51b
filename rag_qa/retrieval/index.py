"""The :class:`Index`: passages, BM25 and dense retrieval behind one search call."""

from __future__ import annotations

import fnmatch
import logging
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rag_qa.choices import MODES
from rag_qa.config import IndexConfig
from rag_qa.errors import IndexCorruptError, IndexMismatchError, InputError
from rag_qa.models import check_model_dir, check_owned_model_dir
from rag_qa.retrieval import storage
from rag_qa.retrieval.bm25 import BM25Retriever
from rag_qa.retrieval.hybrid import rank_fused, reciprocal_rank_fusion, weighted_fusion
from rag_qa.retrieval.passages import PassageStore
from rag_qa.text import check_query
from rag_qa.types import Passage, ScoredPassage

logger = logging.getLogger(__name__)


class Index:
    """A built index, loaded from its directory.

    Passages, BM25 arrays, the FAISS index and the embeddings are
    memory-mapped when the index is loaded, so loading adds little memory
    whatever the corpus size; the encoder is loaded on the first dense or
    hybrid search, or by :meth:`warm_up`.
    """

    def __init__(
        self,
        directory: Path,
        manifest: dict[str, Any],
        passages: PassageStore,
        bm25: BM25Retriever,
        encoder_path: str | Path | None = None,
    ):
        self.directory = directory
        self.manifest = manifest
        self.passages = passages  # a sequence read in place: passages[i] is parsed when asked for
        self.config = IndexConfig.from_dict(manifest["config"])
        self._bm25 = bm25
        self._encoder_path = encoder_path
        self._encoder = None
        self._dense = None
        self._hold: storage.GenerationHold | None = None  # set by load: keeps builds from removing the files

    # ----------------------------------------------------------------- loading
    @classmethod
    def load(
        cls,
        directory: str | Path = "index",
        encoder: str | Path | None = None,
        verify: bool = True,
        runtime: str | None = None,
    ) -> "Index":
        """Load the index in ``directory``.

        ``encoder`` overrides the encoder recorded in the manifest; it must be
        the same model (same weights) or dense search is refused.
        ``verify`` checks that every file the manifest lists is there with
        its size, and that passages, BM25 rows and vectors agree in number;
        :meth:`verify` (``ragqa info --verify``) also reads every byte
        against the manifest's checksums. ``runtime`` overrides ``dense.runtime`` for encoding queries.
        """
        directory = Path(directory)
        manifest = storage.read_manifest(directory)
        if manifest.get("backend", "builtin") == "milvus":
            from rag_qa.retrieval.milvus import MilvusIndex

            return MilvusIndex.open(directory, manifest, encoder=encoder, verify=verify, runtime=runtime)
        if manifest.get("backend", "builtin") != "builtin":
            raise IndexMismatchError(
                f"index at {directory} has backend {manifest.get('backend')!r}, which this ragqa does not know: "
                f"upgrade ragqa, or {storage.rebuild_hint(directory)}"
            )
        manifest, hold = _read_and_hold(directory, manifest)
        try:
            index = cls._load(directory, manifest, encoder, verify, runtime)
        except BaseException:
            if hold is not None:
                hold.release()
            raise
        index._hold = hold
        return index

    @classmethod
    def _load(
        cls, directory: Path, manifest: dict[str, Any], encoder: str | Path | None, verify: bool, runtime: str | None
    ) -> "Index":
        if verify:
            storage.verify(directory, manifest, full=False)
        folder = storage.data_dir(directory, manifest)
        try:
            passages = PassageStore(folder)
            config = IndexConfig.from_dict(manifest["config"])
            bm25 = BM25Retriever.load(folder / "bm25", config.bm25, mmap=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(
                f"index at {directory} could not be read ({type(exc).__name__}: {exc}); "
                f"{storage.rebuild_hint(directory)}"
            ) from exc
        counted = (manifest.get("counts") or {}).get("passages")
        if len(passages) != bm25.num_docs or (verify and counted != len(passages)):
            raise IndexCorruptError(
                f"index at {directory} has {len(passages)} passages but {bm25.num_docs} BM25 rows "
                f"(the manifest says {counted}); {storage.rebuild_hint(directory)}"
            )
        index = cls(directory, manifest, passages, bm25, encoder_path=encoder)
        if runtime is not None:
            index.config = config.replace(dense={"runtime": runtime})
        # Opened now (memory-mapped), not on the first dense search.
        index.dense  # noqa: B018
        return index

    def verify(self) -> int:
        """Read every file of the index against the manifest's sha256 (what ``ragqa info --verify`` does).

        Raises :class:`~rag_qa.errors.IndexCorruptError` naming the first
        file that differs; returns the bytes checked.
        """
        return storage.verify(self.directory, self.manifest, full=True)

    def passage(self, passage_id: str) -> Passage | None:
        """The passage with ``passage_id``, or None."""
        return self.passages.get(passage_id)

    def close(self) -> None:
        """Let builds remove this index's generation from disk.

        While an :class:`Index` is open, later builds leave the generation
        it was loaded from in place, so it keeps answering; they remove it
        once it is closed (or garbage-collected). Searching after ``close``
        still works on POSIX systems (the files are mapped) but is not
        guaranteed elsewhere.
        """
        hold = getattr(self, "_hold", None)
        if hold is not None:
            hold.release()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def build(
        cls,
        paths: Iterable[str | Path] | None = None,
        directory: str | Path = "index",
        config: IndexConfig | None = None,
        **kwargs: Any,
    ) -> "Index":
        """Build or update the index in ``directory`` and load it (see :func:`build_index`)."""
        from rag_qa.retrieval.builder import build_index

        build_index(paths, directory, config=config, **kwargs)
        return cls.load(directory, verify=False)

    # ------------------------------------------------------------------- dense
    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = load_query_encoder(self.directory, self.manifest, self.config, self._encoder_path)
        return self._encoder

    @property
    def dense(self):
        if self._dense is None:
            from rag_qa.retrieval.dense import DenseRetriever

            self._dense = DenseRetriever.load(storage.data_dir(self.directory, self.manifest), self.config.dense)
        return self._dense

    def warm_up(self) -> "Index":
        """Load the query encoder and the FAISS index now rather than on the first search."""
        self.encoder.warm_up()
        self.dense  # noqa: B018 - loads it
        return self

    # ------------------------------------------------------------------ search
    def __len__(self) -> int:
        return len(self.passages)

    def search(
        self,
        query: str,
        k: int = 10,
        mode: str = "hybrid",
        source: str | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[ScoredPassage]:
        """The ``k`` best passages for ``query``.

        ``mode`` is ``bm25``, ``dense`` or ``hybrid``; ``source`` keeps only
        passages whose source path matches a glob (``docs/*.md``); ``where``
        keeps only passages whose metadata has the given values.
        """
        return self.search_batch([query], k=k, mode=mode, source=source, where=where)[0]

    def search_batch(
        self,
        queries: Sequence[str],
        k: int = 10,
        mode: str = "hybrid",
        source: str | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[list[ScoredPassage]]:
        if mode not in MODES:
            raise InputError(f"unknown search mode {mode!r}: use one of {', '.join(MODES)}")
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        queries = [check_query(q) for q in queries]
        mask = self._mask(source, where)
        if mask is not None and not mask.any():
            return [[] for _ in queries]
        fusion = self.config.fusion
        depth = k if mode != "hybrid" else max(k, fusion.candidates)
        bm25_hits = self._bm25.search_batch(queries, depth, mask) if mode != "dense" else None
        dense_hits = None
        if mode != "bm25":
            vectors = self.encoder.encode(queries)
            dense_hits = self.dense.search_batch(vectors, depth, mask)
        results = []
        for i in range(len(queries)):
            bm = dict(zip(*(a.tolist() for a in bm25_hits[i]))) if bm25_hits else {}
            de = dict(zip(*(a.tolist() for a in dense_hits[i]))) if dense_hits else {}
            if mode == "bm25":
                ranked = list(bm.items())[:k]
            elif mode == "dense":
                ranked = list(de.items())[:k]
            elif fusion.method == "rrf":
                fused = reciprocal_rank_fusion(
                    [list(bm), list(de)], k=fusion.rrf_k, weights=[fusion.bm25_weight, fusion.dense_weight]
                )
                ranked = rank_fused(fused, k)
            else:
                ranked = rank_fused(weighted_fusion([bm, de], [fusion.bm25_weight, fusion.dense_weight]), k)
            results.append(
                [
                    ScoredPassage(self.passages[row], float(score), rank, bm.get(row), de.get(row))
                    for rank, (row, score) in enumerate(ranked, start=1)
                ]
            )
        return results

    def _mask(self, source: str | None, where: Mapping[str, Any] | None) -> np.ndarray | None:
        if not source and not where:
            return None
        mask = np.ones(len(self.passages), dtype=bool)
        if source:
            mask &= self.passages.source_mask(lambda s: fnmatch.fnmatchcase(s, source))
        if where:  # metadata is read passage by passage
            candidates = self.passages if mask.all() else (self.passages[int(i)] for i in np.flatnonzero(mask))
            rows = np.flatnonzero(mask)
            keep = np.fromiter(
                (all(p.metadata.get(key) == value for key, value in where.items()) for p in candidates),
                dtype=bool,
                count=len(rows),
            )
            mask[:] = False
            mask[rows[keep]] = True
        return mask

    # -------------------------------------------------------------------- info
    def info(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "index_dir": str(self.directory),
            "ragqa_version": m.get("ragqa_version"),
            "format_version": m.get("format_version"),
            "created_at": m.get("created_at"),
            "documents": m["counts"]["documents"],
            "passages": m["counts"]["passages"],
            "vocabulary": m["counts"]["vocabulary"],
            "roots": m.get("roots", []),
            "source_root": m.get("source_root"),
            "encoder": m["encoder"],
            "faiss": m["faiss"],
            "chunking": m["config"]["chunking"],
            "bm25": m["config"]["bm25"],
            "fusion": m["config"]["fusion"],
            "excludes": m.get("excludes", []),
            "bytes": sum(f["bytes"] for f in m["files"].values()),
            "disk_bytes": sum(f.stat().st_size for f in self.directory.rglob("*") if f.is_file()),
        }


def load_query_encoder(directory: Path, manifest: dict[str, Any], config: IndexConfig, encoder_path=None):
    """The encoder for an index's queries: ``encoder_path`` if given, else the one
    its manifest records, checked to be the model that embedded the passages."""
    from rag_qa.retrieval.encoder import Encoder, check_encoder_matches

    recorded = manifest["encoder"]
    dense = config.dense
    path = encoder_path if encoder_path is not None else (None if recorded.get("default") else recorded["path"])
    if path is not None and encoder_path is None:
        # a folder named by the index, not by the user: anyone who can write the index chose it
        check_model_dir(path, kind="encoder")
        check_owned_model_dir(
            path,
            f"the index {directory} names it as its encoder; if you trust it, copy it to a folder of "
            "your own and run `ragqa index --encoder COPY`, or pass encoder=COPY to Index.load",
        )
    encoder = Encoder(
        path, device=dense.device, batch_size=dense.batch_size, precision=dense.precision, runtime=dense.runtime
    )
    check_encoder_matches(recorded, encoder)
    return encoder


def _read_and_hold(directory: Path, manifest: dict[str, Any]) -> tuple[dict[str, Any], storage.GenerationHold | None]:
    """The live manifest (``manifest``, as just read), and a hold on the generation it names. A build may
    replace and remove that generation between the two steps: then the
    manifest is read again (a few times; the last try goes on unheld, and
    loading says what is missing)."""
    for _ in range(5):
        hold = storage.hold_generation(directory, manifest)
        if hold is not None:
            return manifest, hold
        manifest = storage.read_manifest(directory)
    return manifest, None
