"""SQuAD v1.1 / v2.0 JSON (plain or gzipped) as flat question examples."""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from rag_qa.errors import InputError


@dataclass(frozen=True)
class QAExample:
    qid: str
    title: str
    context: str
    question: str
    answer_texts: tuple[str, ...]
    answer_starts: tuple[int, ...]
    is_impossible: bool = False


def read_squad(path: str | Path) -> list[QAExample]:
    """Every question of a SQuAD file, answerable or not (v2.0 ``is_impossible``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"training file {path} does not exist: pass a SQuAD .json or .json.gz file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            data = json.load(fh)["data"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not SQuAD JSON (expected {{'data': [{{'title', 'paragraphs': ...}}]}}): {exc}") from exc
    examples = []
    for article in data:
        title = article.get("title", "")
        for para in article["paragraphs"]:
            context = para["context"]
            for qa in para["qas"]:
                answers = qa.get("answers") or []
                examples.append(
                    QAExample(
                        qid=str(qa["id"]),
                        title=title,
                        context=context,
                        question=qa["question"].strip(),
                        answer_texts=tuple(a["text"] for a in answers),
                        answer_starts=tuple(int(a["answer_start"]) for a in answers),
                        is_impossible=bool(qa.get("is_impossible", False)) or not answers,
                    )
                )
    if not examples:
        raise InputError(f"{path} holds no questions")
    return examples


def is_held_out(title: str, percent: int = 5) -> bool:
    """The deterministic held-out split by article: about ``percent``% of titles.

    Every ragqa job (reader, encoder, eval) uses this same rule, so no
    held-out paragraph is ever trained on.
    """
    bucket = int(hashlib.sha1(title.encode("utf-8")).hexdigest(), 16) % 100
    return bucket < percent


def held_out_role(question_id: str) -> str:
    """``"tune"`` or ``"test"``: the fixed half of the held-out questions a question belongs to.

    Settings are chosen on the tuning half (checkpoint selection in
    train-encoder, ``ragqa tune-reader``, ``ragqa tune-fusion``) and scores
    are reported on the test half (``ragqa eval --held-out``, the
    benchmarks), so that no reported score comes from the questions that
    chose the settings.
    """
    return "tune" if int(hashlib.sha1(str(question_id).encode("utf-8")).hexdigest(), 16) % 2 == 0 else "test"


def split_by_article(examples: list[QAExample], percent: int = 5) -> tuple[list[QAExample], list[QAExample]]:
    train = [e for e in examples if not is_held_out(e.title, percent)]
    held = [e for e in examples if is_held_out(e.title, percent)]
    return train, held


def held_out_half(examples: list[QAExample], role: str, percent: int = 5) -> list[QAExample]:
    """The questions of the held-out articles in one half (``"tune"`` or ``"test"``, see :func:`held_out_role`)."""
    return [e for e in split_by_article(examples, percent)[1] if held_out_role(e.qid) == role]
