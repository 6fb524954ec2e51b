"""Turning bytes of unknown encoding into text, or saying why not."""

from __future__ import annotations

import codecs

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class UndecodableError(ValueError):
    """Bytes that are binary or in no encoding we can identify."""


class UnreadableError(ValueError):
    """A file of a supported type whose content cannot be read (say, an encrypted PDF)."""


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Return ``(text, encoding)``. Raises :class:`UndecodableError`.

    A byte-order mark wins; then strict UTF-8; then charset-normalizer's
    best guess. Data with NUL bytes and no BOM is taken as binary.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise UndecodableError(f"invalid {encoding} after its byte-order mark") from exc
    if b"\x00" in data[:8192]:
        raise UndecodableError("binary content (NUL bytes)")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if _looks_western(data):
        return data.decode("cp1252"), "cp1252"
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        raise UndecodableError("not text in any encoding that could be detected")
    best = matches[0]
    # Short Western texts fit several single-byte code pages equally well;
    # among equally good guesses prefer Windows-1252, the usual "Latin-1".
    for match in matches:
        if match.encoding == "cp1252" and match.chaos <= best.chaos and match.coherence >= best.coherence:
            best = match
            break
    text = str(best)
    if control_ratio(text) > 0.05:
        raise UndecodableError("binary content (control characters)")
    return text, best.encoding


def detect_encoding(head: bytes) -> str:
    """The encoding of a file from its first block (which may end mid-character).

    Raises :class:`UndecodableError` for binary data.
    """
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    if b"\x00" in head[:8192]:
        raise UndecodableError("binary content (NUL bytes)")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    return decode_bytes(head[: len(head) - 4] if len(head) > 4 else head)[1]


_WESTERN_SYMBOLS = set(
    "\u2018\u2019\u201a\u201c\u201d\u201e\u2013\u2014\u2026\u2022\u20ac\u2122"
    "\xa0\xa1\xa2\xa3\xa7\xa9\xab\xae\xb0\xb1\xb2\xb3\xb4\xb5\xb7\xbb\xbc\xbd\xbe\xbf\xd7\xf7"
)


def _looks_western(data: bytes) -> bool:
    """Mostly-ASCII text whose other bytes are lone accented letters in
    Windows-1252 (Latin-1): "Crème brûlée". Multi-byte encodings (GBK, Big5,
    Shift-JIS) and Cyrillic or Greek code pages put their high bytes in runs,
    so text where most high bytes stand alone is read as Windows-1252 rather
    than left to a statistical guess that can mistake it for Chinese."""
    sample = data[:65536]
    high = [i for i, b in enumerate(sample) if b >= 0x80]
    if not high:
        return False
    try:
        text = sample.decode("cp1252")
    except UnicodeDecodeError:
        return False
    in_runs = sum(
        1 for i in high if (i + 1 < len(sample) and sample[i + 1] >= 0x80) or (i > 0 and sample[i - 1] >= 0x80)
    )
    return in_runs / len(high) < 0.6 and all(ch.isalpha() or ch in _WESTERN_SYMBOLS for ch in text if ord(ch) >= 0x80)


def control_ratio(text: str) -> float:
    sample = text[:8192]
    if not sample:
        return 0.0
    bad = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\n\r\f\v")
    return bad / len(sample)
