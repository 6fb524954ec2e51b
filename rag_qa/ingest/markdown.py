"""Markdown source to the text a person reads (parsed with markdown-it-py).

Kept: paragraph and list text, link text (not the URL), inline code and code
blocks as their text, the text of inline HTML, table rows as ``header: value;
header: value`` sentences. Dropped: YAML front matter (its ``title`` becomes
the document title), images and badges, HTML tags and comments, link URLs,
emphasis marks. Headings are not text but sections (see
:mod:`rag_qa.ingest.blocks`); every block keeps the line of the file it came from.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from rag_qa.ingest.blocks import TextBuilder, squeeze, table_rows
from rag_qa.text import file_title
from rag_qa.types import Document

_FRONT_MATTER = re.compile(r"\A(?:\ufeff)?---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FRONT_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.MULTILINE)
_TAG = re.compile(r"<!--.*?-->|<(/?)([a-zA-Z][\w-]*)?[^>\n]*>", re.DOTALL)
_INLINE_TAGS = {
    "a",
    "abbr",
    "b",
    "code",
    "em",
    "i",
    "kbd",
    "mark",
    "s",
    "samp",
    "small",
    "span",
    "strong",
    "sub",
    "sup",
    "u",
    "var",
}
_BREAK_TAG = re.compile(r"<br\s*/?>", re.IGNORECASE)


def _parser():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table")


def read_markdown(text: str, doc_id: str, source: str, file: Path, encoding: str) -> Document:
    """``text`` (a Markdown file's decoded source) as a :class:`Document` of what it says."""
    text, front_title = _strip_front_matter(text)
    builder = TextBuilder()
    tokens = _parser().parse(text)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        kind = token.type
        if kind == "heading_open":
            builder.heading(int(token.tag[1:]), _inline_text(tokens[i + 1], keep_newlines=False))
            i += 3
            continue
        if kind == "inline":
            builder.block(_inline_text(token), line=_line(token))
        elif kind in ("fence", "code_block"):
            first = token.map[0] + (2 if kind == "fence" else 1) if token.map else None
            builder.block(token.content.rstrip("\n"), line=first)
        elif kind == "html_block":
            builder.block(_html_text(token.content), line=_line(token))
        elif kind == "table_open":
            i = _table(tokens, i, builder)
            continue
        i += 1
    title = front_title or builder.first_heading or file_title(file)
    return Document(
        doc_id=doc_id,
        source=source,
        text=builder.text,
        title=title,
        metadata={"encoding": encoding, **builder.metadata()},
    )


def _strip_front_matter(text: str) -> tuple[str, str]:
    """``text`` with YAML front matter blanked out (its lines kept as empty
    lines, so line numbers stay the file's), and the front matter's title."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return text, ""
    block = match.group(0)
    title = _FRONT_TITLE.search(match.group(1) or "")
    value = title.group(1).strip().strip("\"'") if title else ""
    return "\n" * block.count("\n") + text[match.end() :], value


def _line(token) -> int | None:
    return token.map[0] + 1 if token.map else None


def _inline_text(token, keep_newlines: bool = True) -> str:
    """The text of an inline token: link text without URLs, code as its text,
    inline HTML without its tags; soft breaks stay line breaks (the file's)."""
    out = []
    for child in token.children or ():
        kind = child.type
        if kind in ("text", "code_inline"):
            out.append(child.content)
        elif kind in ("softbreak", "hardbreak"):
            out.append("\n")
        elif kind == "html_inline":
            out.append(" " if _BREAK_TAG.fullmatch(child.content.strip()) else "")
        # images (badges), link and emphasis marks give no text
    text = "".join(out)
    return squeeze(text, keep_newlines=keep_newlines)


def _html_text(markup: str) -> str:
    def tag(match: re.Match) -> str:  # inline tags join their neighbours, others separate them
        return "" if (match.group(2) or "").lower() in _INLINE_TAGS else " "

    lines = [html.unescape(_TAG.sub(tag, line)) for line in markup.rstrip("\n").split("\n")]
    return squeeze("\n".join(lines))


def _table(tokens, i: int, builder: TextBuilder) -> int:
    """Read the table that opens at ``tokens[i]``; return the index after it."""
    header: list[str] = []
    rows: list[tuple[int | None, list[str]]] = []
    row: list[str] = []
    in_head = False
    line = None
    while i < len(tokens) and tokens[i].type != "table_close":
        token = tokens[i]
        if token.type == "thead_open":
            in_head = True
        elif token.type == "thead_close":
            in_head = False
        elif token.type == "tr_open":
            row, line = [], _line(token)
        elif token.type == "tr_close":
            if in_head:
                header = row
            else:
                rows.append((line, row))
        elif token.type == "inline":
            row.append(_inline_text(token, keep_newlines=False))
        i += 1
    for at, cells in rows:
        for text in table_rows(header, [cells]):
            builder.block(text, line=at)
    return i + 1
