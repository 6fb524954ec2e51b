"""Answers corrected by users, stored as SQuAD v2.0 JSON that `ragqa train-reader --train FOLDER` reads."""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from rag_qa.errors import InputError
from rag_qa.types import Passage

SQUAD_VERSION = "v2.0"


class FeedbackStore:
    """One SQuAD v2.0 file per day (``feedback-YYYY-MM-DD.json``) under ``folder``.

    Each record is added by rewriting the day's file atomically: the new
    content is written to a temporary file beside it, flushed to disk
    (fsync), then renamed over it, so a kill at any moment leaves the
    previous file or the new one, never a torn one. A lock file keeps
    several worker processes from losing each other's records.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._lock = threading.Lock()

    def path_for(self, day: dt.date) -> Path:
        return self.folder / f"feedback-{day.isoformat()}.json"

    def add(
        self, question: str, passage: Passage, answer: str | None, answer_start: int | None
    ) -> tuple[dict[str, Any], Path]:
        """Record that ``answer`` (at ``answer_start`` in the passage's text) answers ``question``;
        ``answer=None``: the passage does not answer it. Returns the stored question record and its file."""
        question = question.strip()
        if answer is not None:
            if answer_start is None:
                raise InputError("answer_start is missing: give the answer's character offset in the passage")
            if not answer.strip():
                raise InputError("the answer is blank: give its text, or null when the passage holds no answer")
            if not 0 <= answer_start <= len(passage.text) - len(answer):
                raise InputError(
                    f"answer_start {answer_start} is outside the passage ({len(passage.text)} characters): "
                    "give the offset into the passage's text"
                )
            found = passage.text[answer_start : answer_start + len(answer)]
            if found != answer:
                raise InputError(
                    f"the passage holds {found!r} at {answer_start}, not the answer {answer!r}: "
                    "give the answer's exact text and its offset in the passage"
                )
        now = dt.datetime.now(dt.timezone.utc)
        digest = hashlib.sha256(f"{now.isoformat()}|{passage.passage_id}|{question}".encode()).hexdigest()[:16]
        record = {
            "id": f"feedback-{digest}",
            "question": question,
            "answers": [] if answer is None else [{"text": answer, "answer_start": answer_start}],
            "is_impossible": answer is None,
        }
        return record, self._append(now.date(), passage, record)

    def _append(self, day: dt.date, passage: Passage, record: dict[str, Any]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path_for(day)
        with self._lock, open(self.folder / ".feedback.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"version": SQUAD_VERSION}
            articles = data.setdefault("data", [])
            # The document's source is the article title: held-out splits keep a document's questions together.
            article = next((a for a in articles if a.get("title") == passage.source), None)
            if article is None:
                article = {"title": passage.source, "paragraphs": []}
                articles.append(article)
            para = next((p for p in article["paragraphs"] if p.get("context") == passage.text), None)
            if para is None:
                para = {"context": passage.text, "qas": []}
                article["paragraphs"].append(para)
            para["qas"].append(record)
            _write_atomic(path, json.dumps(data, indent=1, ensure_ascii=False))
        return path


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
