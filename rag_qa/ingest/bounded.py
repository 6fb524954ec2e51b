"""Parsing a file in a child process with a time and memory bound.

HTML and PDF parsers can be made to run for minutes or take gigabytes on a
small hostile file (a PDF whose pages share one huge content stream, a
megabyte of unclosed tags). Such files are parsed in a forked child with an
address-space limit; past the time limit the child is killed. The result
comes back as JSON over a pipe.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class ReadLimits:
    """What one file may cost to read (from the index config)."""

    max_file_mb: float = 64.0
    parse_seconds: float = 60.0  # HTML and PDF: wall time for parsing one file
    parse_memory_mb: int = 2048  # HTML and PDF: memory the parser may add
    max_pages: int = 5000  # PDF pages read from one file
    max_chars: int = 5_000_000  # HTML, PDF, JSONL: characters of text kept from one file or record


class LimitExceeded(Exception):
    """A file's parse ran past its time or memory bound."""


# How the parsing child starts: forked from this process, or (in a process with threads of its
# own, such as a Ray worker, where a fork can deadlock) from a fork server.
START_METHOD = "fork"


def _address_space() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _child(conn, fn: Callable[..., Any], args: tuple, memory_mb: int) -> None:
    try:
        import resource

        limit = _address_space() + memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        conn.send_bytes(json.dumps({"ok": fn(*args)}).encode("utf-8", "surrogatepass"))
    except MemoryError:
        conn.send_bytes(json.dumps({"limit": f"parsing needed more than {memory_mb} MB"}).encode())
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
        conn.send_bytes(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode("utf-8", "surrogatepass"))
    finally:
        conn.close()


def run_bounded(fn: Callable[..., Any], args: tuple, seconds: float, memory_mb: int) -> Any:
    """``fn(*args)`` (JSON-serialisable result) in a forked child; :class:`LimitExceeded`
    past ``seconds`` or ``memory_mb``, ``RuntimeError`` with the child's error otherwise.
    Where fork is unavailable, ``fn`` runs in this process without bounds."""
    if START_METHOD not in multiprocessing.get_all_start_methods():  # pragma: no cover - Windows, macOS spawn-only
        return fn(*args)
    context = multiprocessing.get_context(START_METHOD)
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(child, fn, args, memory_mb), daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(seconds):
            raise LimitExceeded(f"parsing took longer than {seconds:g} s")
        try:
            message = json.loads(parent.recv_bytes().decode("utf-8", "surrogatepass"))
        except EOFError:
            raise LimitExceeded(f"the parser died (over {memory_mb} MB?)") from None
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        parent.close()
    if "limit" in message:
        raise LimitExceeded(message["limit"])
    if "error" in message:
        raise RuntimeError(message["error"])
    return message["ok"]
