"""PDF text extraction: pypdf, pypdfium2 and pdfplumber, raw and with ragqa's cleaning.

    python bench/pdf_extract.py                  # prints a table, writes bench/results/pdf_extract.json
    python bench/pdf_extract.py --repeat 5 --out /tmp/pdf.json

The PDFs are the test fixtures of ``tests/fixtures/pdf/`` (written by its
``make_pdfs.py``); each has a ``.json`` beside it with the text every page
truly holds. Needs pypdf and pdfplumber besides ragqa's own pypdfium2
(``pip install -e '.[bench]'``).

Raw extraction is scored against everything printed on the pages (running
header and footer included), in reading order; cleaned text (ragqa's
``clean_pages`` on each library's lines; for pypdfium2 ``read_pdf`` itself,
with line positions) against the body only: no headers, footers, contents or
index pages, hyphenation undone.

- ``ms/page``: median over ``--repeat`` runs of the whole file's time, per page.
- ``word F1``: words (lowercased, punctuation stripped) as a multiset against the truth.
- ``order``: similarity of the word sequences (difflib ratio; 1 = same words in the same order).
- ``broken``: words printed split across two lines that are not found whole.
- ``running left``: header and footer lines still in the text (cleaned: should be 0).
- ``reference left``: contents and index entries still in the text (cleaned: should be 0).
- ``paragraphs whole``: body paragraphs found in the text as one unbroken line.
- ``rows whole``: table rows found in the text as one line of their own.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import REPO, command, machine, markdown_table, versions  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "pdf"
_TOKEN = re.compile(r"[\w'’]+(?:-[\w'’]+)*-?")


def tokens(text: str) -> list[str]:
    return [t.casefold() for t in _TOKEN.findall(text)]


def f1(truth: list[str], found: list[str]) -> float:
    common = sum((Counter(truth) & Counter(found)).values())
    if not common:
        return 0.0
    precision, recall = common / len(found), common / len(truth)
    return 2 * precision * recall / (precision + recall)


def order(truth: list[str], found: list[str]) -> float:
    return difflib.SequenceMatcher(None, truth, found, autojunk=False).ratio()


# ------------------------------------------------------------------ the libraries, page texts


def pypdf_pages(path: Path) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() or "" for page in PdfReader(path).pages]


def pdfium_pages(path: Path) -> list[str]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    try:
        out = []
        for page in pdf:
            textpage = page.get_textpage()
            out.append(textpage.get_text_range())
            textpage.close()
            page.close()
        return out
    finally:
        pdf.close()


def pdfplumber_pages(path: Path) -> list[str]:
    import pdfplumber

    with pdfplumber.open(path) as pdf:
        return [page.extract_text() or "" for page in pdf.pages]


LIBRARIES = {"pypdf": pypdf_pages, "pypdfium2": pdfium_pages, "pdfplumber": pdfplumber_pages}
PACKAGES = {"pypdf": "pypdf", "pypdfium2": "pypdfium2", "pdfplumber": "pdfplumber"}


def cleaned(library: str, path: Path) -> str:
    """The document text after ragqa's cleaning of ``library``'s lines."""
    from rag_qa.ingest.pdf import Line, clean_pages, read_pdf

    if library == "pypdfium2":
        return read_pdf(path.read_bytes(), "bench", str(path), path).text
    pages = LIBRARIES[library](path)
    text, _ = clean_pages([[Line(ln) for ln in page.splitlines() if ln.strip()] for page in pages])
    return text


# ------------------------------------------------------------------ scoring


def _page_truth(page: dict) -> str:
    body = [b["text"] for b in page["blocks"]]
    return "\n".join([*page["header"], *body, *page["footer"]])


def _joined(hyphenated: str) -> str:
    """``man-agement`` -> ``management``; ``well--known`` -> ``well-known``."""
    return hyphenated.replace("--", "\0").replace("-", "").replace("\0", "-").casefold().strip(".,;:")


def _running_left(truth: dict, texts: list[str]) -> int:
    lines = [" ".join(ln.split()) for p in truth["pages"] for ln in p["header"] + p["footer"]]
    found = " ".join(" ".join(t.split()) for t in texts)
    # a header line counts once for each page it is still on
    if len(texts) == len(truth["pages"]):
        return sum(
            " ".join(ln.split()) in " ".join(t.split())
            for p, t in zip(truth["pages"], texts)
            for ln in p["header"] + p["footer"]
        )
    return sum(found.count(ln) for ln in set(lines))


def _reference_left(truth: dict, text: str) -> int:
    """Index entries still in ``text``, plus dot leaders (what is left of contents lines)."""
    flat = " ".join(text.split())
    entries = [b["text"] for p in truth["pages"] for b in p["blocks"] if b["kind"] == "index"]
    return sum(" ".join(e.split()) in flat for e in entries) + len(re.findall(r"\.{4,}", text))


def _broken(truth: dict, text_tokens: list[str]) -> int:
    found = Counter(text_tokens)
    need = Counter(_joined(w) for p in truth["pages"] for w in p["hyphenated"])
    return sum(max(0, n - found[w]) for w, n in need.items())


def score_raw(truth: dict, texts: list[str]) -> dict:
    pages = truth["pages"]
    f1s = [f1(tokens(_page_truth(p)), tokens(t)) for p, t in zip(pages, texts)]
    orders = [order(tokens(_page_truth(p)), tokens(t)) for p, t in zip(pages, texts)]
    whole = "\n\n".join(texts)
    return {
        "word_f1": sum(f1s) / len(f1s),
        "order": sum(orders) / len(orders),
        "broken": _broken(truth, tokens(whole)),
        "running_left": _running_left(truth, texts),
        "reference_left": _reference_left(truth, whole),
        "paragraphs_whole": _whole(truth, whole, "paragraph"),
        "rows_whole": _whole(truth, whole, "row"),
    }


def score_clean(truth: dict, text: str) -> dict:
    body = "\n".join(b["text"] for p in truth["pages"] if p["kind"] == "body" for b in p["blocks"])
    return {
        "word_f1": f1(tokens(body), tokens(text)),
        "order": order(tokens(body), tokens(text)),
        "broken": _broken(truth, tokens(text)),
        "running_left": _running_left(truth, [text]),
        "reference_left": _reference_left(truth, text),
        "paragraphs_whole": _whole(truth, text, "paragraph"),
        "rows_whole": _whole(truth, text, "row"),
    }


def _whole(truth: dict, text: str, kind: str) -> str:
    """How many blocks of ``kind`` are a line of ``text`` of their own, out of how many."""
    blocks = [b["text"] for p in truth["pages"] for b in p["blocks"] if b["kind"] == kind]
    lines = {" ".join(line.split()) for line in text.splitlines()}
    return f"{sum(b in lines for b in blocks)}/{len(blocks)}"


# ------------------------------------------------------------------ main


def _median_seconds(fn, repeat: int) -> float:
    fn()  # warm-up: imports, caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def table(rows: list[dict]) -> str:
    """The results as a Markdown table, one row per file, library and raw or cleaned text."""
    header = ["file", "library", "text", "ms/page", "word F1", "order", "broken", "running left"]
    header += ["reference left", "paragraphs whole", "rows whole"]
    body = [
        [
            r["file"],
            r["library"],
            "ragqa-cleaned" if r["cleaned"] else "raw",
            f"{r['ms_per_page']:.2f}",
            f"{r['word_f1']:.3f}",
            f"{r['order']:.3f}",
            r["broken"],
            r["running_left"],
            r["reference_left"],
            r["paragraphs_whole"],
            r["rows_whole"],
        ]
        for r in rows
    ]
    return markdown_table(header, body)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pdfs", type=Path, default=FIXTURES, help="folder of PDFs, each with its .json truth")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per library and file")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "pdf_extract.json")
    args = parser.parse_args(argv)

    files = sorted(p for p in args.pdfs.glob("*.pdf") if p.with_suffix(".json").is_file())
    if not files:
        parser.error(f"no PDF with a .json truth beside it in {args.pdfs}: run tests/fixtures/pdf/make_pdfs.py")
    rows = []
    for path in files:
        truth = json.loads(path.with_suffix(".json").read_text())
        n_pages = len(truth["pages"])
        for library, extract in LIBRARIES.items():
            raw = extract(path)
            raw_s = _median_seconds(lambda: extract(path), args.repeat)  # noqa: B023
            rows.append(
                {"file": path.name, "library": library, "cleaned": False, "pages": n_pages}
                | {"ms_per_page": 1000 * raw_s / n_pages}
                | score_raw(truth, raw)
            )
            text = cleaned(library, path)
            clean_s = _median_seconds(lambda: cleaned(library, path), args.repeat)  # noqa: B023
            rows.append(
                {"file": path.name, "library": library, "cleaned": True, "pages": n_pages}
                | {"ms_per_page": 1000 * clean_s / n_pages}
                | score_clean(truth, text)
            )

    print(table(rows))
    result = {
        "machine": machine(),
        "command": command(__file__, argv),
        "versions": versions("ragqa", *PACKAGES.values()),
        "repeat": args.repeat,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
