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


def control_ratio(text: str) -> float:
    sample = text[:8192]
    if not sample:
        return 0.0
    bad = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\n\r\f\v")
    return bad / len(sample)
