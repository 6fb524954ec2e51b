"""Markdown source to a :class:`Document`."""

from __future__ import annotations

import re
from pathlib import Path

from rag_qa.text import file_title
from rag_qa.types import Document

_MD_HEADING = re.compile(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def read_markdown(text: str, doc_id: str, source: str, file: Path, encoding: str) -> Document:
    match = _MD_HEADING.search(text)
    title = match.group(1).strip() if match else file_title(file)
    return Document(doc_id=doc_id, source=source, text=text, title=title, metadata={"encoding": encoding})
