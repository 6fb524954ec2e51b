"""Plain text and reStructuredText: headings and markup blanked out in place.

Offsets into a plain-text document are offsets into the file, and its line
breaks are the file's. So instead of cutting text out, what is not prose is
overwritten with spaces of the same length: underlined (and overlined)
headings, which become sections (see :mod:`rag_qa.ingest.blocks`), and in
``.rst`` files directive lines (``.. note::``), role names (``:ref:``),
inline-literal backquotes and link targets (`` `text <url>`_ `` reads
``text``). Everything else stays as written.
"""

from __future__ import annotations

import re
from pathlib import Path

from rag_qa.text import file_title
from rag_qa.types import Document

_ADORNMENT = re.compile(r"^([=\-~^*#+\"'`:.])\1{2,}[ \t]*$")
_RST_DIRECTIVE = re.compile(r"^[ \t]*\.\.[ \t]+(?:[\w-]+::.*|_[^:]+:.*|\|[^|]+\|.*)?$", re.MULTILINE)
_RST_ROLE = re.compile(r":[\w.+-]+:(?=`)")
_RST_LINK = re.compile(r"`([^`<>\n]+?)\s*<[^>\n]*>`__?")
_RST_MARKS = re.compile(r"``|(?<![\w`])`(?=\S)|(?<=\S)`_{0,2}(?![\w`])|\*\*")


def read_plain(text: str, doc_id: str, source: str, file: Path, encoding: str) -> Document:
    """A ``.txt``, ``.rst`` or extension-less text file as a :class:`Document`."""
    rst = file.suffix.lower() == ".rst"
    if rst:
        text = _blank_rst_markup(text)
    text, sections = blank_headings(text)
    metadata = {"encoding": encoding}
    if sections:
        metadata["sections"] = sections
    title = sections[0][1].split(" > ")[0] if sections and sections[0][0] < 200 else file_title(file)
    return Document(doc_id=doc_id, source=source, text=text, title=title, metadata=metadata)


def _spaces(match: re.Match) -> str:
    return re.sub(r"[^\n]", " ", match.group(0))


def _blank_rst_markup(text: str) -> str:
    text = _RST_DIRECTIVE.sub(_spaces, text)
    text = _RST_LINK.sub(lambda m: m.group(1) + " " * (len(m.group(0)) - len(m.group(1))), text)
    text = _RST_ROLE.sub(_spaces, text)
    return _RST_MARKS.sub(_spaces, text)


def blank_headings(text: str) -> tuple[str, list[list]]:
    """``text`` with underlined headings overwritten by spaces, and the sections they open.

    A heading is a line of text followed by a line of one repeated punctuation
    character (``====``, ``----``, ``~~~~``) at least as long as most of it,
    maybe with the same line above (overline). Levels follow the order in which
    each adornment style first appears, as reStructuredText does.
    """
    lines = text.split("\n")
    starts, at = [], 0
    for line in lines:
        starts.append(at)
        at += len(line) + 1
    styles: list[tuple[str, bool]] = []
    stack: list[tuple[int, str]] = []
    sections: list[list] = []
    blank: list[int] = []
    i = 1
    while i < len(lines):
        under, title = lines[i].rstrip(), lines[i - 1].strip()
        match = _ADORNMENT.match(under)
        if (
            match
            and title
            and not _ADORNMENT.match(title)
            and len(under) >= max(3, int(0.6 * len(title)))
            and len(title) <= 120
            and "   " not in title
        ):
            char = match.group(1)
            over = i >= 2 and lines[i - 2].rstrip() == under
            style = (char, over)
            if style not in styles:
                styles.append(style)
            level = styles.index(style) + 1
            stack = [(lv, t) for lv, t in stack if lv < level] + [(level, title)]
            first = i - 2 if over else i - 1
            blank.extend(range(first, i + 1))
            end = starts[i] + len(lines[i])
            sections.append([end, " > ".join(t for _, t in stack)])
            i += 2
            continue
        i += 1
    if not blank:
        return text, []
    for n in blank:
        lines[n] = " " * len(lines[n])
    return "\n".join(lines), sections
