"""Extracted text, assembled block by block, that still knows where it came from.

Markdown, HTML and underlined plain-text headings are not indexed as their
source: their readers hand :class:`TextBuilder` the blocks a person reads
(paragraphs, list items, table rows as ``header: value`` cells, code) and the
headings above them. The result is a :class:`~rag_qa.types.Document` whose

- ``text`` holds the blocks, separated by blank lines, and no headings: a
  heading is context, not an answer;
- ``metadata["line_map"]`` holds ``[offset, line]`` anchors: the text at
  ``offset`` comes from 1-based ``line`` of the file, and each line break after
  it is one more line, up to the next anchor;
- ``metadata["sections"]`` holds ``[offset, "Heading > Subheading"]``: the
  heading path in force from ``offset`` on (chunking gives each passage the
  section it starts in, and the retrievers read it with the passage).
"""

from __future__ import annotations

import re
from typing import Any

_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n")


def squeeze(text: str, keep_newlines: bool = True) -> str:
    """Runs of spaces as one space, each line stripped; blank lines dropped
    (line breaks kept when ``keep_newlines``, else read as spaces)."""
    if not keep_newlines:
        return _SPACES.sub(" ", text.replace("\n", " ")).strip()
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return "\n".join(lines).strip("\n")


class TextBuilder:
    """Collects blocks and headings in reading order; :meth:`metadata` says where each came from."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self._line_map: list[list[int]] = []
        self._sections: list[list[Any]] = []
        self._headings: list[tuple[int, str]] = []  # (level, text) of the open headings

    @property
    def text(self) -> str:
        return "".join(self._parts)

    @property
    def first_heading(self) -> str:
        return next((text for level, text in self._headings if level == 1), "")

    def heading(self, level: int, text: str) -> None:
        """A heading of ``level`` (1 for a title) opens a section for the blocks after it."""
        text = squeeze(text, keep_newlines=False)
        if not text:
            return
        self._headings = [(lv, t) for lv, t in self._headings if lv < level] + [(level, text)]
        path = " > ".join(t for _, t in self._headings)
        if self._sections and self._sections[-1][0] == self._length:
            self._sections[-1][1] = path
        else:
            self._sections.append([self._length, path])

    def block(self, text: str, line: int | None = None, lines: list[tuple[int, int]] | None = None) -> None:
        """A block of text from 1-based ``line`` of the file (its line breaks are
        the file's), or with ``lines``: ``(offset in text, line)`` anchors of its own."""
        if not text.strip():
            return
        if self._parts:
            self._parts.append("\n\n")
            self._length += 2
        anchors = list(lines or ([(0, line)] if line is not None else []))
        for offset, at in anchors:
            if at is None:
                continue
            if self._line_map and self._line_map[-1][0] == self._length + offset:
                self._line_map[-1][1] = at
            else:
                self._line_map.append([self._length + offset, at])
        self._parts.append(text)
        self._length += len(text)

    def metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self._line_map:
            out["line_map"] = self._line_map
        if self._sections:
            out["sections"] = [s for s in self._sections if s[0] < self._length]
        return out


def table_rows(header: list[str], rows: list[list[str]]) -> list[str]:
    """Table rows as a reader can use them: ``header: value; header: value`` per row
    (cells under an empty header, or in a table without one, as they are)."""
    out = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cell = squeeze(cell, keep_newlines=False)
            if not cell:
                continue
            name = squeeze(header[i], keep_newlines=False) if i < len(header) else ""
            cells.append(f"{name}: {cell}" if name and name != cell else cell)
        if cells:
            out.append("; ".join(cells) + ("" if cells[-1].endswith((".", "!", "?")) else "."))
    return out


def collapse_blank_lines(text: str) -> str:
    return _BLANK_LINES.sub("\n\n", text)
