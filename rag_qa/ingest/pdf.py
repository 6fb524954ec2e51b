"""PDF bytes to a :class:`Document` whose text is the readable text of the pages.

Text is extracted with PDFium (``pypdfium2``), then cleaned the way a reader
would skim the page:

- running headers and footers (lines at the top or bottom of most pages, page
  numbers normalised away, so ``Page 3 of 12`` matches ``Page 4 of 12``; a
  title followed by the chapter name counts once its title repeats) are dropped;
- dot-leader lines (``Installation ....... 4``) are dropped, and so are whole
  pages made mostly of contents or index lines (``hyphenation, 4, 12``);
- a word hyphenated at a line end is rejoined (``man-`` / ``agement`` ->
  ``management``); a compound keeps its hyphen (``well-`` / ``known`` ->
  ``well-known``) when the document spells it so elsewhere or its first part
  is a usual compound head;
- lines of one paragraph are joined with spaces, so the PDF's line wrapping
  does not cut sentences; paragraphs (a vertical gap, a change of font size,
  a new column, a short line ending a sentence) are separated by blank lines,
  and short lines such as table rows keep their line breaks.

``metadata["page_starts"]`` holds where each physical page starts in the text
(a dropped page starts where the next kept one does), so a passage knows its
1-based page.
"""

from __future__ import annotations

import logging
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rag_qa.ingest.decoding import UnreadableError
from rag_qa.text import file_title
from rag_qa.types import Document

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Line:
    """One extracted line, with where it sits on the page when the extractor knows.

    ``top_y`` is the baseline of its first character, ``bottom_y`` that of its
    last (PDF points, growing upwards), ``width`` from its first character's
    left edge to its last one's right edge, ``size`` the font size of its first
    character; ``cells`` whether wide gaps split it into table cells.
    """

    text: str
    top_y: float | None = None
    bottom_y: float | None = None
    width: float | None = None
    size: float | None = None
    cells: bool = False


# ------------------------------------------------------------------ extraction


def read_pdf(data: bytes, doc_id: str, source: str, file: Path, max_pages: int = 5000) -> Document:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise UnreadableError(
                "encrypted PDF that needs a password; decrypt it first "
                "(`qpdf --password=PASSWORD --decrypt in.pdf out.pdf`)"
            ) from None
        raise UnreadableError(f"PDF could not be parsed ({exc})") from None
    try:
        count = len(pdf)
        if count > max_pages:
            logger.warning("%s: only the first %d of its %d pages are read (max_pages)", file, max_pages, count)
        pages = []
        for number in range(min(count, max_pages)):
            try:
                pages.append(_page_lines(pdf[number]))
            except pdfium.PdfiumError as exc:
                logger.warning("%s: page %d could not be read (%s)", file, number + 1, exc)
                pages.append([])
        title = str(pdf.get_metadata_dict().get("Title") or "").strip()
    finally:
        pdf.close()
    text, page_starts = clean_pages(pages)
    return Document(
        doc_id=doc_id,
        source=source,
        text=text,
        title=title or file_title(file),
        metadata={"page_starts": page_starts},
    )


def _page_lines(page) -> list[Line]:
    """The lines of one PDFium page, each with the position of its first and last character."""
    import ctypes

    import pypdfium2.raw as raw

    textpage = page.get_textpage()
    try:
        text = textpage.get_text_range()
        x, y = ctypes.c_double(), ctypes.c_double()

        def baseline(index: int) -> float:
            raw.FPDFText_GetCharOrigin(textpage.raw, index, ctypes.byref(x), ctypes.byref(y))
            return y.value

        lines = []
        for match in re.finditer(r"[^\r\n]+", text):
            body = match.group()
            first = match.start() + len(body) - len(body.lstrip())
            last = match.start() + len(body.rstrip()) - 1
            if last < first:
                continue
            left, right = textpage.get_charbox(first)[0], textpage.get_charbox(last)[2]
            size = raw.FPDFText_GetFontSize(textpage.raw, first)
            lines.append(
                Line(
                    text=body.strip(),
                    top_y=baseline(first),
                    bottom_y=baseline(last),
                    width=right - left,
                    size=size,
                    cells=_has_cells(textpage, text, first, last, 2 * size),
                )
            )
        return lines
    finally:
        textpage.close()
        page.close()


def _has_cells(textpage, text: str, first: int, last: int, wide: float) -> bool:
    """Whether a space between ``first`` and ``last`` spans more than ``wide`` points (a table's column gap)."""
    for index in range(first + 1, last):
        if text[index] == " " and text[index - 1] != " ":
            if textpage.get_charbox(index + 1)[0] - textpage.get_charbox(index - 1)[2] > wide:
                return True
    return False


# ------------------------------------------------------------------ cleaning


def clean_pages(pages: list[list[Line]]) -> tuple[str, list[int]]:
    """The document text of ``pages`` (each a list of lines) and where each page starts in it."""
    pages = drop_running_lines(pages)
    pages = [
        [] if _is_reference_page(lines) else [ln for ln in lines if not _LEADER.search(ln.text)] for lines in pages
    ]
    vocabulary = _vocabulary(pages)
    texts = [paragraphs(lines, vocabulary) for lines in pages]
    parts, starts, offset = [], [], 0
    for text in texts:
        if text and parts:
            offset += 2
        starts.append(offset)
        if text:
            parts.append(text)
            offset += len(text)
    # a dropped (empty) page starts where the next kept page does
    for i in range(len(starts) - 2, -1, -1):
        if not texts[i]:
            starts[i] = starts[i + 1]
    return "\n\n".join(parts), starts


_DIGITS = re.compile(r"\d+")
_ROMAN_ALONE = re.compile(r"^[ivxlcdm]+$")
_PAGE_NUMBER = {"#", "- # -", "-#-", "[#]", "(#)", "page #", "# of #", "page # of #"}
EDGE = 3  # lines at the top and at the bottom of a page that may be running headers or footers


def _key(text: str) -> str:
    key = _DIGITS.sub("#", " ".join(text.split()).casefold())
    return "#" if _ROMAN_ALONE.match(key) else key


def drop_running_lines(pages: list[list[Line]]) -> list[list[Line]]:
    """``pages`` without the lines repeated at the top or bottom of most pages.

    A line near a page's top or bottom (``EDGE`` lines, in extraction order)
    is running when, digits normalised, the same line sits near the edge of at
    least half the pages (and at least two), or when it is short and begins
    or ends with words that do (a running title followed by the chapter name).
    A bare page number as a page's first or last line is dropped too.
    Documents of fewer than three pages are left as they are.
    """
    if len(pages) < 3:
        return pages
    pages = [
        [ln for i, ln in enumerate(lines) if not (i in (0, len(lines) - 1) and _key(ln.text) in _PAGE_NUMBER)]
        for lines in pages
    ]
    need = max(2, math.ceil(0.5 * sum(1 for p in pages if p)))

    def edges(lines: list[Line]) -> list[int]:
        return sorted(set(range(min(EDGE, len(lines)))) | set(range(max(0, len(lines) - EDGE), len(lines))))

    whole, heads, tails = Counter(), Counter(), Counter()
    for lines in pages:
        keys = [_key(lines[i].text) for i in edges(lines)]
        whole.update(set(keys))
        starts, ends = set(), set()
        for key in keys:
            words = key.split()
            for n in range(2, len(words)):
                starts.add(" ".join(words[:n]))
                ends.add(" ".join(words[-n:]))
        heads.update(starts)
        tails.update(ends)
    running = {k for k, n in whole.items() if n >= need}
    run_heads = {k for k, n in heads.items() if n >= need and len(k) >= 6}
    run_tails = {k for k, n in tails.items() if n >= need and len(k) >= 6}
    if not (running or run_heads or run_tails):
        return pages

    def is_running(text: str) -> bool:
        key = _key(text)
        if key in running:
            return True
        words = key.split()
        if len(words) > 12:
            return False
        return any(" ".join(words[:n]) in run_heads or " ".join(words[-n:]) in run_tails for n in range(2, len(words)))

    out = []
    for lines in pages:
        at_edge = set(edges(lines))
        out.append([ln for i, ln in enumerate(lines) if not (i in at_edge and is_running(ln.text))])
    return out


# A dot leader: four or more dots (or spaced dots, or an ellipsis character) before a page number.
_LEADER = re.compile(r"(?:\.\s*){4,}\s*(?:\d+|[ivxlcdm]+)\s*$|(?:…\s*)+(?:\d+|[ivxlcdm]+)\s*$", re.IGNORECASE)
_PAGES = r"\d+(?:\s*[-–]\s*\d+)?(?:\s*,\s*\d+(?:\s*[-–]\s*\d+)?)*"
# index entries ("hyphenation, 4, 12"), possibly two columns side by side on one line
_INDEX_LINE = re.compile(rf"^(?:[^\W\d][^,]{{0,60}},\s*(?:see\s+(?:also\s+)?\S.*|{_PAGES})\s*)+$", re.IGNORECASE)
# contents entries without leaders ("2.1 Indexing 14", "Chapter 3 Asking 27")
_CONTENTS_LINE = re.compile(
    r"^(?:chapter\s+)?(?:\d+(?:\.\d+)*|[A-Z])\.?\s+\S.{0,80}?\s(?:\d+|[ivxlcdm]+)$", re.IGNORECASE
)
_REFERENCE_TITLE = re.compile(r"^(?:table of )?contents$|^index$|^inhalt(?:sverzeichnis)?$|^sommaire$", re.IGNORECASE)


def is_reference_line(text: str) -> bool:
    """Whether ``text`` is a line of a table of contents or of an index."""
    text = text.strip()
    return bool(_LEADER.search(text) or _INDEX_LINE.match(text) or _CONTENTS_LINE.match(text))


def _is_reference_page(lines: list[Line]) -> bool:
    """A contents or index page: most of its lines are contents or index lines."""
    texts = [ln.text for ln in lines if ln.text.strip()]
    if not texts:
        return False
    refs = sum(is_reference_line(t) for t in texts)
    titled = any(_REFERENCE_TITLE.match(t.strip()) for t in texts[:3])
    return refs >= 3 and refs >= (0.4 if titled else 0.6) * len(texts)


# ------------------------------------------------------------------ paragraphs and hyphens

_WORD = re.compile(r"[^\W\d_](?:[\w'’-]*\w)?")
# First parts that make compounds rather than syllables: "well-known", "read-only", "self-contained".
COMPOUND_HEADS = frozenset(
    "well self non ill all ex half built read write two three four one first second third high low long short "
    "full cross multi open user end top state real case hard soft up out off left right part fine so "
    "far near old new semi quasi anti pre post".split()
)
_SOFT_HYPHENS = "\ufffe\xad\u2010-"  # PDFium marks a line-end hyphen it removed the break after as U+FFFE


def _vocabulary(pages: list[list[Line]]) -> set[str]:
    """The words of the document, lowercased, as written inside lines (not broken at a line end)."""
    words = set()
    for lines in pages:
        for ln in lines:
            # words hyphenated by PDFium at a line end are left out: they are what is being decided
            words.update(w.casefold() for w in _WORD.findall(re.sub(r"\S*\ufffe\S*", " ", ln.text)))
    return words


def join_hyphenated(head: str, tail: str, vocabulary: set[str] = frozenset()) -> str:
    """``head`` (ending in a hyphen, at a line end) joined to ``tail``: the hyphen dropped for a split
    word, kept for a compound or where ``tail`` does not start in lowercase."""
    stem = head.rstrip(_SOFT_HYPHENS)
    if not tail[:1].islower() or not stem[-1:].isalpha():
        return f"{stem}-{tail}"
    last = _WORD.findall(stem)
    first = _WORD.findall(tail)
    if not last or not first:
        return stem + tail
    left, right = last[-1].casefold(), first[0].casefold()
    if f"{left}-{right}" in vocabulary:
        return f"{stem}-{tail}"
    if left + right in vocabulary:
        return stem + tail
    return f"{stem}-{tail}" if left in COMPOUND_HEADS else stem + tail


def _join_marked(text: str, vocabulary: set[str]) -> str:
    """``text`` with the line-end hyphens PDFium marked (U+FFFE) resolved."""
    if "\ufffe" not in text:
        return text
    return re.sub(r"(\S+)\ufffe(\S+)", lambda m: join_hyphenated(m.group(1), m.group(2), vocabulary), text)


_HYPHEN_END = re.compile(r"[^\W\d_][-\xad\u2010]$")
_SENTENCE_END = re.compile(r"[.!?:;][\"'’”)\]]*$")
_LIST_ITEM = re.compile(r"^(?:[-•*▪◦–]\s|\(?\d{1,2}[.)]\s|\(?[a-z][.)]\s)")


def paragraphs(lines: list[Line], vocabulary: set[str] = frozenset()) -> str:
    """One page's lines as text: lines of a paragraph joined, paragraphs separated by blank lines.

    Where the lines carry positions, a paragraph ends at a vertical gap wider
    than the page's usual line spacing, a change of font size, or a jump up
    (a new column); with or without positions, at a short line that ends a
    sentence. A short line that does not (a heading, a table row) keeps its
    line break.
    """
    lines = [ln for ln in lines if ln.text.strip()]
    if not lines:
        return ""
    geometry = all(ln.width is not None and ln.top_y is not None for ln in lines)
    lengths = [ln.width if geometry else len(ln.text) for ln in lines]
    full = 0.8 * _percentile(lengths, 90)
    spacing = [a.bottom_y - b.top_y for a, b in zip(lines, lines[1:])] if geometry else []
    leading = statistics.median([s for s in spacing if s > 0] or [0.0])
    out = [_join_marked(lines[0].text.strip(), vocabulary)]
    for i in range(1, len(lines)):
        prev, line = lines[i - 1], lines[i]
        text = _join_marked(line.text.strip(), vocabulary)
        # a line that ends in a hyphenated word was full, whatever its length
        hyphen_end = bool(_HYPHEN_END.search(out[-1])) and text[:1].islower()
        short = lengths[i - 1] < full and not hyphen_end
        ends_sentence = bool(_SENTENCE_END.search(prev.text))
        new_block = False
        if geometry:
            gap = spacing[i - 1]
            sizes = (prev.size or 0, line.size or 0)
            new_block = (
                gap <= 0 or (leading and gap > 1.3 * leading) or (min(sizes) > 0 and max(sizes) / min(sizes) > 1.15)
            )
        if new_block or (short and ends_sentence):
            out.append("\n\n" + text)
        elif short or prev.cells or line.cells or _LIST_ITEM.match(text):
            out.append("\n" + text)
        elif hyphen_end:
            last_word = re.search(r"\S+$", out[-1]).group()
            out[-1] = out[-1][: -len(last_word)] + join_hyphenated(last_word, text, vocabulary)
        else:
            out.append(" " + text)
    return "".join(out).strip()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]
