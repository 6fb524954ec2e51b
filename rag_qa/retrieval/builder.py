"""Building and incrementally updating an index directory."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from rag_qa.config import SUPPORTED_EXTENSIONS, IndexConfig
from rag_qa.errors import IndexCorruptError, IndexMissingError, InputError, RagQAError
from rag_qa.ingest import IngestReport, iter_files
from rag_qa.ingest.bounded import ReadLimits
from rag_qa.retrieval import storage
from rag_qa.retrieval.passages import PassageStore, PassageWriter
from rag_qa.types import Document, Passage

logger = logging.getLogger(__name__)

# A build may drop this many documents whose files are gone without being told to (--prune).
PRUNE_FREELY = 3


@dataclass
class BuildReport:
    """What a build did, for the one-line summary at the end."""

    directory: Path
    documents: int = 0
    passages: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    embedded: int = 0
    reused: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    skip_summary: str = ""  # "3 skipped: 2 unsupported type (.png, .zip), 1 empty"
    incremental: bool = False
    up_to_date: bool = False  # nothing changed: no new generation was written
    note: str = ""

    def summary(self) -> str:
        if self.up_to_date:
            text = (
                f"Index at {self.directory} is up to date: {self.documents} documents, {self.passages} passages "
                "(nothing changed)"
            )
        else:
            verb = "updated" if self.incremental else "built"
            text = (
                f"Index {verb} at {self.directory}: {self.documents} documents, {self.passages} passages "
                f"({self.added} added, {self.changed} changed, {self.removed} removed, {self.unchanged} unchanged "
                "documents; "
                f"{self.embedded} passages embedded, {self.reused} reused)"
            )
        if self.skip_summary:
            text += f"; {self.skip_summary}"
        if self.note:
            text += f"; {self.note}"
        return text

    @property
    def text(self) -> str:
        """The summary line (what ``ragqa index`` prints)."""
        return self.summary()


def _embed_text(p: Passage, include_title: bool) -> str:
    """What is embedded and BM25-indexed for a passage: with ``include_title``,
    a title line and a section line (the heading path, ``"Installing > From source"``)
    before the text, each when the passage has one."""
    if not include_title:
        return p.text
    section = p.metadata.get("section")
    head = [p.title] if p.title else []
    if isinstance(section, str) and section.strip() and section != p.title:
        head.append(section)
    return "\n".join([*head, p.text])


class _LazyTexts(Sequence[str]):
    """Texts made when read: ``_text(i)`` gives text ``i``; a slice gives a list."""

    def _text(self, row: int) -> str:
        raise NotImplementedError

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self._text(i) for i in range(*row.indices(len(self)))]
        return self._text(row)


class EmbedTexts(_LazyTexts):
    """What is embedded and BM25-indexed for each passage of a store (:func:`_embed_text`), made when read.

    ``lengths`` (characters of each passage's text) orders work by length without reading the texts.
    """

    def __init__(self, passages: Sequence[Passage], include_title: bool, lengths: Sequence[int] | None = None):
        self.passages = passages
        self.include_title = include_title
        self.lengths = np.asarray(lengths if lengths is not None else [len(p.text) for p in passages], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.passages)

    def _text(self, row: int) -> str:
        return _embed_text(self.passages[row], self.include_title)


def longest_first(texts: Sequence[str]) -> list[int]:
    """Rows of ``texts``, longest first (batches of similar length pad little)."""
    lengths = getattr(texts, "lengths", None)
    if lengths is None:
        lengths = np.asarray([len(t) for t in texts], dtype=np.int64)
    return np.argsort(-np.asarray(lengths), kind="stable").tolist()


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def _doc_hash(doc: Document) -> str:
    """What a document's passages are made of: its title, text and headings."""
    sections = "\0".join(f"{at}:{path}" for at, path in doc.metadata.get("sections") or ())
    return _key(f"{doc.title}\0{doc.text}\0{sections}")


# What a file's passages depend on besides its bytes: a file whose size, mtime (or
# content hash) and these settings are as the last build recorded is not read again.
_READING_SETTINGS = ("chunking", "max_file_mb", "parse_seconds", "parse_memory_mb", "max_pages", "max_chars")
SOURCE_FILES = "source_files.json"


def build_index(
    paths: Iterable[str | Path] | None,
    directory: str | Path = "index",
    config: IndexConfig | None = None,
    encoder: str | Path | None = None,
    show_progress: bool = True,
    wait: float = 0,
    prune: bool = False,
    remove: Iterable[str | Path] = (),
    follow_links: bool | None = None,
    backend: str | None = None,
    milvus_uri: str | None = None,
    milvus_token_env: str | None = None,
    milvus_collection: str | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
) -> BuildReport:
    """Build the index in ``directory`` from ``paths``, or update it.

    With an index already there, ``paths`` are added to the paths it was
    built from (omit them to re-scan those). Files whose size and
    modification time (or, failing those, content hash) are as the last
    build recorded are not read again; only new or changed passages are
    embedded (matched by content hash), and BM25 is rebuilt. When nothing
    changed no new generation is written (the report says the index is up
    to date). Documents whose files are gone are dropped, but when that is
    more than :data:`PRUNE_FREELY` documents the build refuses unless
    ``prune``. ``prune`` with ``paths`` makes the index hold exactly
    ``paths``. ``remove`` takes files or folders out of the index (a path it
    was built from, or a file or folder inside one). ``config`` defaults to
    the last build's settings. Nothing on disk changes until the new index
    is complete.

    ``backend="milvus"`` keeps passages, BM25 and vectors in a Milvus
    collection (``milvus_uri``: a Milvus Lite ``.db`` file, by default
    ``milvus.db`` in the index folder, or a server's URI; ``milvus_token_env``:
    the environment variable holding its token; ``milvus_collection``: the
    alias readers search). Later builds keep the backend the index has.

    ``engine="ray"`` reads, embeds and counts BM25 terms on Ray
    (``ray_address``: a cluster to join, else a local Ray for this build;
    ``workers`` encoder actors with ``gpus_per_worker`` GPUs each); the index
    written is the one a local build writes (see :mod:`rag_qa.retrieval.engines`).
    """
    from rag_qa.retrieval.engines import make_engine

    directory = Path(directory)
    runner = make_engine(engine, ray_address, workers, gpus_per_worker)  # bad options fail before anything is made
    storage.check_target(directory)
    with storage.WriteLock(directory, timeout=wait):
        try:
            return _build(
                runner,
                directory,
                paths,
                config,
                encoder,
                show_progress,
                prune,
                remove,
                follow_links,
                backend,
                {"uri": milvus_uri, "token_env": milvus_token_env, "collection": milvus_collection},
            )
        finally:
            runner.close()


def _build(
    runner,
    directory: Path,
    paths: Iterable[str | Path] | None,
    config: IndexConfig | None,
    encoder: str | Path | None,
    show_progress: bool,
    prune: bool,
    remove: Iterable[str | Path],
    follow_links: bool | None,
    backend: str | None,
    milvus_options: dict[str, str | None],
) -> BuildReport:
    from tqdm.auto import tqdm

    from rag_qa import __version__
    from rag_qa.retrieval.encoder import Encoder

    old = _previous(directory)
    config = _settings(config, old, backend, milvus_options)
    if encoder is not None:
        config = config.replace(dense={"encoder": str(encoder)})
    if follow_links is not None:
        config = config.replace(follow_links=follow_links)
    roots, excludes = _sources(paths, remove, old["manifest"] if old else {}, prune)
    if not roots:
        raise InputError("no documents given: pass the files or folders to index, e.g. `ragqa index docs/`")

    # Sources are stored relative to the folder of the first build, whatever folder later builds run in.
    source_root = _source_root(old["manifest"] if old else None)
    dense = config.dense
    # "auto" embeds passages with torch: indexing ran at 73.7 passages/s with it against 49.9 with
    # ONNX Runtime float32 (bench/retrieval_speed.py, 2-core bf16 CPU); ONNX Runtime is for
    # queries, where start-up time counts. The model itself is loaded only if there is text to embed.
    the_encoder = Encoder(
        dense.encoder,
        device=dense.device,
        batch_size=dense.batch_size,
        precision=dense.precision,
        runtime="torch" if dense.runtime == "auto" else dense.runtime,
    )
    stored = _stored_settings(config, directory, old)
    if config.backend == "milvus":
        from rag_qa.retrieval import milvus

        milvus.check_server(stored["milvus"], directory)
    stored["dense"]["encoder"] = None if the_encoder.is_default else str(the_encoder.path)

    report = BuildReport(directory=directory, incremental=old is not None)
    ingest = IngestReport()
    limits = ReadLimits(
        max_file_mb=config.max_file_mb,
        parse_seconds=config.parse_seconds,
        parse_memory_mb=config.parse_memory_mb,
        max_pages=config.max_pages,
        max_chars=config.max_chars,
    )
    files = [
        f
        for f in iter_files(
            roots,
            ingest,
            skip_hidden=config.skip_hidden,
            skip_dir=storage.is_index_dir,
            follow_links=config.follow_links,
        )
        if not any(_under(str(f), e) for e in excludes)
    ]
    known = _known_files(old, stored, source_root, __version__)
    old_passages = None
    # Documents are chunked as they are read and only their hashes kept; passages are written to the
    # new generation as they come, so the build holds a key and a few numbers per passage, not its text.
    documents: dict[str, dict[str, str]] = {}
    tmp, gen_name = storage.new_generation(directory)
    writer = None
    try:
        writer = PassageWriter(tmp)
        keys: list[str] = []

        def add(passage: Passage) -> None:
            writer.add(passage)
            keys.append(_key(_embed_text(passage, config.include_title)))

        source_files: dict[str, dict[str, Any]] = {}
        read_from: set[str] = set()
        plan = []  # (file, stat, the last build's record when the file is unchanged)
        for file in files:
            try:
                stat = file.stat()
            except OSError:
                stat = None
            record = known.get(str(file))
            unchanged = stat is not None and record is not None and _unchanged(file, stat, record)
            plan.append((file, stat, record if unchanged else None))
        readings = runner.read(
            [file for file, _, record in plan if record is None], ingest, limits, source_root, config.chunking
        )
        for file, stat, record in tqdm(plan, desc="Reading", unit="file", disable=not show_progress):
            name = str(file)
            if record is not None:
                if old_passages is None:
                    old_passages = old["load_passages"]()
                for doc_id in record["documents"]:
                    documents[doc_id] = old["documents"][doc_id]
                    for passage in old_passages.get(doc_id, ()):
                        add(passage)
                source_files[name] = {**record, "mtime_ns": stat.st_mtime_ns}
                read_from.add(name)
                continue
            docs, file_passages, sha256 = next(readings)
            for doc_id, entry in docs:
                documents[doc_id] = entry
            for passage in file_passages:
                add(passage)
            doc_ids = [doc_id for doc_id, _ in docs]
            if doc_ids:
                read_from.add(name)
            if doc_ids and stat is not None:
                source_files[name] = {
                    "size": stat.st_size,
                    "mtime_ns": stat.st_mtime_ns,
                    "sha256": sha256,
                    "documents": doc_ids,
                }
        report.skipped = ingest.skipped
        report.skip_summary = ingest.summary()
        empty = [str(p) for p in paths or () if not any(_under(f, str(Path(p).resolve())) for f in read_from)]
        if not documents or empty:
            raise InputError(
                f"no readable documents under {', '.join(empty or [str(p) for p in roots])} "
                f"(ragqa reads {' '.join(SUPPORTED_EXTENSIONS)}; {ingest.summary() or '0 skipped'}): "
                "nothing was changed"
            )
        writer.close()
        if not keys:
            raise InputError("the documents hold no words to index: nothing was changed")
        passages = PassageStore(tmp)

        _count_changes(report, documents, old)
        if report.removed > PRUNE_FREELY and not prune:
            gone = sorted({v["source"] for k, v in old["documents"].items() if k not in documents})
            raise InputError(
                f"this build would remove {report.removed} documents no longer found "
                f"({', '.join(gone[:3])}{', ...' if len(gone) > 3 else ''}): "
                "pass --prune to remove them; nothing was changed"
            )
        if old and _nothing_changed(
            report, old["manifest"], stored, roots, excludes, source_root, the_encoder, __version__
        ):
            report.up_to_date = True
            if old["manifest"].get("backend") == "milvus":
                from rag_qa.retrieval import milvus

                milvus.align_alias(directory, old["manifest"])
            report.documents, report.passages = len(documents), len(passages)
            report.reused = len(passages)
            passages.close()
            storage.clean_up(directory, {old["manifest"]["data_dir"]})
            return report

        texts = EmbedTexts(passages, config.include_title, writer.lengths)
        vectors, encoder_info = _embed(texts, keys, tmp, the_encoder, old, report, show_progress, runner.encode)
        if config.backend == "milvus":
            from rag_qa.retrieval import milvus

            # vocabulary: the terms of ragqa's BM25 tokenizer, which Milvus Lite's standard analyzer matches
            counts = {"documents": len(documents), "passages": len(passages), "vocabulary": _vocabulary(texts, config)}
            manifest = _manifest(source_root, roots, excludes, counts, stored, encoder_info, backend="milvus")
            manifest["milvus"] = {
                "uri": stored["milvus"]["uri"],
                "token_env": stored["milvus"]["token_env"],
                "alias": stored["milvus"]["collection"],
                "index_type": config.milvus.index_type,
                "metric": "inner_product",
                "timeout": config.milvus.timeout,
                "schema": milvus.SCHEMA,
            }
            previous = (old["manifest"].get("milvus") or {}).get("collection") if old else None
            gen_name = milvus.write_generation(
                directory,
                passages,
                texts,
                keys,
                vectors,
                {
                    "documents.json": json.dumps(documents, ensure_ascii=False),
                    SOURCE_FILES: json.dumps(source_files),
                },
                manifest,
                config,
                previous,
                show_progress,
            )
            storage.clean_up(directory, {gen_name})
            report.documents, report.passages = len(documents), len(passages)
            return report

        from rag_qa.retrieval.dense import DenseRetriever, build_faiss, describe_faiss

        bm25 = runner.bm25(texts, config.bm25)
        faiss_index = build_faiss(vectors, config.dense)

        (tmp / "documents.json").write_text(json.dumps(documents, ensure_ascii=False), encoding="utf-8")
        (tmp / "keys.json").write_text(json.dumps(keys), encoding="utf-8")
        # ASCII JSON: file names that are not valid UTF-8 (surrogate escapes) come back as they were
        (tmp / SOURCE_FILES).write_text(json.dumps(source_files), encoding="utf-8")
        bm25.save(tmp / "bm25")
        DenseRetriever(faiss_index, vectors, config.dense).save(tmp)

        counts = {"documents": len(documents), "passages": len(passages), "vocabulary": len(bm25._engine.vocab_dict)}
        manifest = _manifest(source_root, roots, excludes, counts, stored, encoder_info)
        manifest["faiss"] = {
            "type": describe_faiss(faiss_index),
            "factory": "Flat" if describe_faiss(faiss_index) == "Flat" else config.dense.faiss_factory,
            "ntotal": int(faiss_index.ntotal),
            "metric": "inner_product",
        }
        manifest["files"] = storage.checksums(tmp)
        del faiss_index, vectors
        passages.close()
        storage.commit(directory, tmp, gen_name, manifest)
        # Superseded generations go, except those a loaded index still holds (see storage.clean_up).
        storage.clean_up(directory, {gen_name})
        if old and old["manifest"].get("backend") == "milvus":
            left = old["manifest"].get("milvus") or {}
            logger.warning(
                "the index now uses the built-in backend; its Milvus collection %s (alias %s) at %s is left as it "
                "was: drop it there once nothing else reads it",
                left.get("collection"),
                left.get("alias"),
                left.get("uri"),
            )
        report.documents, report.passages = len(documents), len(passages)
        return report
    finally:
        if writer is not None:
            writer.abort()
        shutil.rmtree(tmp, ignore_errors=True)  # renamed into place by a finished build


def _file_sha256(file: Path) -> str | None:
    try:
        return storage.file_sha256(file)
    except OSError:
        return None


def _unchanged(file: Path, stat: os.stat_result, record: dict[str, Any]) -> bool:
    """True when ``file`` holds what the last build read from it: same size and
    modification time, or same size and content hash (a file touched, not changed)."""
    if stat.st_size != record.get("size"):
        return False
    if stat.st_mtime_ns == record.get("mtime_ns"):
        return True
    return record.get("sha256") is not None and _file_sha256(file) == record.get("sha256")


def _known_files(
    old: dict[str, Any] | None, stored: dict[str, Any], source_root: str, version: str
) -> dict[str, dict[str, Any]]:
    """The files the last build read, ``{path: {size, mtime_ns, sha256, documents}}``,
    when their passages can be reused as they are; else ``{}`` (every file is read)."""
    if not old:
        return {}
    manifest = old["manifest"]
    before = manifest.get("config") or {}
    if (
        manifest.get("source_root") != source_root
        or manifest.get("ragqa_version") != version
        or any(before.get(k) != stored.get(k) for k in _READING_SETTINGS)
    ):
        return {}
    try:
        known = json.loads((old["folder"] / SOURCE_FILES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # an index built before files were recorded
    if not isinstance(known, dict):
        return {}
    return {
        path: record
        for path, record in known.items()
        if isinstance(record, dict)
        and isinstance(record.get("documents"), list)
        and all(doc_id in old["documents"] for doc_id in record["documents"])
    }


def _manifest(
    source_root, roots, excludes, counts: dict[str, int], stored: dict, encoder_info: dict, backend: str | None = None
) -> dict[str, Any]:
    """The fields every backend's manifest has; the caller adds its own (``faiss`` or ``milvus``, ``files``)."""
    from rag_qa import __version__

    manifest: dict[str, Any] = {"format": storage.FORMAT_NAME, "format_version": storage.FORMAT_VERSION}
    if backend is not None:
        manifest["backend"] = backend
    manifest.update(
        ragqa_version=__version__,
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        source_root=source_root,
        roots=roots,
        excludes=excludes,
        counts=counts,
        config=stored,
        encoder=encoder_info,
    )
    return manifest


def _vocabulary(texts: Sequence[str], config: IndexConfig) -> int:
    from rag_qa.retrieval.tokenize import tokenize

    return len({term for text in texts for term in tokenize(text, config.bm25.stopwords)})


def _settings(
    config: IndexConfig | None,
    old: dict[str, Any] | None,
    backend: str | None,
    milvus: dict[str, str | None],
) -> IndexConfig:
    """The settings of this build: ``config`` (default: the last build's), keeping
    the index's backend unless ``config`` or ``backend`` names one, and the Milvus options given."""
    before = IndexConfig.from_dict(old["manifest"]["config"]) if old else IndexConfig()
    if before.backend == "milvus" and before.milvus.uri is not None:
        from rag_qa.retrieval.milvus import actual_uri

        # recorded relative to the index folder; given (and compared) relative to the working directory
        before = before.replace(milvus={"uri": actual_uri(before.milvus.uri, old["folder"].parent)})
    if config is None:
        config = before
    elif old and "backend" not in config.model_fields_set and "milvus" not in config.model_fields_set:
        config = config.replace(backend=before.backend, milvus=before.milvus)
    if backend is not None:
        config = config.replace(backend=backend)
    given = {k: v for k, v in milvus.items() if v is not None}
    if given:
        if config.backend != "milvus":
            names = ", ".join(f"--milvus-{k.replace('_', '-')}" for k in given)
            raise InputError(f"{names} applies to a Milvus index: add --backend milvus")
        config = config.replace(milvus=given)
    return config


def _stored_settings(config: IndexConfig, directory: Path, old: dict[str, Any] | None) -> dict[str, Any]:
    """The settings the manifest records. A built-in index records no backend
    settings (its manifest is as before there were backends); a Milvus index
    records its URI as a path relative to the index folder when inside it, and its alias."""
    stored = config.to_dict()
    if config.backend == "builtin":
        stored.pop("backend")
        stored.pop("milvus")
        return stored
    from rag_qa.retrieval import milvus

    stored["milvus"]["uri"] = milvus.stored_uri(config.milvus.uri, directory)
    before = (old["manifest"].get("milvus") or {}).get("alias") if old else None
    stored["milvus"]["collection"] = config.milvus.collection or before or milvus.default_alias(directory)
    return stored


class _OldPassages:
    """The last build's passages by document, read from its store when asked for (rows kept, not passages)."""

    def __init__(self, store: PassageStore):
        self.store = store
        self.rows: dict[str, list[int]] = {}
        for row, passage in enumerate(store):
            self.rows.setdefault(passage.doc_id, []).append(row)

    def get(self, doc_id: str, default=()):
        rows = self.rows.get(doc_id)
        return default if rows is None else (self.store[row] for row in rows)


def _nothing_changed(
    report: BuildReport,
    manifest: dict[str, Any],
    stored: dict[str, Any],
    roots: list[str],
    excludes: list[str],
    source_root: str,
    encoder,
    version: str,
) -> bool:
    """True when a new generation would hold what the live one holds."""
    return (
        report.added == report.changed == report.removed == 0
        and manifest.get("config") == stored
        and manifest.get("roots") == roots
        and (manifest.get("excludes") or []) == excludes
        and manifest.get("source_root") == source_root
        and manifest.get("encoder", {}).get("sha256") == encoder.sha256
        and manifest.get("ragqa_version") == version
    )


def _source_root(manifest: dict[str, Any] | None) -> str:
    """The folder that passages' relative sources start from: the one the index
    recorded, else (a new index, or one built before it was recorded) the working directory."""
    recorded = (manifest or {}).get("source_root")
    if isinstance(recorded, str) and Path(recorded).is_absolute():
        return recorded
    return str(Path.cwd().resolve())


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _sources(
    paths: Iterable[str | Path] | None, remove: Iterable[str | Path], manifest: dict[str, Any], prune: bool
) -> tuple[list[str], list[str]]:
    """The paths to scan and the paths inside them to leave out, from what was
    asked and what the last build recorded."""
    given = list(dict.fromkeys(str(Path(p).resolve()) for p in paths or ()))
    saved = manifest.get("roots") or []
    roots = given if prune and given else saved + [r for r in given if r not in saved]
    excludes = [e for e in manifest.get("excludes") or [] if not any(_under(e, g) for g in given)]
    for raw in remove:
        path = str(Path(raw).resolve())
        if path in roots:
            roots.remove(path)
        elif any(_under(path, r) for r in roots):
            excludes.append(path)
        else:
            raise InputError(
                f"{raw} is not in the index (it holds {', '.join(roots) or 'nothing'}): nothing was changed"
            )
    gone = [r for r in roots if r not in given and not Path(r).exists()]
    for root in gone:
        logger.warning("%s, indexed before, no longer exists: its documents are dropped", root)
    return [r for r in roots if r not in gone], excludes


def _previous(directory: Path) -> dict[str, Any] | None:
    """The live index, if there is a sound one to update."""
    try:
        manifest = storage.read_manifest(directory)
        storage.verify(directory, manifest)
    except IndexMissingError:
        return None
    except RagQAError as exc:
        logger.warning("the existing index cannot be reused (%s); building from scratch", exc)
        return None
    folder = storage.data_dir(directory, manifest)
    if manifest.get("backend") == "milvus":
        return _previous_milvus(directory, manifest, folder)
    try:
        documents = json.loads((folder / "documents.json").read_text(encoding="utf-8"))
        keys = json.loads((folder / "keys.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("the existing index cannot be reused (%s); building from scratch", exc)
        return None
    return {
        "manifest": manifest,
        "folder": folder,
        "documents": documents,
        "keys": keys,
        "load_passages": lambda: _OldPassages(PassageStore(folder)),
        "load_vectors": lambda: np.load(folder / "embeddings.npy", mmap_mode="r", allow_pickle=False),
    }


def _previous_milvus(directory: Path, manifest: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The live Milvus index: its documents from the folder, its passages and vectors from the collection.
    When the collection is gone, nothing is reused but the paths and settings."""
    from rag_qa.retrieval import milvus

    rows = milvus.previous_rows(directory, manifest)
    try:
        documents = json.loads((folder / "documents.json").read_text(encoding="utf-8")) if rows else {}
    except (OSError, ValueError) as exc:
        logger.warning("the existing index cannot be reused (%s); building from scratch", exc)
        rows, documents = None, {}
    rows = rows or {"passages": {}, "keys": [], "vectors": np.zeros((0, 0), dtype=np.float32)}
    return {
        "manifest": manifest,
        "folder": folder,
        "documents": documents,
        "keys": rows["keys"],
        "load_passages": lambda: rows["passages"],
        "load_vectors": lambda: rows["vectors"],
    }


def _count_changes(report: BuildReport, documents: dict[str, dict[str, str]], old: dict[str, Any] | None) -> None:
    before = old["documents"] if old else {}
    for doc_id, entry in documents.items():
        if doc_id not in before:
            report.added += 1
        elif before[doc_id]["sha256"] != entry["sha256"]:
            report.changed += 1
        else:
            report.unchanged += 1
    report.removed = sum(1 for doc_id in before if doc_id not in documents)


def _embed(
    texts: Sequence[str],
    keys: Sequence[str],
    folder: Path,
    encoder,
    old: dict[str, Any] | None,
    report: BuildReport,
    show_progress: bool,
    encode=None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Vectors for every text (``keys``: their content hashes), reusing the old
    index's rows for unchanged texts, written to ``folder/embeddings.npy`` as
    they come (memory-mapped). The encoder's model is loaded only when some
    text has no vector to reuse."""
    reuse: dict[str, int] = {}
    old_vectors = None
    old_info = old["manifest"].get("encoder", {}) if old else {}
    if old and old_info.get("sha256") == encoder.sha256:
        old_vectors = old["load_vectors"]()
        if len(old_vectors) == len(old["keys"]):
            reuse = {key: row for row, key in enumerate(old["keys"])}
        else:
            raise IndexCorruptError(
                f"embeddings of the index at {report.directory} do not match its passages; "
                f"{storage.rebuild_hint(report.directory)}"
            )
    elif old:
        report.note = "encoder changed: every passage re-embedded"

    rows = [reuse.get(key) for key in keys]
    del reuse
    todo = [i for i, row in enumerate(rows) if row is None]
    if todo or old_vectors is None:
        info = encoder.info().to_dict()
    else:  # every vector is reused: the recorded encoder, at the path it is found now
        info = {**old_info, "path": str(encoder.path), "default": encoder.is_default}
    vectors = np.lib.format.open_memmap(
        folder / "embeddings.npy", mode="w+", dtype=np.float32, shape=(len(keys), info["dimension"])
    )
    kept = [i for i, row in enumerate(rows) if row is not None]
    for start in range(0, len(kept), 65536):  # in slices: the old vectors are memory-mapped too
        part = kept[start : start + 65536]
        vectors[part] = old_vectors[[rows[i] for i in part]]
    report.reused = len(keys) - len(todo)
    report.embedded = len(todo)
    if todo:
        encode = encode or _encode_with_progress
        if len(todo) == len(keys):
            encode(encoder, texts, show_progress, out=vectors)
        else:
            vectors[todo] = encode(encoder, _Rows(texts, todo), show_progress)
    return vectors, info


class _Rows(_LazyTexts):
    """Some rows of a sequence of texts, as a sequence."""

    def __init__(self, texts: Sequence[str], rows: list[int]):
        self.texts, self.rows = texts, rows
        lengths = getattr(texts, "lengths", None)
        if lengths is not None:
            self.lengths = np.asarray(lengths)[rows]

    def __len__(self) -> int:
        return len(self.rows)

    def _text(self, row: int) -> str:
        return self.texts[self.rows[row]]


def _encode_with_progress(
    encoder, texts: Sequence[str], show_progress: bool, out: np.ndarray | None = None
) -> np.ndarray:
    """Encode longest-first in slices of a few batches, so that batches hold
    texts of similar length (little padding) and the bar moves in passages;
    into ``out`` (a row per text) when given."""
    from tqdm.auto import tqdm

    order = longest_first(texts)
    step = encoder.batch_size * 8
    if out is None:
        out = np.zeros((len(texts), encoder.info().dimension), dtype=np.float32)
    with tqdm(total=len(texts), desc="Embedding", unit="passage", disable=not show_progress) as bar:
        for start in range(0, len(texts), step):
            rows = order[start : start + step]
            out[rows] = encoder.encode([texts[i] for i in rows])
            bar.update(len(rows))
    return out
