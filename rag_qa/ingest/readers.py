"""Walk paths and read ``.txt``, ``.md``, ``.html``, ``.pdf`` and ``.jsonl`` files.

Files that cannot be read are skipped with one warning line each; the
:class:`IngestReport` counts them so the caller can say so at the end.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from rag_qa.config import SUPPORTED_EXTENSIONS
from rag_qa.errors import InputError
from rag_qa.ingest.decoding import UndecodableError, decode_bytes
from rag_qa.types import Document

logger = logging.getLogger(__name__)

_SKIP_DIRS = {"__pycache__", "node_modules"}


@dataclass
class IngestReport:
    """What happened to each file a walk met."""

    read: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    ignored: int = 0  # files with extensions ragqa does not read

    def skip(self, path: str | Path, reason: str) -> None:
        self.skipped.append((str(path), reason))
        logger.warning("skipped %s: %s", path, reason)


def iter_files(paths: Iterable[str | Path], report: IngestReport, skip_hidden: bool = True) -> Iterator[Path]:
    """Yield the supported files under ``paths`` in a stable (sorted) order.

    A path that does not exist raises :class:`InputError`. Symbolic links to
    folders are not followed, so a link loop cannot trap the walk.
    """
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(f"path {raw} does not exist: check the spelling or pass an existing file or folder")
        if path.is_file():
            if path.suffix.lower() in SUPPORTED_EXTENSIONS:
                yield path
            else:
                report.skip(path, f"unsupported file type {path.suffix or '(none)'}; ragqa reads {', '.join(SUPPORTED_EXTENSIONS)}")
            continue
        for root, dirs, files in os.walk(path, followlinks=False, onerror=lambda e: report.skip(e.filename, e.strerror or str(e))):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not (skip_hidden and d.startswith(".")))
            for name in sorted(files):
                if skip_hidden and name.startswith("."):
                    continue
                file = Path(root) / name
                if file.suffix.lower() in SUPPORTED_EXTENSIONS:
                    yield file
                else:
                    report.ignored += 1


def iter_documents(
    paths: Iterable[str | Path],
    report: IngestReport | None = None,
    max_file_mb: float = 64.0,
    skip_hidden: bool = True,
) -> Iterator[Document]:
    """Read every supported file under ``paths`` into :class:`Document` objects."""
    report = report if report is not None else IngestReport()
    for file in iter_files(paths, report, skip_hidden=skip_hidden):
        yield from read_file(file, report, max_file_mb=max_file_mb)


def read_file(file: Path, report: IngestReport, max_file_mb: float = 64.0) -> list[Document]:
    """The documents in one file; an unreadable file is reported and gives none."""
    try:
        size = file.stat().st_size
    except OSError as exc:
        report.skip(file, exc.strerror or str(exc))
        return []
    if size == 0:
        report.skip(file, "empty file")
        return []
    if size > max_file_mb * 1024 * 1024:
        report.skip(file, f"{size / 2**20:.0f} MB is over max_file_mb={max_file_mb:g}; raise it in the index config to read this file")
        return []
    try:
        data = file.read_bytes()
    except OSError as exc:
        report.skip(file, exc.strerror or str(exc))
        return []
    source = _source_name(file)
    doc_id = file.resolve().as_posix()  # the same whatever the working directory
    suffix = file.suffix.lower()
    try:
        if suffix == ".jsonl":
            docs = list(_read_jsonl(data, doc_id, source, report))
        elif suffix == ".pdf":
            docs = [_read_pdf(data, doc_id, source, file)]
        else:
            text, encoding = decode_bytes(data)
            if suffix in (".html", ".htm"):
                docs = [_read_html(text, doc_id, source, file, encoding)]
            else:
                docs = [_plain_document(text, doc_id, source, file, encoding, markdown=suffix in (".md", ".markdown"))]
    except (UndecodableError, _UnreadableError) as exc:
        report.skip(file, str(exc))
        return []
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        report.skip(file, "no text in file")
        return []
    report.read += 1
    return docs


class _UnreadableError(ValueError):
    pass


def _source_name(file: Path) -> str:
    """Paths inside the working directory are kept relative, others absolute."""
    resolved = file.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


_MD_HEADING = re.compile(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _plain_document(text: str, doc_id: str, source: str, file: Path, encoding: str, markdown: bool) -> Document:
    title = file.stem
    if markdown:
        match = _MD_HEADING.search(text)
        if match:
            title = match.group(1).strip()
    return Document(doc_id=doc_id, source=source, text=text, title=title, metadata={"encoding": encoding})


def _read_html(markup: str, doc_id: str, source: str, file: Path, encoding: str) -> Document:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    blocks = [line.strip() for line in soup.get_text("\n").splitlines()]
    text = "\n".join(line for line in blocks if line)
    return Document(doc_id=doc_id, source=source, text=text, title=title or file.stem, metadata={"encoding": encoding})


def _read_pdf(data: bytes, doc_id: str, source: str, file: Path) -> Document:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise _UnreadableError("encrypted PDF; decrypt it first")
        pages, page_starts, offset = [], [], 0
        for page in reader.pages:
            page_text = (page.extract_text() or "").strip()
            page_starts.append(offset)
            pages.append(page_text)
            offset += len(page_text) + 2
        title = ((reader.metadata or {}).get("/Title") or "").strip() if reader.metadata else ""
    except _UnreadableError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise _UnreadableError(f"PDF could not be parsed ({type(exc).__name__}: {exc})".replace("\n", " ")) from exc
    return Document(
        doc_id=doc_id,
        source=source,
        text="\n\n".join(pages),
        title=str(title) or file.stem,
        metadata={"page_starts": page_starts},
    )


def _read_jsonl(data: bytes, doc_id: str, source: str, report: IngestReport) -> Iterator[Document]:
    try:
        text, _ = decode_bytes(data)
    except UndecodableError as exc:
        raise _UnreadableError(str(exc)) from exc
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            report.skip(where, f"invalid JSON ({exc.msg}); line left out")
            continue
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            report.skip(where, 'each line needs a JSON object with a string "text" field; line left out')
            continue
        doc_key = str(row.get("id", row.get("_id", lineno)))
        if doc_key in seen:
            report.skip(where, f"duplicate id {doc_key!r}; line left out")
            continue
        seen.add(doc_key)
        metadata = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
        yield Document(
            doc_id=f"{doc_id}#{doc_key}",
            source=source,
            text=row["text"],
            title=str(row.get("title") or ""),
            metadata={**metadata, "id": doc_key, "line": lineno},
        )
