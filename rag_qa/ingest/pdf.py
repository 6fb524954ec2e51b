"""PDF bytes to a :class:`Document` whose text is the extracted pages.

``metadata["page_starts"]`` holds where each page starts in the text, so a
passage knows its page.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rag_qa.ingest.decoding import UnreadableError
from rag_qa.text import file_title
from rag_qa.types import Document

logger = logging.getLogger(__name__)


def read_pdf(data: bytes, doc_id: str, source: str, file: Path, max_pages: int = 5000) -> Document:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableError("encrypted PDF; decrypt it first")
        pages, page_starts, offset = [], [], 0
        for number, page in enumerate(reader.pages):
            if number >= max_pages:
                logger.warning(
                    "%s: only the first %d of its %d pages are read (max_pages)", file, max_pages, len(reader.pages)
                )
                break
            page_text = (page.extract_text() or "").strip()
            page_starts.append(offset)
            pages.append(page_text)
            offset += len(page_text) + 2
        title = ((reader.metadata or {}).get("/Title") or "").strip() if reader.metadata else ""
    except UnreadableError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise UnreadableError(f"PDF could not be parsed ({type(exc).__name__}: {exc})".replace("\n", " ")) from exc
    return Document(
        doc_id=doc_id,
        source=source,
        text="\n\n".join(pages),
        title=str(title) or file_title(file),
        metadata={"page_starts": page_starts},
    )
