"""The BM25 tokenizer: lower-cased Unicode word characters, English stopwords out."""

from __future__ import annotations

import re
from functools import lru_cache

_TOKEN = re.compile(r"\w+", re.UNICODE)


@lru_cache(maxsize=4)
def _stopwords(name: str) -> frozenset[str]:
    if name == "none":
        return frozenset()
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize(text: str, stopwords: str = "en") -> list[str]:
    """Split ``text`` into BM25 terms. Repeated terms are kept (they count)."""
    stop = _stopwords(stopwords)
    return [tok for tok in _TOKEN.findall(text.lower()) if tok not in stop]
