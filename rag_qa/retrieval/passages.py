"""Passages on disk, read in place.

A generation folder holds ``passages.jsonl`` (one JSON passage per line)
and, beside it, small arrays that let a loaded index reach any passage
without parsing the others:

``passages.offsets.npy``
    ``int64[n + 1]``: the byte offset of each line, then the file size.
``passages.sources.npy`` and ``sources.json``
    ``int32[n]``: each passage's source, as a row of the (sorted) source list.
``passages.ids.npy``
    each passage's id, fixed-width bytes, for lookups by id.

:class:`PassageStore` memory-maps all of them: loading costs a few arrays
of numbers, not a Python object per passage, and a passage is parsed when
it is read. :class:`PassageWriter` writes them as passages come, so a build
holds no passage longer than it takes to write it.
"""

from __future__ import annotations

import json
import mmap
from array import array
from pathlib import Path
from typing import Iterator, Sequence, overload

import numpy as np

from rag_qa.types import Passage

FILE = "passages.jsonl"
OFFSETS = "passages.offsets.npy"
SOURCE_ROWS = "passages.sources.npy"
SOURCES = "sources.json"
IDS = "passages.ids.npy"


class PassageWriter:
    """Append passages to ``folder/passages.jsonl``; :meth:`close` writes the arrays beside it."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._fh = open(folder / FILE, "wb")  # noqa: SIM115 - closed by close()
        self._offsets = array("q", [0])
        self._source_rows = array("i")
        self._sources: dict[str, int] = {}
        self._ids: list[bytes] = []
        self.lengths = array("i")  # characters of each passage's text, for ordering work by length

    def __len__(self) -> int:
        return len(self._source_rows)

    def add(self, passage: Passage) -> None:
        line = (json.dumps(passage.to_dict(), ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
        self._fh.write(line)
        self._offsets.append(self._offsets[-1] + len(line))
        self._source_rows.append(self._sources.setdefault(passage.source, len(self._sources)))
        self._ids.append(passage.passage_id.encode("utf-8", "surrogatepass"))
        self.lengths.append(len(passage.text))

    def close(self) -> None:
        """Finish the file and write the offsets, sources and ids (sources sorted, so a build is repeatable)."""
        if self._fh.closed:
            return
        self._fh.close()
        names = sorted(self._sources)
        renumber = np.zeros(max(len(names), 1), dtype=np.int32)
        for new, name in enumerate(names):
            renumber[self._sources[name]] = new
        rows = np.frombuffer(self._source_rows, dtype=np.int32) if len(self._source_rows) else np.zeros(0, np.int32)
        np.save(self.folder / OFFSETS, np.frombuffer(self._offsets, dtype=np.int64), allow_pickle=False)
        np.save(self.folder / SOURCE_ROWS, renumber[rows].astype(np.int32), allow_pickle=False)
        # ASCII JSON: source names that are not valid UTF-8 (surrogate escapes) come back as they were
        (self.folder / SOURCES).write_text(json.dumps(names), encoding="utf-8")
        np.save(self.folder / IDS, np.asarray(self._ids, dtype=f"S{max(map(len, self._ids), default=1)}"))
        self._ids = []

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()


class PassageStore(Sequence[Passage]):
    """The passages of a generation folder, memory-mapped; ``store[i]`` parses passage ``i``."""

    def __init__(self, folder: Path):
        """Open ``folder``'s passages. Raises ``ValueError`` or ``OSError`` when the files do not fit together."""
        self.folder = folder
        path = folder / FILE
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            self._data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        if (folder / OFFSETS).is_file():
            self._offsets = np.load(folder / OFFSETS, mmap_mode="r", allow_pickle=False)
            self.sources: list[str] = json.loads((folder / SOURCES).read_text(encoding="utf-8"))
            self._source_rows = np.load(folder / SOURCE_ROWS, mmap_mode="r", allow_pickle=False)
            self._ids = np.load(folder / IDS, mmap_mode="r", allow_pickle=False)
        else:  # an index written before these arrays: found by reading the file once
            self._offsets, self.sources, self._source_rows, self._ids = _scan(self._data)
        n = len(self._offsets) - 1
        offsets = self._offsets
        if (
            n < 0
            or offsets.dtype != np.int64
            or offsets[0] != 0
            or offsets[-1] != size
            or (n and not bool(np.all(np.diff(offsets) > 0)))
        ):
            raise ValueError(f"{folder / OFFSETS} does not match {FILE} ({size} bytes)")
        if len(self._source_rows) != n or len(self._ids) != n:
            raise ValueError(f"{folder / SOURCE_ROWS} or {IDS} does not hold one row per passage ({n})")
        if not isinstance(self.sources, list) or not all(isinstance(s, str) for s in self.sources):
            raise ValueError(f"{folder / SOURCES} is not a list of sources")
        if n and (int(self._source_rows.min()) < 0 or int(self._source_rows.max()) >= len(self.sources)):
            raise ValueError(f"{folder / SOURCE_ROWS} names sources that {SOURCES} does not have")
        self._n = n
        self._row_of_id: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, row: int) -> Passage: ...
    @overload
    def __getitem__(self, row: slice) -> list[Passage]: ...
    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(self._n))]
        row = int(row)
        if row < 0:
            row += self._n
        if not 0 <= row < self._n:
            raise IndexError(f"passage {row} of {self._n}")
        line = self._data[int(self._offsets[row]) : int(self._offsets[row + 1])]
        return Passage.from_dict(json.loads(line.decode("utf-8", "surrogatepass")))

    def __iter__(self) -> Iterator[Passage]:
        for row in range(self._n):
            yield self[row]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def source_of(self, row: int) -> str:
        return self.sources[int(self._source_rows[row])]

    def source_mask(self, match) -> np.ndarray:
        """A row mask of the passages whose source satisfies ``match(source)`` (each source is tested once)."""
        keep = np.fromiter((bool(match(s)) for s in self.sources), dtype=bool, count=len(self.sources))
        return keep[self._source_rows] if len(self.sources) else np.zeros(self._n, dtype=bool)

    def row_of(self, passage_id: str) -> int | None:
        """The row of the passage with ``passage_id``, if there is one."""
        if self._row_of_id is None:
            order = np.argsort(self._ids, kind="stable")
            self._row_of_id = (np.asarray(self._ids)[order], order)
        ids, order = self._row_of_id
        raw = passage_id.encode("utf-8", "surrogatepass")
        if len(raw) > ids.dtype.itemsize:  # longer than every stored id
            return None
        key = np.asarray(raw, dtype=ids.dtype)
        at = int(np.searchsorted(ids, key))
        return int(order[at]) if at < len(ids) and ids[at] == key else None

    def get(self, passage_id: str) -> Passage | None:
        row = self.row_of(passage_id)
        return None if row is None else self[row]

    def close(self) -> None:
        if isinstance(self._data, mmap.mmap):
            self._data.close()


def _scan(data) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Offsets, sources, source rows and ids of a passages file read whole."""
    offsets, rows, ids = [0], [], []
    sources: dict[str, int] = {}
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        passage = Passage.from_dict(json.loads(bytes(data[start:end]).decode("utf-8", "surrogatepass")))
        rows.append(sources.setdefault(passage.source, len(sources)))
        ids.append(passage.passage_id.encode("utf-8", "surrogatepass"))
        offsets.append(end)
        start = end
    return (
        np.asarray(offsets, dtype=np.int64),
        list(sources),
        np.asarray(rows, dtype=np.int32),
        np.asarray(ids, dtype=f"S{max(map(len, ids), default=1)}"),
    )
