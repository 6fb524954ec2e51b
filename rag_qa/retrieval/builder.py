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
from typing import Any, Iterable

import numpy as np

from rag_qa.config import SUPPORTED_EXTENSIONS, IndexConfig
from rag_qa.errors import IndexCorruptError, IndexMissingError, InputError, RagQAError
from rag_qa.ingest import IngestReport, chunk_document, iter_file_documents, iter_files
from rag_qa.ingest.bounded import ReadLimits
from rag_qa.retrieval import storage
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
    incremental: bool = False
    note: str = ""

    def summary(self) -> str:
        verb = "updated" if self.incremental else "built"
        text = (
            f"Index {verb} at {self.directory}: {self.documents} documents, {self.passages} passages "
            f"({self.added} added, {self.changed} changed, {self.removed} removed, {self.unchanged} unchanged "
            "documents; "
            f"{self.embedded} passages embedded, {self.reused} reused)"
        )
        if self.skipped:
            text += f"; {len(self.skipped)} skipped (listed in the warnings on stderr, hidden by -q; or with --json)"
        if self.note:
            text += f"; {self.note}"
        return text


def _embed_text(p: Passage, include_title: bool) -> str:
    return f"{p.title}\n{p.text}" if include_title and p.title else p.text


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def _doc_hash(doc: Document) -> str:
    return _key(f"{doc.title}\0{doc.text}")


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
) -> BuildReport:
    """Build the index in ``directory`` from ``paths``, or update it.

    With an index already there, ``paths`` are added to the paths it was
    built from (omit them to re-scan those), only new or changed passages are
    embedded (matched by content hash), and BM25 is rebuilt. Documents whose
    files are gone are dropped, but when that is more than
    :data:`PRUNE_FREELY` documents the build refuses unless ``prune``.
    ``prune`` with ``paths`` makes the index hold exactly ``paths``.
    ``remove`` takes files or folders out of the index (a path it was built
    from, or a file or folder inside one). ``config`` defaults to the last
    build's settings. Nothing on disk changes until the new index is complete.
    """
    from tqdm.auto import tqdm

    directory = Path(directory)
    storage.check_target(directory)
    with storage.WriteLock(directory, timeout=wait):
        old = _previous(directory)
        if config is None:
            config = IndexConfig.from_dict(old["manifest"]["config"]) if old else IndexConfig()
        if encoder is not None:
            config = config.replace(dense={"encoder": str(encoder)})
        if follow_links is not None:
            config = config.replace(follow_links=follow_links)
        roots, excludes = _sources(paths, remove, old["manifest"] if old else {}, prune)
        if not roots:
            raise InputError("no documents given: pass the files or folders to index, e.g. `ragqa index docs/`")

        # Sources are stored relative to the folder of the first build, whatever folder later builds run in.
        source_root = _source_root(old["manifest"] if old else None)
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
        # Documents are chunked as they are read and only their hashes kept,
        # so a document's text is held once, as its passages.
        documents: dict[str, dict[str, str]] = {}
        passages: list[Passage] = []
        read_from: set[str] = set()
        for file in tqdm(files, desc="Reading", unit="file", disable=not show_progress):
            for doc in iter_file_documents(file, ingest, limits=limits, source_root=source_root):
                documents[doc.doc_id] = {"source": doc.source, "sha256": _doc_hash(doc)}
                passages.extend(chunk_document(doc, config.chunking))
                read_from.add(str(file))
        report.skipped = ingest.skipped
        empty = [str(p) for p in paths or () if not any(_under(f, str(Path(p).resolve())) for f in read_from)]
        if not documents or empty:
            raise InputError(
                f"no readable documents under {', '.join(empty or [str(p) for p in roots])} "
                f"(ragqa reads {' '.join(SUPPORTED_EXTENSIONS)}; {len(ingest.skipped)} skipped, {ingest.ignored} of "
                "other types): "
                "nothing was changed"
            )
        if not passages:
            raise InputError("the documents hold no words to index: nothing was changed")

        _count_changes(report, documents, old)
        if report.removed > PRUNE_FREELY and not prune:
            gone = sorted({v["source"] for k, v in old["documents"].items() if k not in documents})
            raise InputError(
                f"this build would remove {report.removed} documents no longer found "
                f"({', '.join(gone[:3])}{', ...' if len(gone) > 3 else ''}): "
                "pass --prune to remove them; nothing was changed"
            )
        texts = [_embed_text(p, config.include_title) for p in passages]
        vectors, encoder_info = _embed(texts, config, old, report, show_progress)

        from rag_qa.retrieval.bm25 import BM25Retriever
        from rag_qa.retrieval.dense import DenseRetriever, build_faiss, describe_faiss

        bm25 = BM25Retriever.build(texts, config.bm25)
        faiss_index = build_faiss(vectors, config.dense)

        tmp, gen_name = storage.new_generation(directory)
        try:
            with open(tmp / "passages.jsonl", "w", encoding="utf-8") as fh:
                for p in passages:
                    fh.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
            (tmp / "documents.json").write_text(json.dumps(documents, ensure_ascii=False), encoding="utf-8")
            (tmp / "keys.json").write_text(json.dumps([_key(t) for t in texts]), encoding="utf-8")
            bm25.save(tmp / "bm25")
            DenseRetriever(faiss_index, vectors, config.dense).save(tmp)
            stored = config.to_dict()
            stored["dense"]["encoder"] = encoder_info["path"] if not encoder_info["default"] else None
            from rag_qa import __version__

            manifest = {
                "format": storage.FORMAT_NAME,
                "format_version": storage.FORMAT_VERSION,
                "ragqa_version": __version__,
                "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "source_root": source_root,
                "roots": roots,
                "excludes": excludes,
                "counts": {
                    "documents": len(documents),
                    "passages": len(passages),
                    "vocabulary": len(bm25._engine.vocab_dict),
                },
                "config": stored,
                "encoder": encoder_info,
                "faiss": {
                    "type": describe_faiss(faiss_index),
                    "factory": "Flat" if describe_faiss(faiss_index) == "Flat" else config.dense.faiss_factory,
                    "ntotal": int(faiss_index.ntotal),
                    "metric": "inner_product",
                },
                "files": storage.checksums(tmp),
            }
            storage.commit(directory, tmp, gen_name, manifest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        keep = {gen_name} | ({old["manifest"]["data_dir"]} if old else set())
        storage.clean_up(directory, keep)
        report.documents, report.passages = len(documents), len(passages)
        return report


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
    try:
        documents = json.loads((folder / "documents.json").read_text(encoding="utf-8"))
        keys = json.loads((folder / "keys.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("the existing index cannot be reused (%s); building from scratch", exc)
        return None
    return {"manifest": manifest, "folder": folder, "documents": documents, "keys": keys}


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
    texts: list[str], config: IndexConfig, old: dict[str, Any] | None, report: BuildReport, show_progress: bool
) -> tuple[np.ndarray, dict[str, Any]]:
    """Vectors for every text, reusing the old index's rows for unchanged texts."""
    from rag_qa.retrieval.encoder import Encoder

    dense = config.dense
    # "auto" embeds passages with torch: indexing ran at 73.7 passages/s with it against 49.9 with
    # ONNX Runtime float32 (bench/retrieval_speed.py, 2-core bf16 CPU); ONNX Runtime is for
    # queries, where start-up time counts.
    runtime = "torch" if dense.runtime == "auto" else dense.runtime
    encoder = Encoder(
        dense.encoder, device=dense.device, batch_size=dense.batch_size, precision=dense.precision, runtime=runtime
    )
    info = encoder.info().to_dict()
    reuse: dict[str, int] = {}
    old_vectors = None
    if old and old["manifest"]["encoder"].get("sha256") == info["sha256"]:
        old_vectors = np.load(old["folder"] / "embeddings.npy", mmap_mode="r", allow_pickle=False)
        if len(old_vectors) == len(old["keys"]):
            reuse = {key: row for row, key in enumerate(old["keys"])}
        else:
            raise IndexCorruptError(
                f"embeddings of the index at {report.directory} do not match its passages; "
                f"{storage.rebuild_hint(report.directory)}"
            )
    elif old:
        report.note = "encoder changed: every passage re-embedded"

    vectors = np.zeros((len(texts), info["dimension"]), dtype=np.float32)
    todo = []
    for i, text in enumerate(texts):
        row = reuse.get(_key(text))
        if row is None:
            todo.append(i)
        else:
            vectors[i] = old_vectors[row]
    report.reused = len(texts) - len(todo)
    report.embedded = len(todo)
    if todo:
        vectors[todo] = _encode_with_progress(encoder, [texts[i] for i in todo], show_progress)
    return vectors, info


def _encode_with_progress(encoder, texts: list[str], show_progress: bool) -> np.ndarray:
    """Encode longest-first in slices of a few batches, so that batches hold
    texts of similar length (little padding) and the bar moves in passages."""
    from tqdm.auto import tqdm

    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    step = encoder.batch_size * 8
    out = np.zeros((len(texts), encoder.info().dimension), dtype=np.float32)
    with tqdm(total=len(texts), desc="Embedding", unit="passage", disable=not show_progress) as bar:
        for start in range(0, len(texts), step):
            rows = order[start : start + step]
            out[rows] = encoder.encode([texts[i] for i in rows])
            bar.update(len(rows))
    return out
