"""HTML markup to a :class:`Document` whose text is what a reader of the page sees."""

from __future__ import annotations

from pathlib import Path

from rag_qa.text import file_title
from rag_qa.types import Document


def read_html(markup: str, doc_id: str, source: str, file: Path, encoding: str) -> Document:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    blocks = [line.strip() for line in soup.get_text("\n").splitlines()]
    text = "\n".join(line for line in blocks if line)
    return Document(
        doc_id=doc_id, source=source, text=text, title=title or file_title(file), metadata={"encoding": encoding}
    )
