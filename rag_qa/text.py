"""Text helpers every layer uses: words, sentences, answer normalisation and
the query check. A leaf module: it imports nothing of ragqa's but its errors."""

from __future__ import annotations

import re
import string

from rag_qa.errors import InputError

# A word is a run of non-space characters, cut every MAX_WORD_CHARS characters, so
# that a run without spaces (a 100 KB base64 blob) still makes passages of bounded size.
MAX_WORD_CHARS = 40
_WORD = re.compile(r"\S{1,%d}" % MAX_WORD_CHARS)
# A word that ends a sentence: terminal punctuation, maybe closed by quotes or brackets.
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*$")
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)
# C0/C1 control characters (tab, newline and carriage return aside) and lone surrogates.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")

MAX_QUERY_CHARS = 10_000
# What a terminal would act on: C0 and C1 controls (ESC starts colour, clear-screen,
# window-title and hyperlink sequences), DEL, and line breaks other than \n.
_TERMINAL_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the words of ``text``: runs of non-space characters,
    cut into pieces of at most :data:`MAX_WORD_CHARS`."""
    return [m.span() for m in _WORD.finditer(text)]


def sentence_ranges(text: str, words: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sentences as half-open ranges of indexes into ``words``."""
    ranges, first = [], 0
    for i, (start, end) in enumerate(words):
        last = i == len(words) - 1
        gap = "" if last else text[end : words[i + 1][0]]
        if last or _SENTENCE_END.search(text[start:end]) or _BLANK_LINE.search(gap):
            ranges.append((first, i + 1))
            first = i + 1
    return ranges


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences in ``text`` (a heuristic, no model)."""
    words = word_spans(text)
    return [(words[a][0], words[b - 1][1]) for a, b in sentence_ranges(text, words)]


def sentence_around(text: str, start: int, end: int) -> tuple[int, int]:
    """The span of the sentence(s) of ``text`` that contain ``[start, end)``."""
    sentences = split_sentences(text)
    first = next((s for s, e in sentences if e > start), 0)
    last = next((e for s, e in reversed(sentences) if s < end), len(text))
    return min(first, start), max(last, end)


def escape_undecodable(text: str) -> str:
    """``text`` with undecodable bytes (the lone surrogates ``os.fsdecode`` makes
    of a file name that is not UTF-8) written as ``\\xNN`` escapes."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "backslashreplace")


def file_title(path) -> str:
    """A document's title when it names none itself: its file name without the extension."""
    from pathlib import PurePath

    return escape_undecodable(PurePath(path).stem)


def printable(text: str, keep_newlines: bool = True) -> str:
    """``text`` safe to print on a terminal: control characters shown as ``\\xNN``
    (newlines and tabs kept, unless ``keep_newlines`` is false)."""
    text = _TERMINAL_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))
    return text if keep_newlines else text.replace("\n", "\\n").replace("\t", " ")


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and articles, squeeze white space (as SQuAD's evaluate-v1.1.py)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def check_query(query: object) -> str:
    """The question or search query as ragqa reads it: control characters and
    lone surrogates read as spaces, stripped; empty or over-long is an error."""
    if isinstance(query, str):
        query = _CONTROL.sub(" ", query).strip()
    if not isinstance(query, str) or not query:
        raise InputError("the query is empty: pass the question to search for")
    if len(query) > MAX_QUERY_CHARS:
        raise InputError(f"the query has {len(query):,} characters, over the limit of {MAX_QUERY_CHARS:,}: shorten it")
    return query
