"""Tiny corpora and files that the tests write for themselves."""

from __future__ import annotations

import json
from pathlib import Path

DOCS = {
    "guide.md": (
        "# Installing the tool\n\n"
        "Run make run to install everything into a virtual environment. "
        "The manifest records a checksum for every file of the index.\n\n"
        "Updating is incremental: only changed passages are embedded again."
    ),
    "animals.txt": (
        "Cats are small carnivorous mammals that people keep as pets. "
        "Dogs were domesticated from wolves thousands of years ago."
    ),
    "notes/space.html": (
        "<html><head><title>The planets</title><style>p {color: red}</style></head>"
        "<body><h1>Planets</h1><p>Jupiter is the largest planet in the solar system.</p>"
        "<script>var hidden = 'should not be indexed';</script>"
        "<p>Mars is called the red planet because of iron oxide dust.</p></body></html>"
    ),
}

JSONL_ROWS = [
    {"id": "v1", "title": "Volcanoes", "text": "A volcano erupts when magma rises through the crust.", "metadata": {"topic": "geology"}},
    {"id": "r1", "title": "Rivers", "text": "The Nile is one of the longest rivers on Earth.", "metadata": {"topic": "geography"}},
]

PDF_TEXT = "Glaciers are slow rivers of ice that carve valleys."


def make_pdf(text: str) -> bytes:
    """A valid one-page PDF whose page shows ``text`` (Helvetica, no compression)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def write_corpus(root: Path) -> Path:
    """The standard fixture corpus: .md, .txt, .html, .jsonl and .pdf."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / "records.jsonl").write_text("\n".join(json.dumps(r) for r in JSONL_ROWS) + "\n", encoding="utf-8")
    (root / "paper.pdf").write_bytes(make_pdf(PDF_TEXT))
    return root
