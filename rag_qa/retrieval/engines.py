"""Where a build's heavy work runs: in this process, or on Ray.

A build reads and chunks files, embeds passages and counts BM25 terms. The
local engine does each in this process; :class:`RayEngine` spreads them over
a Ray cluster (a local one started for the build when no address is given):
files are read and chunked by parallel tasks, passages are embedded by
``map_batches`` on a pool of actors that each load the encoder once, and
BM25 term counts are taken per shard of passages and merged (document
frequencies summed). Everything else (what is reused, the manifest, the
checksums, the atomic swap) stays in :func:`rag_qa.retrieval.builder.build_index`,
so both engines write the same index: the same passages, the same BM25
arrays, embeddings equal up to floating-point noise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from rag_qa.config import BM25Config, ChunkingConfig
from rag_qa.errors import InputError
from rag_qa.ingest import IngestReport, chunk_document, iter_file_documents
from rag_qa.ingest.bounded import ReadLimits
from rag_qa.types import Passage

logger = logging.getLogger(__name__)

ENGINES = ("local", "ray")

# (doc_id, {"source", "sha256"}) of each document of a file, its passages, the file's sha256
FileReading = tuple[list[tuple[str, dict[str, str]]], list[Passage], "str | None"]


def read_one(file: Path, ingest: IngestReport, limits: ReadLimits, source_root: str, chunking: ChunkingConfig):
    """The documents and passages of one file (see :data:`FileReading`)."""
    from rag_qa.retrieval.builder import _doc_hash, _file_sha256

    docs, passages = [], []
    for doc in iter_file_documents(file, ingest, limits=limits, source_root=source_root):
        docs.append((doc.doc_id, {"source": doc.source, "sha256": _doc_hash(doc)}))
        passages.extend(chunk_document(doc, chunking))
    return docs, passages, (_file_sha256(file) if docs else None)


class LocalEngine:
    """This process does the work."""

    name = "local"

    def read(
        self,
        files: Sequence[Path],
        ingest: IngestReport,
        limits: ReadLimits,
        source_root: str,
        chunking: ChunkingConfig,
    ) -> Iterator[FileReading]:
        """What each of ``files`` holds, in order, as it is read."""
        for file in files:
            yield read_one(file, ingest, limits, source_root, chunking)

    def encode(self, encoder, texts: list[str], show_progress: bool) -> np.ndarray:
        from rag_qa.retrieval.builder import _encode_with_progress

        return _encode_with_progress(encoder, texts, show_progress)

    def bm25(self, texts: Sequence[str], config: BM25Config):
        from rag_qa.retrieval.bm25 import BM25Retriever

        return BM25Retriever.build(texts, config)

    def close(self) -> None:
        pass


# --------------------------------------------------------------------- Ray
@dataclass
class _Logged:
    """A log record made in a Ray worker, emitted again in the build's process."""

    name: str
    level: int
    message: str


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[_Logged] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(_Logged(record.name, record.levelno, record.getMessage()))


def _captured(fn, *args):
    """``fn(*args)`` with ragqa's log records kept (and returned) instead of printed in the worker."""
    log = logging.getLogger("rag_qa")
    capture, propagate, level = _Capture(), log.propagate, log.level
    log.addHandler(capture)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        return fn(*args), capture.records
    finally:
        log.removeHandler(capture)
        log.propagate, log.level = propagate, level


def _read_files(files: list[Path], limits: ReadLimits, source_root: str, chunking: ChunkingConfig):
    """A Ray task: read and chunk ``files``; their readings, the skips and the log records."""

    def work():
        ingest = IngestReport()
        return [read_one(f, ingest, limits, source_root, chunking) for f in files], ingest

    (readings, ingest), records = _captured(work)
    return readings, ingest, records


def _count_terms(texts: list[str], stopwords: Any):
    """A Ray task: the BM25 term counts of one shard of passages."""
    from rag_qa.retrieval.bm25 import shard_counts
    from rag_qa.retrieval.tokenize import tokenize

    return shard_counts([tokenize(t, stopwords) for t in texts])


class _EncodeActor:
    """A Ray Data actor: loads the encoder once, then embeds batches of texts."""

    def __init__(self, path: str, device: str | None, batch_size: int, precision: str):
        from rag_qa.retrieval.encoder import Encoder

        self.encoder = Encoder(path, device=device, batch_size=batch_size, precision=precision, runtime="torch")
        self.encoder.warm_up()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.encoder.encode([str(t) for t in batch["text"]])
        return {"row": batch["row"], "vector": np.asarray(vectors, dtype=np.float32)}


def _ray():
    try:
        import ray
    except ImportError:
        raise InputError(
            "--engine ray needs Ray: pip install 'ragqa[ray]' (or build with the default local engine)"
        ) from None
    return ray


class RayEngine:
    """Reading, embedding and BM25 counting on Ray.

    ``address`` joins a running cluster (``"auto"``: the one this machine
    belongs to); without it a local Ray is started for the build and stopped
    after it. ``workers`` is how many encoder actors embed (default: one
    per GPU asked for, else one per two CPUs); each gets ``gpus_per_worker``
    GPUs and an equal share of the CPUs. Every Ray worker must be able to
    import ragqa and read the files and the encoder folder at the same paths.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, gpus_per_worker: float = 0):
        if workers is not None and workers < 1:
            raise InputError(f"--workers must be 1 or more, got {workers}")
        if gpus_per_worker < 0:
            raise InputError(f"--gpus-per-worker must be 0 or more, got {gpus_per_worker}")
        self.ray = _ray()
        self.address, self.asked_workers, self.gpus_per_worker = address, workers, gpus_per_worker
        self.started = False
        self.cpus = self.workers = 0

    def _start(self) -> None:
        """Join the cluster, or start a local Ray, on first use (an up-to-date index needs neither)."""
        if self.cpus:
            return
        ray = self.ray
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, include_dashboard=False, logging_level=logging.ERROR)
            except ConnectionError as exc:
                raise InputError(
                    f"no Ray cluster at {self.address}: {exc} (start one with `ray start --head`, "
                    "or leave out --ray-address to run a local Ray for this build)"
                ) from None
            self.started = True
        resources = ray.cluster_resources()
        cpus = max(1, int(resources.get("CPU", 1)))
        gpus = int(resources.get("GPU", 0))
        if self.gpus_per_worker and gpus < self.gpus_per_worker:
            self.close()
            raise InputError(
                f"--gpus-per-worker {self.gpus_per_worker:g} but the Ray cluster has {gpus} GPUs: "
                "leave it out to embed on CPUs"
            )
        default = int(gpus // self.gpus_per_worker) if self.gpus_per_worker else max(1, cpus // 2)
        self.cpus, self.workers = cpus, self.asked_workers or default
        logger.info("Ray: %d CPUs, %d GPUs; %d encoder workers", cpus, gpus, self.workers)

    # ---------------------------------------------------------- reading
    def read(
        self,
        files: Sequence[Path],
        ingest: IngestReport,
        limits: ReadLimits,
        source_root: str,
        chunking: ChunkingConfig,
    ) -> Iterator[FileReading]:
        """Files read and chunked by parallel Ray tasks (a few tasks per CPU); yielded in order."""
        if not files:
            return
        self._start()
        task = self.ray.remote(_read_files)
        per_task = max(1, min(64, -(-len(files) // (4 * self.cpus))))
        refs = [
            task.remote(list(files[i : i + per_task]), limits, source_root, chunking)
            for i in range(0, len(files), per_task)
        ]
        for ref in refs:
            readings, part, records = self.ray.get(ref)
            for record in records:
                logging.getLogger(record.name).log(record.level, "%s", record.message)
            _merge(ingest, part)
            yield from readings

    # ---------------------------------------------------------- embedding
    def encode(self, encoder, texts: list[str], show_progress: bool) -> np.ndarray:
        """Vectors of ``texts`` from a pool of encoder actors, longest texts first (little padding)."""
        import ray.data

        self._start()
        from tqdm.auto import tqdm

        # ragqa's bar, not Ray Data's (whose log lines, off a terminal, come every few seconds)
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        step = encoder.batch_size * 8
        items = [{"row": i, "text": texts[i]} for i in order]
        blocks = min(len(items), max(2 * self.workers, -(-len(items) // step)))  # work for every worker
        dataset = ray.data.from_items(items, override_num_blocks=max(1, blocks))
        settings = {
            "path": str(encoder.path),
            "device": "cuda" if self.gpus_per_worker else encoder.device,
            "batch_size": encoder.batch_size,
            "precision": encoder.precision,
        }

        class Encode(_EncodeActor):  # settings bound here: an actor with arguments in the object store can't restart
            def __init__(self):
                super().__init__(**settings)

        embedded = dataset.map_batches(
            Encode,
            batch_size=step,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.workers),
            num_cpus=max(1, self.cpus // self.workers) if not self.gpus_per_worker else 1,
            num_gpus=self.gpus_per_worker or None,
        )
        out = np.zeros((len(texts), encoder.info().dimension), dtype=np.float32)
        done = np.zeros(len(texts), dtype=bool)
        with tqdm(total=len(texts), desc="Embedding (Ray)", unit="passage", disable=not show_progress) as bar:
            for batch in embedded.iter_batches(batch_size=None, batch_format="numpy"):
                out[batch["row"]] = batch["vector"]
                done[batch["row"]] = True
                bar.update(len(batch["row"]))
        if not done.all():
            raise RuntimeError(f"Ray returned {int(done.sum())} of {len(texts)} passage vectors")
        return out

    # ---------------------------------------------------------- BM25
    def bm25(self, texts: Sequence[str], config: BM25Config):
        """BM25 from term counts taken per shard of passages by Ray tasks, merged in order."""
        from rag_qa.retrieval.bm25 import BM25Retriever

        self._start()
        task = self.ray.remote(_count_terms)
        per_shard = max(1, -(-len(texts) // (2 * self.cpus)))
        refs = [task.remote(list(texts[i : i + per_shard]), config.stopwords) for i in range(0, len(texts), per_shard)]
        return BM25Retriever.from_shards([self.ray.get(ref) for ref in refs], config)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False


def _merge(into: IngestReport, part: IngestReport) -> None:
    into.read += part.read
    into.skipped.extend(part.skipped)
    into.ignored += part.ignored
    into.reasons.update(part.reasons)
    into.types.update(part.types)


def make_engine(
    engine: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0,
):
    """The engine a build runs on: ``"local"`` (this process) or ``"ray"``."""
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if engine == "local":
        given = [
            name
            for name, value in (("--ray-address", ray_address), ("--workers", workers), ("--gpus-per-worker", None))
            if value is not None
        ]
        if given or gpus_per_worker:
            raise InputError(f"{', '.join(given or ['--gpus-per-worker'])} applies to --engine ray")
        return LocalEngine()
    return RayEngine(ray_address, workers, gpus_per_worker)


__all__: Iterable[str] = ["ENGINES", "LocalEngine", "RayEngine", "make_engine", "read_one"]
