"""Markdown, HTML and plain-text headings come out as the text a person reads,
with headings as sections and lines that point into the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_qa.config import ChunkingConfig
from rag_qa.ingest.chunking import chunk_document
from rag_qa.ingest.html import read_html
from rag_qa.ingest.markdown import read_markdown
from rag_qa.ingest.plain import read_plain

README = """\
---
title: zpack notes
tags: [compression]
---
[![build](https://ci.example.org/zpack/badge.svg)](https://ci.example.org/zpack) \
[![coverage](https://cov.example.org/b.svg)](https://cov.example.org)

# zpack

zpack implements the format of [RFC8878](https://datatracker.ietf.org/doc/rfc8878/) and
its fastest level is <code>-7</code>, the default is `3`.

## Options

| Option | Default | Meaning |
|--------|---------|---------|
| `--level` | 3 | compression level |
| `--threads` | 4 | worker threads |

Setext section
--------------

<details><summary>Details</summary>
Long mode needs <b>more memory</b>.
</details>

```sh
zpack -7 file.txt
```
"""

PAGE = """\
<!doctype html>
<html><head><title>timer manual</title><style>p { color: red }</style></head>
<body>
<nav><a href="/">Home</a> | <a href="/docs">Docs</a></nav>
<header><p>Site header</p></header>
<main>
<h1>Environment<a class="headerlink" href="#env" title="Permalink">¶</a></h1>
<p>Set the <code>TIME</code>
environment variable to change the output format.
See <a href="guide.html">the <em>guide</em></a> for more.</p>
<h2 id="opts">Options <a href="#opts">¶</a></h2>
<table><tr><th>Option</th><th>Default</th></tr>
<tr><td><code>--port</code></td><td>8080</td></tr></table>
<dl><dt>TIMEOUT</dt><dd>Seconds to wait, <em>30</em> by default.</dd></dl>
<pre>
$ timer run
ok
</pre>
<p>First line<br>second line</p>
</main>
<footer>Copyright 2026 Example</footer>
<script>var tracking = 1;</script>
</body></html>
"""


def _md():
    return read_markdown(README, "d", "notes.md", Path("notes.md"), "utf-8")


def _html():
    return read_html(PAGE, "d", "timer.html", Path("timer.html"), "utf-8")


def _line_of(doc, needle: str) -> int | None:
    """The file line ragqa reports for ``needle``, through the passages, as `ask` does."""
    for passage in chunk_document(doc, ChunkingConfig(size=30, overlap=5)):
        at = passage.text.find(needle)
        if at >= 0:
            return passage.line_at(at)
    raise AssertionError(f"{needle!r} not in any passage")


def test_markdown_drops_front_matter_badges_urls_and_tags():
    doc = _md()
    assert doc.title == "zpack notes"
    for noise in ("tags:", "badge", "https://", "](", "<code>", "<b>", "```", "|---"):
        assert noise not in doc.text
    assert "format of RFC8878 and\nits fastest level is -7, the default is 3." in doc.text
    assert "Long mode needs more memory." in doc.text
    assert "zpack -7 file.txt" in doc.text  # code kept as its text


def test_markdown_table_rows_read_as_header_value_sentences():
    text = _md().text
    assert "Option: --threads; Default: 4; Meaning: worker threads." in text


def test_headings_are_sections_not_text():
    doc = _md()
    assert "Options" not in doc.text and "Setext section" not in doc.text
    passages = chunk_document(doc, ChunkingConfig(size=12, overlap=0))
    sections = {p.metadata.get("section") for p in passages}
    assert "zpack > Options" in sections
    threads = next(p for p in passages if "--threads" in p.text)
    assert threads.metadata["section"] == "zpack > Options"


def test_markdown_lines_point_into_the_file():
    lines = README.split("\n")
    doc = _md()
    for needle in ("its fastest level", "--threads", "Long mode", "zpack -7 file.txt"):
        line = _line_of(doc, needle)
        assert needle in lines[line - 1], (needle, line)


def test_html_inline_elements_join_their_neighbours():
    doc = _html()
    assert "Set the TIME environment variable to change the output format." in doc.text
    assert "See the guide for more." in doc.text
    assert "First line\nsecond line" in doc.text


def test_html_drops_boilerplate_and_anchor_marks():
    doc = _html()
    assert doc.title == "timer manual"
    for noise in ("Home", "Site header", "Copyright", "tracking", "color", "¶", "Environment", "Options"):
        assert noise not in doc.text


def test_html_tables_definitions_and_pre():
    text = _html().text
    assert "Option: --port; Default: 8080." in text
    assert "TIMEOUT: Seconds to wait, 30 by default." in text
    assert "$ timer run\nok" in text


def test_html_lines_point_into_the_file():
    lines = PAGE.split("\n")
    doc = _html()
    for needle in ("Set the TIME", "--port", "TIMEOUT", "$ timer run", "second line"):
        line = _line_of(doc, needle)
        assert needle.split()[-1] in lines[line - 1], (needle, line)
    sections = {p.metadata.get("section") for p in chunk_document(doc)}
    assert sections == {"Environment"} or "Environment > Options" in sections


RST = """\
=========
zpack docs
=========

Install
=======

Run ``pip install zpack`` and read `the guide <https://example.org/guide>`_ or :ref:`config`.

.. note::

   Needs Python 3.11.

Config
------

The ``ZPACK_HOME`` variable sets the home folder.

Name      Value
-----     -----
home      ~/.zpack
"""


@pytest.mark.parametrize("suffix", [".rst", ".txt"])
def test_underlined_headings_are_blanked_in_place(suffix):
    doc = read_plain(RST, "d", "z" + suffix, Path("z" + suffix), "utf-8")
    assert len(doc.text) == len(RST) and doc.text.count("\n") == RST.count("\n")  # offsets and lines stay the file's
    assert "Install" not in doc.text and "=====" not in doc.text and "Config\n" not in doc.text
    assert doc.title == "zpack docs"
    assert [s[1] for s in doc.metadata["sections"]] == [
        "zpack docs",
        "zpack docs > Install",
        "zpack docs > Install > Config",
    ]
    assert "-----     -----" in doc.text  # a table rule under a header row is not a heading
    if suffix == ".rst":
        assert "``" not in doc.text and "https://" not in doc.text and ":ref:" not in doc.text
        assert ".. note::" not in doc.text
        assert "the guide" in doc.text and "ZPACK_HOME" in doc.text
    line = _line_of(doc, "ZPACK_HOME")
    assert "ZPACK_HOME" in RST.split("\n")[line - 1]
