"""Cut documents into overlapping passages that end on sentence boundaries.

Everything works on word spans (runs of non-space characters) of the
document text, so every passage is an exact slice ``text[start:end]`` and
every word of the document lands in at least one passage.
"""

from __future__ import annotations

import bisect
import hashlib

from rag_qa.config import ChunkingConfig
from rag_qa.text import sentence_ranges, word_spans
from rag_qa.types import Document, Passage


def _units(ranges: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """Sentences, with any sentence longer than ``size`` words cut into pieces."""
    units = []
    for a, b in ranges:
        while b - a > size:
            units.append((a, a + size))
            a += size
        units.append((a, b))
    return units


def chunk_document(doc: Document, config: ChunkingConfig = ChunkingConfig()) -> list[Passage]:
    """Greedily pack whole sentences into passages of at most ``size`` words.

    Consecutive passages share trailing sentences of the previous passage
    totalling at most ``overlap`` words.
    """
    words = word_spans(doc.text)
    if not words:
        return []
    units = _units(sentence_ranges(doc.text, words), config.size)
    passages: list[Passage] = []
    first = 0
    # 1-based line number at offset ``counted_to``; a part of a streamed file
    # starts at its own line and character offset in the file.
    # A JSONL record is one line of its file, whatever line breaks its text holds.
    one_line = bool(doc.metadata.get("one_line"))
    line, counted_to = int(doc.metadata.get("line" if one_line else "first_line", 1)), 0
    places = _Places(doc)
    while first < len(units):
        last = first
        while last + 1 < len(units) and units[last + 1][1] - units[first][0] <= config.size:
            last += 1
        start, end = words[units[first][0]][0], words[units[last][1] - 1][1]
        if not one_line:
            line += doc.text.count("\n", counted_to, start)
        counted_to = start
        passages.append(_make_passage(doc, start, end, line, places))
        if last == len(units) - 1:
            break
        # Step back over whole trailing units while they fit in the overlap and
        # leave room for the next new unit, so every passage adds new text.
        nxt = last + 1
        while (
            nxt - 1 > first
            and units[last][1] - units[nxt - 1][0] <= config.overlap
            and units[last + 1][1] - units[nxt - 1][0] <= config.size
        ):
            nxt -= 1
        first = nxt
    return passages


_DOCUMENT_ONLY = ("page_starts", "offset", "first_line", "line_map", "sections")


class _Places:
    """Where a document's text came from: lines of the file (plain text counts
    line breaks; extracted text has ``line_map`` anchors; PDF text has pages,
    no lines) and the section each offset sits in."""

    def __init__(self, doc: Document):
        meta = doc.metadata
        self.line_map = [tuple(a) for a in meta.get("line_map") or ()]
        self.map_offsets = [a[0] for a in self.line_map]
        self.sections = [tuple(s) for s in meta.get("sections") or ()]
        self.section_offsets = [s[0] for s in self.sections]
        self.lineless = bool(meta.get("page_starts")) and not self.line_map
        self.text = doc.text

    def section(self, offset: int) -> str | None:
        at = bisect.bisect_right(self.section_offsets, offset) - 1
        return self.sections[at][1] if at >= 0 else None

    def anchors(self, start: int, end: int) -> tuple[int | None, list[list[int]]]:
        """The file line at ``start``, and the anchors inside ``(start, end)`` relative to ``start``."""
        at = bisect.bisect_right(self.map_offsets, start) - 1
        if at < 0:
            line = None
        else:
            offset, line = self.line_map[at]
            line += self.text.count("\n", offset, start)
        inside = []
        for offset, anchor in self.line_map[max(at + 1, 0) :]:
            if offset >= end:
                break
            inside.append([offset - start, anchor])
        return line, inside


def _make_passage(doc: Document, start: int, end: int, line: int, places: _Places | None = None) -> Passage:
    places = places or _Places(doc)
    text = doc.text[start:end]
    section = places.section(start)
    if places.line_map:
        line, inside = places.anchors(start, end)
    else:
        inside = []
    shift = int(doc.metadata.get("offset", 0))
    start, end = start + shift, end + shift
    digest = hashlib.sha1(f"{doc.doc_id}\0{start}\0{end}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()
    metadata = {k: v for k, v in doc.metadata.items() if k not in _DOCUMENT_ONLY}
    if line is not None and not places.lineless:
        metadata["line"] = line
    if inside:
        metadata["line_map"] = inside
    if section:
        metadata["section"] = section
    page_starts = doc.metadata.get("page_starts")
    if page_starts:
        metadata["page"] = _page_of(page_starts, start)
        breaks = [[at - start, number] for number, at in enumerate(page_starts, 1) if start < at < end]
        if breaks:
            metadata["page_breaks"] = breaks
    return Passage(
        passage_id=digest[:16],
        doc_id=doc.doc_id,
        source=doc.source,
        text=text,
        start=start,
        end=end,
        title=doc.title,
        metadata=metadata,
    )


def _page_of(page_starts: list[int], offset: int) -> int:
    return bisect.bisect_right(page_starts, offset)
