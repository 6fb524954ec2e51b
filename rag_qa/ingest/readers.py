"""Walk paths and read text, Markdown, reStructuredText, HTML, PDF and JSONL files.

A file without an extension (``README``, ``LICENSE``) is read as plain text
when its first block is text; ``X.gz``, where X is a type read here, is
decompressed (up to ``max_file_mb``) and read as X. Files that cannot be read
are skipped with one warning line each; files of other types met in a folder
are counted without one. The :class:`IngestReport` counts both, by reason, so
the caller can say so at the end in one line.
"""

from __future__ import annotations

import codecs
import dataclasses
import json
import logging
import os
import re
import threading
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from rag_qa.config import SUPPORTED_EXTENSIONS
from rag_qa.errors import InputError
from rag_qa.ingest.bounded import LimitExceeded, ReadLimits, run_bounded
from rag_qa.ingest.decoding import UndecodableError, UnreadableError, control_ratio, decode_bytes, detect_encoding
from rag_qa.ingest.html import read_html
from rag_qa.ingest.markdown import read_markdown
from rag_qa.ingest.pdf import read_pdf
from rag_qa.ingest.plain import read_plain
from rag_qa.text import escape_undecodable, file_title
from rag_qa.types import Document

logger = logging.getLogger(__name__)

_SKIP_DIRS = {"__pycache__", "node_modules"}
# Read as plain text; "" is a file without an extension whose first block is text.
_PLAIN = (".txt", ".md", ".markdown", ".rst", "")
_MARKDOWN = (".md", ".markdown")
COMPRESSED = ".gz"  # X.gz is decompressed and read as X
SNIFF_BYTES = 8192  # how much of a file without an extension is looked at to tell text from binary
# Plain-text files larger than this are read in parts of about PART_BYTES, so
# memory while reading stays bounded whatever the file size.
STREAM_BYTES = 16 * 2**20
PART_BYTES = 4 * 2**20

# Why a file was left out: the words of the one-line summary.
UNSUPPORTED, BINARY, EMPTY, TOO_LARGE, UNDECODABLE, UNPARSEABLE, UNREADABLE, NO_TEXT, OUTSIDE_LINK, JSONL_LINE = (
    "unsupported type",
    "binary",
    "empty",
    "too large",
    "undecodable text",
    "unparseable",
    "unreadable",
    "no text",
    "link outside the folder",
    "bad JSONL line",
)


@dataclass
class IngestReport:
    """What happened to each file a walk met."""

    read: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    ignored: int = 0  # files of types ragqa does not read, met in a folder (no warning each)
    reasons: Counter = field(default_factory=Counter)  # reason kind -> files skipped or ignored for it
    types: Counter = field(default_factory=Counter)  # extension -> files of that unsupported type

    def skip(self, path: str | Path, reason: str, kind: str = UNREADABLE) -> None:
        """Leave ``path`` out with one warning saying why."""
        self.skipped.append((str(path), reason))
        self.reasons[kind] += 1
        logger.warning("skipped %s: %s", path, reason)

    def ignore(self, path: str | Path, kind: str = UNSUPPORTED) -> None:
        """Leave ``path`` out without a warning (a file of another type in a folder); it is counted."""
        self.ignored += 1
        self.reasons[kind] += 1
        if kind == UNSUPPORTED:
            self.types[_shown_suffix(Path(path))] += 1

    def summary(self) -> str:
        """One line: ``"3 skipped: 2 unsupported type (.png, .zip), 1 empty"``, or ``""`` when nothing was."""
        total = sum(self.reasons.values())
        if not total:
            return ""
        parts = []
        for kind, count in sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0])):
            part = f"{count} {kind}{'s' if kind == JSONL_LINE and count > 1 else ''}"
            if kind == UNSUPPORTED and self.types:
                shown = [t for t, _ in sorted(self.types.items(), key=lambda kv: (-kv[1], kv[0]))]
                part += f" ({', '.join(shown[:5])}{', ...' if len(shown) > 5 else ''})"
            parts.append(part)
        return f"{total} skipped: {', '.join(parts)}"


def _shown_suffix(path: Path) -> str:
    suffixes = path.suffixes
    if suffixes and suffixes[-1].lower() == COMPRESSED and len(suffixes) > 1:
        return escape_undecodable("".join(suffixes[-2:]).lower())
    return escape_undecodable(path.suffix.lower()) or "(no extension)"


def read_as(path: Path) -> str | None:
    """The type ``path`` is read as: its extension (the one before ``.gz`` for
    ``X.gz``), ``""`` for a name without one, or None for a type not read."""
    suffix = path.suffix.lower()
    if suffix == COMPRESSED:
        inner = Path(path.stem).suffix.lower()
        return inner if inner in SUPPORTED_EXTENSIONS else None
    if suffix in SUPPORTED_EXTENSIONS or suffix == "":
        return suffix
    return None


def _sniff_text(path: Path) -> str | None:
    """Why a file without an extension is not read as text (binary, unreadable), or None when it is text."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError:
        return None  # reading it says why it cannot be read
    if not head:
        return None  # empty: reading says so
    try:
        encoding = detect_encoding(head)
    except UndecodableError:
        return BINARY
    if control_ratio(head.decode(encoding, errors="replace")) > 0.05:
        return BINARY
    return None


def iter_files(
    paths: Iterable[str | Path],
    report: IngestReport,
    skip_hidden: bool = True,
    skip_dir: Callable[[Path], bool] | None = None,
    follow_links: bool = False,
) -> Iterator[Path]:
    """Yield the files under ``paths`` that are read, in a stable (sorted) order.

    A path that does not exist raises :class:`InputError`. Symbolic links to
    folders are not followed, so a link loop cannot trap the walk; a link to
    a file outside the folder being walked is skipped with a warning unless
    ``follow_links``. Folders for which ``skip_dir`` is true are not entered.
    A file without an extension is yielded only when its first block is text.
    """
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(f"path {raw} does not exist: check the spelling or pass an existing file or folder")
        if path.is_file():
            kind = read_as(path)
            why = _sniff_text(path) if kind == "" else None
            if kind is None:
                report.types[_shown_suffix(path)] += 1
                report.skip(
                    path,
                    f"unsupported file type {_shown_suffix(path)}; ragqa reads {', '.join(SUPPORTED_EXTENSIONS)}, "
                    f"files without an extension that hold text, and any of these compressed as {COMPRESSED}",
                    UNSUPPORTED,
                )
            elif why is not None:
                report.skip(path, f"{why}: a file without an extension is read only when it holds text", BINARY)
            else:
                yield path
            continue
        for root, dirs, files in os.walk(
            path, followlinks=False, onerror=lambda e: report.skip(e.filename, e.strerror or str(e), UNREADABLE)
        ):
            dirs[:] = sorted(
                d
                for d in dirs
                if d not in _SKIP_DIRS
                and not (skip_hidden and d.startswith("."))
                and not (skip_dir and skip_dir(Path(root) / d))
            )
            for name in sorted(files):
                if skip_hidden and name.startswith("."):
                    continue
                file = Path(root) / name
                if not follow_links and _links_outside(file, path):
                    report.skip(
                        file,
                        "a link to a file outside the indexed folder; pass --follow-links to read it",
                        OUTSIDE_LINK,
                    )
                    continue
                kind = read_as(file)
                if kind is None:
                    report.ignore(file, UNSUPPORTED)
                elif kind == "" and _sniff_text(file) is not None:
                    report.ignore(file, BINARY)  # a program or data file without an extension
                else:
                    yield file


def _links_outside(file: Path, root: Path) -> bool:
    if not file.is_symlink():
        return False
    try:
        file.resolve().relative_to(root.resolve())
    except (ValueError, OSError, RuntimeError):
        return True
    return False


def iter_documents(
    paths: Iterable[str | Path],
    report: IngestReport | None = None,
    max_file_mb: float = 64.0,
    skip_hidden: bool = True,
    limits: ReadLimits | None = None,
    source_root: str | Path | None = None,
) -> Iterator[Document]:
    """Read every supported file under ``paths`` into :class:`Document` objects."""
    report = report if report is not None else IngestReport()
    for file in iter_files(paths, report, skip_hidden=skip_hidden):
        yield from iter_file_documents(file, report, max_file_mb=max_file_mb, limits=limits, source_root=source_root)


def iter_file_documents(
    file: Path,
    report: IngestReport,
    max_file_mb: float = 64.0,
    limits: ReadLimits | None = None,
    source_root: str | Path | None = None,
) -> Iterator[Document]:
    """The documents in one file, as they are read.

    Plain text over :data:`STREAM_BYTES` is streamed: it comes out as several
    documents (parts cut at line breaks) whose passages keep offsets and line
    numbers into the whole file. Other files are read whole (see
    :func:`read_file`). A document's ``source`` is the file's path relative
    to ``source_root`` (default: the working directory), or its absolute
    path when the file lies outside that folder.
    """
    try:
        size = file.stat().st_size
    except OSError as exc:
        report.skip(file, exc.strerror or str(exc), UNREADABLE)
        return
    if size > STREAM_BYTES and file.suffix.lower() in _PLAIN:
        yield from _stream_text(file, report, source_root)
    else:
        yield from read_file(file, report, max_file_mb=max_file_mb, limits=limits, source_root=source_root)


def read_file(
    file: Path,
    report: IngestReport,
    max_file_mb: float = 64.0,
    limits: ReadLimits | None = None,
    source_root: str | Path | None = None,
) -> list[Document]:
    """The documents in one file, read whole; an unreadable file is reported and gives none.

    HTML and PDF are parsed in a child process bounded by ``limits`` (time,
    memory, pages); every document's text is cut at ``limits.max_chars``.
    ``X.gz`` is decompressed, up to ``limits.max_file_mb``, and read as X.
    """
    limits = limits if limits is not None else ReadLimits(max_file_mb=max_file_mb)
    max_file_mb = limits.max_file_mb
    suffix = read_as(file)
    if suffix is None:
        report.skip(file, f"unsupported file type {_shown_suffix(file)}", UNSUPPORTED)
        return []
    compressed = file.suffix.lower() == COMPRESSED
    named = file.with_suffix("") if compressed else file  # the name the title comes from
    try:
        size = file.stat().st_size
    except OSError as exc:
        report.skip(file, exc.strerror or str(exc), UNREADABLE)
        return []
    if size == 0:
        report.skip(file, "empty file", EMPTY)
        return []
    if size > max_file_mb * 1024 * 1024 and (compressed or suffix not in _PLAIN):
        report.skip(
            file,
            f"{size / 2**20:.0f} MB is over max_file_mb={max_file_mb:g}; "
            "raise it in the index config to read this file",
            TOO_LARGE,
        )
        return []
    try:
        data = file.read_bytes()
    except OSError as exc:
        report.skip(file, exc.strerror or str(exc), UNREADABLE)
        return []
    if compressed:
        try:
            data = gunzip_bounded(data, int(max_file_mb * 1024 * 1024))
        except UnreadableError as exc:
            report.skip(file, str(exc), UNREADABLE)
            return []
        except _TooLarge:
            report.skip(
                file,
                f"decompresses to more than max_file_mb={max_file_mb:g} MB; "
                "raise it in the index config to read this file",
                TOO_LARGE,
            )
            return []
        if not data:
            report.skip(file, "empty file (once decompressed)", EMPTY)
            return []
    source = _source_name(file, source_root)
    doc_id = escape_undecodable(file.resolve().as_posix())  # the same whatever the working directory
    try:
        if suffix == ".jsonl":
            docs = list(_read_jsonl(data, doc_id, source, report))
        elif suffix in _RICH:
            docs = _parse_bounded(suffix, data, doc_id, source, named, limits)
        else:
            text, encoding = decode_bytes(data)
            if suffix in _MARKDOWN:
                docs = [read_markdown(text, doc_id, source, named, encoding)]
            else:
                docs = [read_plain(text, doc_id, source, named, encoding)]
    except UndecodableError as exc:
        report.skip(file, str(exc), BINARY if str(exc).startswith("binary") else UNDECODABLE)
        return []
    except UnreadableError as exc:
        report.skip(file, str(exc), UNPARSEABLE)
        return []
    docs = [d if suffix in _PLAIN else _cut(d, limits.max_chars, file) for d in docs if d.text.strip()]
    if not docs:
        report.skip(file, "no text in file", NO_TEXT)
        return []
    report.read += 1
    return docs


class _TooLarge(Exception):
    """Decompressed data past its bound."""


def gunzip_bounded(data: bytes, max_bytes: int) -> bytes:
    """The decompressed bytes of gzip ``data`` (every member), never holding more
    than ``max_bytes`` of output: a gzip bomb stops at the bound."""
    out = bytearray()
    rest = data
    while rest:
        decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header and trailer
        chunk = rest
        try:
            while chunk:
                out += decoder.decompress(chunk, max_bytes + 1 - len(out))
                if len(out) > max_bytes:
                    raise _TooLarge
                chunk = decoder.unconsumed_tail
        except zlib.error as exc:
            raise UnreadableError(f"not a valid gzip file ({exc})") from None
        if not decoder.eof:
            raise UnreadableError("truncated gzip file (it ends before its data does)")
        rest = decoder.unused_data.lstrip(b"\x00")  # a next member, or the zero padding some tools write
    return bytes(out)


_RICH = (".pdf", ".html", ".htm")  # parsed in a bounded child process


def _parse_bounded(
    suffix: str, data: bytes, doc_id: str, source: str, file: Path, limits: ReadLimits
) -> list[Document]:
    try:
        result = run_bounded(
            _parse_rich,
            (suffix, data, doc_id, source, str(file), limits.max_pages),
            limits.parse_seconds,
            limits.parse_memory_mb,
        )
    except LimitExceeded as exc:
        raise UnreadableError(f"{exc}; raise parse_seconds or parse_memory_mb in the index config to read it") from None
    except RuntimeError as exc:
        raise UnreadableError(f"could not be parsed ({exc})") from None
    if "unreadable" in result:
        raise UnreadableError(result["unreadable"])
    return [Document(**row) for row in result["docs"]]


def _parse_rich(suffix: str, data: bytes, doc_id: str, source: str, file: str, max_pages: int) -> dict:
    """HTML or PDF bytes to documents, as JSON-ready rows (runs in the bounded child)."""
    try:
        if suffix == ".pdf":
            doc = read_pdf(data, doc_id, source, Path(file), max_pages)
        else:
            text, encoding = decode_bytes(data)
            doc = read_html(text, doc_id, source, Path(file), encoding)
    except (UndecodableError, UnreadableError) as exc:
        return {"unreadable": str(exc)}
    return {"docs": [{**dataclasses.asdict(doc), "metadata": dict(doc.metadata)}]}


def _cut(doc: Document, max_chars: int, file: Path) -> Document:
    """``doc`` with its text cut at ``max_chars`` characters (with one warning)."""
    if len(doc.text) <= max_chars:
        return doc
    logger.warning(
        "%s: only the first %s of its %s characters are indexed (max_chars)",
        file,
        f"{max_chars:,}",
        f"{len(doc.text):,}",
    )
    return dataclasses.replace(doc, text=doc.text[:max_chars])


class _Replacements:
    """Counts the bytes a decoder replaced with U+FFFD, and where the first was."""

    def __init__(self) -> None:
        self.count = 0
        self.first: int | None = None
        self.consumed = 0  # file offset of the first byte the decoder is given next

    def record(self, exc: UnicodeDecodeError) -> tuple[str, int]:
        if self.first is None:
            self.first = self.consumed + exc.start
        self.count += exc.end - exc.start
        return "\ufffd", exc.end


_current = threading.local()  # the _Replacements of the stream this thread decodes


def _replace_and_count(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return _current.replacements.record(exc)


codecs.register_error("ragqa-replace", _replace_and_count)


def _stream_text(file: Path, report: IngestReport, source_root: str | Path | None = None) -> Iterator[Document]:
    """Read a large plain-text file in parts of about :data:`PART_BYTES`.

    The encoding is detected on the first block; a byte that is invalid
    later on becomes U+FFFD with one warning, rather than losing the file.
    """
    source = _source_name(file, source_root)
    doc_id = escape_undecodable(file.resolve().as_posix())
    markdown = file.suffix.lower() in (".md", ".markdown")
    try:
        fh = open(file, "rb")
    except OSError as exc:
        report.skip(file, exc.strerror or str(exc), UNREADABLE)
        return
    with fh:
        try:
            block = fh.read(PART_BYTES)
            encoding = detect_encoding(block)
        except OSError as exc:
            report.skip(file, exc.strerror or str(exc), UNREADABLE)
            return
        except UndecodableError as exc:
            report.skip(file, str(exc), BINARY if str(exc).startswith("binary") else UNDECODABLE)
            return
        errors = _Replacements()
        decoder = codecs.getincrementaldecoder(encoding)(errors="ragqa-replace")
        pending, offset, line, part, title, fed = "", 0, 1, 0, file_title(file), 0
        while True:
            final = not block
            _current.replacements = errors
            errors.consumed = fed - len(decoder.getstate()[0])  # the decoder may hold a partial character
            pending += decoder.decode(block, final=final)
            fed += len(block)
            if part == 0 and control_ratio(pending) > 0.05:
                report.skip(file, "binary content (control characters)", BINARY)
                return
            cut = len(pending) if final else _part_end(pending)
            if cut:
                text, pending = pending[:cut], pending[cut:]
                if part == 0 and markdown:
                    match = _MD_HEADING.search(text)
                    title = match.group(1).strip() if match else title
                if text.strip():
                    yield Document(
                        doc_id=f"{doc_id}#part{part}",
                        source=source,
                        text=text,
                        title=title,
                        metadata={"encoding": encoding, "offset": offset, "first_line": line},
                    )
                    part += 1
                offset += len(text)
                line += text.count("\n")
            if final:
                break
            try:
                block = fh.read(PART_BYTES)
            except OSError as exc:
                report.skip(file, f"{exc.strerror or exc} after {fed} bytes; the text before was indexed", UNREADABLE)
                return
    if errors.count:
        logger.warning(
            "%s: %d bytes are not valid %s (first at byte %d): read as U+FFFD",
            file,
            errors.count,
            encoding,
            errors.first,
        )
    if part == 0:
        report.skip(file, "no text in file", NO_TEXT)
    else:
        report.read += 1


def _part_end(text: str) -> int:
    """Where to end a part: after the last paragraph break in the second half
    of ``text``, else after its last line break, else 0 (read more first)."""
    half = len(text) // 2
    for sep in ("\n\n", "\n"):
        at = text.rfind(sep, half)
        if at >= 0:
            return at + len(sep)
    return 0 if len(text) < 4 * PART_BYTES else text.rfind(" ") + 1 or len(text)


def _source_name(file: Path, source_root: str | Path | None = None) -> str:
    """Paths inside ``source_root`` (default: the working directory) are kept relative, others absolute."""
    resolved = file.resolve()
    root = Path(source_root).resolve() if source_root is not None else Path.cwd().resolve()
    try:
        return escape_undecodable(resolved.relative_to(root).as_posix())
    except ValueError:
        return escape_undecodable(resolved.as_posix())


_MD_HEADING = re.compile(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _read_jsonl(data: bytes, doc_id: str, source: str, report: IngestReport) -> Iterator[Document]:
    try:
        text, _ = decode_bytes(data)
    except UndecodableError as exc:
        raise UnreadableError(str(exc)) from exc
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            report.skip(where, f"invalid JSON ({exc.msg}); line left out", JSONL_LINE)
            continue
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            report.skip(where, 'each line needs a JSON object with a string "text" field; line left out', JSONL_LINE)
            continue
        doc_key = str(row.get("id", row.get("_id", lineno)))
        if doc_key in seen:
            report.skip(where, f"duplicate id {doc_key!r}; line left out", JSONL_LINE)
            continue
        seen.add(doc_key)
        metadata = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
        yield Document(
            doc_id=f"{doc_id}#{doc_key}",
            source=source,
            text=row["text"],
            title=str(row.get("title") or ""),
            metadata={**metadata, "id": doc_key, "line": lineno, "one_line": True},
        )
