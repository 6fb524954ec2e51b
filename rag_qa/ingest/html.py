"""HTML markup to the text a reader of the page sees.

Inline elements (``<code>``, ``<a>``, ``<em>``, ...) join the words around
them; block elements (paragraphs, list items, table rows, ``<pre>``, ...)
start a new block; ``<br>`` breaks a line. Dropped: ``<head>``, scripts,
styles, navigation, page headers and footers, forms, hidden elements and
heading anchor marks (``¶``). Table rows read as ``header: value; header:
value`` sentences, definition lists as ``term: definition``. Headings are not
text but sections (see :mod:`rag_qa.ingest.blocks`), and every block keeps
the line of the file where it starts.
"""

from __future__ import annotations

import re
from pathlib import Path

from rag_qa.ingest.blocks import TextBuilder, squeeze, table_rows
from rag_qa.text import file_title
from rag_qa.types import Document

_DROP = {
    "head",
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "button",
    "select",
    "svg",
    "canvas",
    "iframe",
    "object",
    "dialog",
    "menu",
}
_BLOCKS = {
    "address",
    "article",
    "blockquote",
    "body",
    "caption",
    "center",
    "dd",
    "details",
    "div",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "hr",
    "html",
    "li",
    "main",
    "ol",
    "p",
    "section",
    "summary",
    "ul",
    "dl",
}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_ANCHOR_MARKS = {"¶", "§", "#", "🔗", "⚓"}
_ANCHOR_CLASSES = {"headerlink", "anchor", "anchorjs-link", "heading-anchor", "header-anchor", "permalink"}
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


def read_html(markup: str, doc_id: str, source: str, file: Path, encoding: str) -> Document:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    walker = _Walker()
    walker.walk(soup)
    walker.flush()
    builder = walker.builder
    return Document(
        doc_id=doc_id,
        source=source,
        text=builder.text,
        title=title or builder.first_heading or file_title(file),
        metadata={"encoding": encoding, **builder.metadata()},
    )


def _dropped(tag) -> bool:
    if tag.name in _DROP:
        return True
    attrs = tag.attrs or {}
    if "hidden" in attrs or attrs.get("aria-hidden") == "true" or attrs.get("role") in ("navigation", "banner"):
        return True
    if _HIDDEN_STYLE.search(str(attrs.get("style", ""))):
        return True
    classes = set(attrs.get("class") or ())
    if tag.name == "a" and (classes & _ANCHOR_CLASSES or tag.get_text(strip=True) in _ANCHOR_MARKS):
        return True
    return False


class _Walker:
    """Walks the parsed page in document order, gathering inline text into blocks."""

    def __init__(self) -> None:
        self.builder = TextBuilder()
        self.parts: list[str] = []
        self.line: int | None = None
        self.breaks: list[int | None] = []  # the file line of each <br> in the block

    def flush(self) -> None:
        lines = [squeeze(line, keep_newlines=False) for line in "".join(self.parts).split("\n")]
        breaks = list(self.breaks)
        while lines and not lines[0]:
            lines.pop(0)
            breaks = breaks[1:]
        while lines and not lines[-1]:
            lines.pop()
        anchors, at = [(0, self.line)], 0
        for k in range(1, len(lines)):
            at += len(lines[k - 1]) + 1
            anchors.append((at, breaks[k - 1] if k - 1 < len(breaks) else None))
        self.builder.block("\n".join(lines), lines=anchors)
        self.parts, self.line, self.breaks = [], None, []

    def text(self, value: str, line: int | None) -> None:
        if self.line is None and value.strip():
            self.line = line
        self.parts.append(re.sub(r"\s+", " ", value))

    def walk(self, node, line: int | None = None) -> None:
        from bs4 import Comment, Declaration, Doctype, NavigableString, ProcessingInstruction, Tag

        for child in node.children:
            if isinstance(child, (Comment, Declaration, Doctype, ProcessingInstruction)):
                continue
            if isinstance(child, NavigableString):
                self.text(str(child), line)
                continue
            if not isinstance(child, Tag) or _dropped(child):
                continue
            at = getattr(child, "sourceline", None) or line
            name = child.name
            if name in _HEADINGS:
                self.flush()
                self.builder.heading(_HEADINGS[name], _inline(child))
            elif name == "br":
                self.parts.append("\n")
                self.breaks.append(at)
            elif name == "pre":
                self.flush()
                text = child.get_text()
                self.builder.block(text.strip("\n").rstrip(), line=at + (1 if text.startswith("\n") else 0))
            elif name == "table":
                self.flush()
                self.table(child, at)
            elif name == "dt":
                self.flush()
                self.line = at
                self.parts.append(_inline(child) + ": ")
                # the term waits for its definition (<dd>), which continues the block
            elif name == "dd":
                term = bool(self.parts) and "".join(self.parts).endswith(": ")
                if not term:
                    self.flush()
                self.walk(child, at)
                self.flush()
            elif name in _BLOCKS:
                self.flush()
                self.walk(child, at)
                self.flush()
            else:
                self.walk(child, at)

    def table(self, table, line: int) -> None:
        rows = table.find_all("tr")
        header: list[str] = []
        body = rows
        if rows and rows[0].find("th") is not None and rows[0].find("td") is None:
            header = [_inline(c) for c in rows[0].find_all(["th", "td"])]
            body = rows[1:]
        caption = table.find("caption")
        if caption is not None:
            self.builder.block(_inline(caption), line=getattr(caption, "sourceline", None) or line)
        for row in body:
            cells = [_inline(c) for c in row.find_all(["th", "td"])]
            for text in table_rows(header, [cells]):
                self.builder.block(text, line=getattr(row, "sourceline", None) or line)


def _inline(tag) -> str:
    """The text of ``tag`` as one line, anchors and hidden parts left out."""
    from bs4 import NavigableString, Tag

    out = []
    for node in tag.descendants:
        if type(node) is not NavigableString:
            continue
        hidden = False
        for parent in node.parents:
            if parent is tag:
                break
            if isinstance(parent, Tag) and _dropped(parent):
                hidden = True
                break
        if not hidden:
            out.append(str(node))
    return squeeze("".join(out), keep_newlines=False)
