"""The index directory on disk: a manifest that points at one generation folder.

::

    index/
      manifest.json        format version, counts, settings, encoder, checksums,
                           and ``data_dir``: the generation it describes
      gen-<id>/            passages.jsonl (and its arrays, see :mod:`rag_qa.retrieval.passages`),
                           documents.json, bm25/, dense.faiss, embeddings.npy,
                           and .readers: the lock a loaded index holds (shared) on its generation
      .lock                held while a build runs

An index whose backend is Milvus has the same manifest and generation
folders (holding only what the next build compares with); its passages and
vectors are in a Milvus collection (see :mod:`rag_qa.retrieval.milvus`).

A build writes a new generation into ``.tmp-<id>/``, renames it to
``gen-<id>/`` and then replaces ``manifest.json`` atomically, so a reader
sees the old index or the new one, and an interrupted build leaves the old
one as it was. Then every superseded generation that no process holds is
removed; one that a loaded :class:`~rag_qa.retrieval.index.Index` still
holds stays until a later build finds it free. Where shared locks are not
available (no ``fcntl``), the previous generation is kept and older ones
are removed, as a reader in flight may still be opening the previous one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

from rag_qa.errors import IndexCorruptError, IndexLockedError, IndexMismatchError, IndexMissingError, InputError

FORMAT_NAME = "ragqa-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".lock"
MILVUS_LITE_FILE = "milvus.db"  # a Milvus index's Milvus Lite data, left by a build that did not finish
READERS = ".readers"  # in each generation folder: shared-locked by the processes that use it
# Index folders and files are private to their owner: passages hold the documents' text.
DIR_MODE, FILE_MODE = 0o700, 0o600


def manifest_sha256(manifest: dict[str, Any]) -> str:
    """The checksum a manifest carries of its own body (every key but ``sha256``)."""
    body = {k: v for k, v in manifest.items() if k != "sha256"}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8", "surrogatepass")
    ).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksums(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {sha256, bytes}}`` for every file under ``folder``."""
    return {
        p.relative_to(folder).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def rebuild_hint(directory: Path) -> str:
    return f"rebuild it with `ragqa index <your documents> --index-dir {directory}`"


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not directory.exists():
        raise IndexMissingError(
            f"no index at {directory}: build one with `ragqa index <your documents> --index-dir {directory}`"
        )
    if not path.is_file():
        raise IndexMissingError(
            f"{directory} holds no ragqa index (no {MANIFEST}): build one with `ragqa index <your documents> "
            f"--index-dir {directory}`"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"{path} is not valid JSON ({exc}); {rebuild_hint(directory)}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise IndexCorruptError(f"{path} is not a ragqa index manifest; {rebuild_hint(directory)}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise IndexMismatchError(
            f"index at {directory} has format version {version}, newer than this ragqa reads ({FORMAT_VERSION}): "
            f"upgrade ragqa, or {rebuild_hint(directory)}"
        )
    if "sha256" in manifest and manifest["sha256"] != manifest_sha256(manifest):
        raise IndexCorruptError(f"{path} fails its own checksum (corrupted or edited); {rebuild_hint(directory)}")
    return manifest


def data_dir(directory: Path, manifest: dict[str, Any]) -> Path:
    name = manifest.get("data_dir", "")
    if not isinstance(name, str) or not name.startswith("gen-") or "/" in name or "\\" in name:
        raise IndexCorruptError(f"{directory / MANIFEST} names no valid data folder; {rebuild_hint(directory)}")
    return directory / name


def verify(directory: Path, manifest: dict[str, Any], full: bool = True) -> int:
    """Check every file the manifest lists against its size and, when ``full``, its sha256.

    Sizes are what loading checks (a truncated, missing or replaced file);
    checksums read every byte, which ``ragqa info --verify`` and builds do.
    Returns the bytes checked.
    """
    folder = data_dir(directory, manifest)
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise IndexCorruptError(f"{directory / MANIFEST} lists no files; {rebuild_hint(directory)}")
    total = 0
    for rel, meta in files.items():
        if not isinstance(rel, str) or not isinstance(meta, dict) or not _inside(rel):
            raise IndexCorruptError(
                f"{directory / MANIFEST} lists a file outside its data folder ({rel!r}); {rebuild_hint(directory)}"
            )
        path = folder / rel
        if not path.is_file():
            raise IndexCorruptError(f"index file {path} is missing; {rebuild_hint(directory)}")
        size = path.stat().st_size
        if size != meta.get("bytes"):
            raise IndexCorruptError(
                f"index file {path} has {size} bytes, the manifest says {meta.get('bytes')} (truncated or replaced); "
                f"{rebuild_hint(directory)}"
            )
        if full and file_sha256(path) != meta.get("sha256"):
            raise IndexCorruptError(f"index file {path} fails its checksum (corrupted); {rebuild_hint(directory)}")
        total += size
    return total


def _inside(rel: str) -> bool:
    """True for a relative path that stays inside its folder (no absolute path, no ``..``)."""
    parts = Path(rel).parts
    return bool(parts) and not Path(rel).is_absolute() and ".." not in parts and "\\" not in rel


def check_target(directory: Path) -> None:
    """Refuse to build into a folder that holds something other than a ragqa index."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise InputError(f"index directory {directory} is a file: choose a folder with --index-dir")
    if (directory / MANIFEST).exists():
        return
    foreign = [
        p.name
        for p in directory.iterdir()
        if not p.name.startswith(".") and not p.name.startswith("gen-") and p.name != MILVUS_LITE_FILE
    ]
    if foreign:
        raise InputError(
            f"{directory} is not empty and holds no ragqa index (found {', '.join(sorted(foreign)[:3])}): "
            "choose an empty or new folder with --index-dir"
        )


class WriteLock:
    """An exclusive lock on an index directory for the length of a build."""

    def __init__(self, directory: Path, timeout: float = 0):
        from filelock import FileLock

        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self.directory = directory
        self.timeout = timeout
        self._lock = FileLock(str(directory / LOCK), mode=FILE_MODE)

    def __enter__(self) -> "WriteLock":
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=self.timeout)
        except Timeout as exc:
            raise IndexLockedError(
                f"another `ragqa index` is writing {self.directory} (lock {self.directory / LOCK}): wait for it to "
                "finish, or pass --wait"
            ) from exc
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def new_generation(directory: Path) -> tuple[Path, str]:
    """A fresh temporary folder beside the live data and the name it will take."""
    gen_id = f"{uuid.uuid4().hex[:12]}"
    tmp = directory / f".tmp-{gen_id}"
    tmp.mkdir(mode=DIR_MODE, parents=True)
    return tmp, f"gen-{gen_id}"


def _fsync_tree(folder: Path) -> None:
    """Flush every file to disk, and make files and folders private to the owner."""
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(FILE_MODE)
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        elif path.is_dir():
            path.chmod(DIR_MODE)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(directory: Path, tmp: Path, gen_name: str, manifest: dict[str, Any]) -> None:
    """Make ``tmp`` the live generation: rename it, then swap the manifest."""
    _fsync_tree(tmp)
    os.close(os.open(tmp / READERS, os.O_WRONLY | os.O_CREAT, FILE_MODE))  # not in the checksums: it is a lock
    final = directory / gen_name
    os.replace(tmp, final)
    manifest = {**manifest, "data_dir": gen_name}
    manifest["sha256"] = manifest_sha256(manifest)
    staged = directory / f".{MANIFEST}.{gen_name}"
    with open(os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(staged, directory / MANIFEST)
    _fsync_dir(directory)


class GenerationHold:
    """A shared lock on one generation folder: while it is held, builds leave the folder on disk."""

    def __init__(self, fd: int | None):
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the file drops the lock

    def __del__(self) -> None:
        self.release()


def hold_generation(directory: Path, manifest: dict[str, Any]) -> GenerationHold | None:
    """Hold the generation ``manifest`` names, so no build removes it while it is read and used.

    None when that generation was removed meanwhile (a build replaced it
    between reading the manifest and this call): read the manifest again.
    Where no lock can be taken (no ``fcntl``, a read-only folder without
    the lock file), the hold holds nothing.
    """
    path = data_dir(directory, manifest) / READERS
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except FileNotFoundError:
        return None if not path.parent.exists() else GenerationHold(None)
    except OSError:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return GenerationHold(None)
    if fcntl is None:  # pragma: no cover - Windows
        os.close(fd)
        return GenerationHold(None)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a build removes this generation
        still_there = os.stat(path).st_ino == os.fstat(fd).st_ino
    except OSError:
        still_there = False
    if not still_there:
        os.close(fd)
        return None
    return GenerationHold(fd)


def _remove_if_free(directory: Path, folder: Path) -> bool:
    """Remove generation ``folder`` unless a process holds it; True when it was removed."""
    try:
        fd = os.open(folder / READERS, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a loaded index holds it
        trash = directory / f".trash-{folder.name}"
        os.replace(folder, trash)  # a reader opening it from now on finds it gone and reads the manifest again
        shutil.rmtree(trash, ignore_errors=True)
        return True
    finally:
        os.close(fd)


def clean_up(directory: Path, keep: set[str]) -> None:
    """Remove superseded generations that no process holds, and leftovers (call under the write lock).

    ``keep`` names the live generation. Without shared locks (no ``fcntl``)
    the newest other generation is kept too, for readers still opening it.
    """
    generations = sorted(
        (p for p in directory.iterdir() if p.name.startswith("gen-") and p.name not in keep and p.is_dir()),
        key=lambda p: p.stat().st_mtime,
    )
    if fcntl is None:  # pragma: no cover - Windows
        for path in generations[:-1]:
            shutil.rmtree(path, ignore_errors=True)
    else:
        for path in generations:
            _remove_if_free(directory, path)
    for path in directory.iterdir():
        name = path.name
        if name.startswith((".tmp-", ".trash-", f".{MANIFEST}.")):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def is_index_dir(folder: Path) -> bool:
    """True for a folder that holds a ragqa index (its manifest), which an index build never reads as documents."""
    try:
        with open(folder / MANIFEST, encoding="utf-8") as fh:
            return json.load(fh).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        return False
