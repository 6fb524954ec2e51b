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
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from rag_qa.config import BM25Config, ChunkingConfig
from rag_qa.errors import InputError, RagQAError
from rag_qa.ingest import IngestReport, chunk_document, iter_file_documents
from rag_qa.ingest.bounded import ReadLimits
from rag_qa.types import Passage

logger = logging.getLogger(__name__)

ENGINES = ("local", "ray")
BM25_SHARD = 20_000  # passages counted at a time by a local build

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

    def encode(self, encoder, texts: Sequence[str], show_progress: bool, out: np.ndarray | None = None) -> np.ndarray:
        from rag_qa.retrieval.builder import _encode_with_progress

        return _encode_with_progress(encoder, texts, show_progress, out=out)

    def bm25(self, texts: Sequence[str], config: BM25Config):
        """BM25 counted a shard of passages at a time, so only one shard's tokens are held."""
        from rag_qa.retrieval.bm25 import BM25Retriever, shard_counts
        from rag_qa.retrieval.tokenize import tokenize

        shards = [
            shard_counts([tokenize(t, config.stopwords) for t in texts[i : i + BM25_SHARD]])
            for i in range(0, len(texts), BM25_SHARD)
        ]
        return BM25Retriever.from_shards(shards, config)

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

    from rag_qa.ingest import bounded

    if "forkserver" in __import__("multiprocessing").get_all_start_methods():
        bounded.START_METHOD = "forkserver"  # a Ray worker runs threads: forking it can deadlock

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

    def __init__(self, path: str, device: str | None, batch_size: int, precision: str, runtime: str):
        from rag_qa.retrieval.encoder import Encoder

        self.encoder = Encoder(path, device=device, batch_size=batch_size, precision=precision, runtime=runtime)
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
    belongs to); without it ``ray.init()`` joins the cluster ``RAY_ADDRESS``
    or ``ray start`` on this machine names, else starts a local Ray for the
    build and stops it after. A Ray already initialised in this process is
    used as it is. ``workers`` is how many encoder actors embed (default: one
    per GPU, else one per two CPUs); each gets ``gpus_per_worker`` GPUs
    (default: 1 when the cluster has GPUs, else 0: CPUs) and an equal share of
    the CPUs. Every Ray worker must be able to import ragqa and read the files
    and the encoder folder at the same paths.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, gpus_per_worker: float | None = None):
        if workers is not None and workers < 1:
            raise InputError(f"--workers must be 1 or more, got {workers}")
        if gpus_per_worker is not None and gpus_per_worker < 0:
            raise InputError(f"--gpus-per-worker must be 0 or more, got {gpus_per_worker}")
        self.ray = _ray()
        self.address, self.asked_workers, self.asked_gpus = address, workers, gpus_per_worker
        self.started = False
        self.cpus = self.workers = 0
        self.gpus_per_worker = 0.0

    def _start(self) -> None:
        """Join the cluster, or start a local Ray, on first use (an up-to-date index needs neither)."""
        if self.cpus:
            return
        ray = self.ray
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, include_dashboard=False, logging_level=logging.ERROR)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = f"at {self.address}" if self.address else "here"
                raise InputError(
                    f"Ray could not start or connect {where}: {_first_line(exc)} (start a cluster with "
                    "`ray start --head`, or leave out --ray-address to run a local Ray for this build)"
                ) from None
            self.started = True
        resources = ray.cluster_resources()
        cpus = max(1, int(resources.get("CPU", 1)))
        gpus = float(resources.get("GPU", 0))
        # GPUs when the cluster has them, unless told otherwise
        per = self.asked_gpus if self.asked_gpus is not None else (1.0 if gpus >= 1 else 0.0)
        workers = self.asked_workers or (int(gpus // per) if per else max(1, cpus // 2))
        if per and workers * per > gpus:
            self.close()
            raise InputError(
                f"{workers} workers x {per:g} GPUs each needs {workers * per:g} GPUs, but the Ray cluster has "
                f"{gpus:g}: ask for fewer --workers or --gpus-per-worker 0 to embed on CPUs"
            )
        if workers > cpus:
            self.close()
            raise InputError(f"--workers {workers} but the Ray cluster has {cpus} CPUs: ask for {cpus} or fewer")
        self.cpus, self.workers, self.gpus_per_worker = cpus, workers, per
        logger.info("Ray: %d CPUs, %g GPUs; %d encoder workers, %g GPUs each", cpus, gpus, workers, per)

    def _get(self, ref):
        """``ray.get``, with a failure inside Ray as one ragqa error rather than a remote traceback."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, RagQAError):
                raise cause from None
            what = type(cause).__name__ if cause is not None else type(exc).__name__
            raise RagQAError(
                f"a Ray worker failed ({what}: {_first_line(cause or exc)}); "
                "every node needs ragqa installed and the documents and encoder at the same paths"
            ) from None

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
        chunks = (list(files[i : i + per_task]) for i in range(0, len(files), per_task))
        # A bounded window of tasks in flight, each result dropped once taken: the corpus is not
        # held twice (in Ray's object store and here) while it is read.
        pending: deque = deque()
        for chunk in chunks:
            pending.append(task.remote(chunk, limits, source_root, chunking))
            if len(pending) >= 2 * self.cpus:
                break
        while pending:
            readings, part, records = self._get(pending.popleft())
            following = next(chunks, None)
            if following is not None:
                pending.append(task.remote(following, limits, source_root, chunking))
            for record in records:
                logging.getLogger(record.name).log(record.level, "%s", record.message)
            _merge(ingest, part)
            yield from readings

    # ---------------------------------------------------------- embedding
    def encode(self, encoder, texts: Sequence[str], show_progress: bool, out: np.ndarray | None = None) -> np.ndarray:
        """Vectors of ``texts`` from a pool of encoder actors, longest texts first (little padding)."""
        import ray.data

        self._start()
        # ragqa's bar, not Ray Data's (whose log lines, off a terminal, come every few seconds)
        context, data_log = ray.data.DataContext.get_current(), logging.getLogger("ray.data")
        before = context.enable_progress_bars, data_log.level
        context.enable_progress_bars = False
        data_log.setLevel(logging.ERROR)
        try:
            return self._encode(encoder, texts, show_progress, out)
        finally:
            context.enable_progress_bars = before[0]
            data_log.setLevel(before[1])

    def _encode(self, encoder, texts: Sequence[str], show_progress: bool, out: np.ndarray | None) -> np.ndarray:
        import ray.data
        from tqdm.auto import tqdm

        from rag_qa.retrieval.builder import longest_first

        order = longest_first(texts)
        step = encoder.batch_size * 8
        items = [{"row": i, "text": texts[i]} for i in order]
        blocks = min(len(items), max(2 * self.workers, -(-len(items) // step)))  # work for every worker
        dataset = ray.data.from_items(items, override_num_blocks=max(1, blocks))
        settings = {
            "path": str(encoder.path),
            "device": "cuda" if self.gpus_per_worker else "cpu",
            "batch_size": encoder.batch_size,
            "precision": encoder.precision,
            "runtime": encoder.runtime,
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
        if out is None:
            out = np.zeros((len(texts), encoder.info().dimension), dtype=np.float32)
        done = np.zeros(len(texts), dtype=bool)
        with tqdm(total=len(texts), desc="Embedding (Ray)", unit="passage", disable=not show_progress) as bar:
            try:
                for batch in embedded.iter_batches(batch_size=None, batch_format="numpy"):
                    out[batch["row"]] = batch["vector"]
                    done[batch["row"]] = True
                    bar.update(len(batch["row"]))
            except self.ray.exceptions.RayError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, RagQAError):
                    raise cause from None
                raise RagQAError(f"embedding on Ray failed: {_first_line(cause or exc)}") from None
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
        return BM25Retriever.from_shards([self._get(ref) for ref in refs], config)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
    gpus_per_worker: float | None = None,
):
    """The engine a build runs on: ``"local"`` (this process) or ``"ray"``."""
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if engine == "local":
        given = [
            name
            for name, value in (
                ("--ray-address", ray_address),
                ("--workers", workers),
                ("--gpus-per-worker", gpus_per_worker),
            )
            if value is not None
        ]
        if given:
            raise InputError(f"{', '.join(given)} applies to --engine ray")
        return LocalEngine()
    return RayEngine(ray_address, workers, gpus_per_worker)


__all__: Iterable[str] = ["ENGINES", "LocalEngine", "RayEngine", "make_engine", "read_one"]
