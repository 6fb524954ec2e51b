"""The data sets ragqa trains and evaluates on, and the held-out rules they share.

- SQuAD v1.1 / v2.0 JSON (plain or gzipped) as flat question examples;
- BEIR folders (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``);
- the held-out splits every job uses: SQuAD articles by a hash of their
  title, BEIR queries by a seeded draw, and the fixed tuning and test
  halves of those held-out questions.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from rag_qa.errors import InputError
from rag_qa.text import normalize_answer

BEIR_EVAL_FRACTION = 0.2  # share of BEIR queries held out, drawn with seed 0


@dataclass(frozen=True)
class QAExample:
    """One question with its paragraph (``context``) and reference answers."""

    qid: str
    title: str
    context: str
    question: str
    answer_texts: tuple[str, ...]
    answer_starts: tuple[int, ...]
    is_impossible: bool = False


def read_squad(path: str | Path) -> list[QAExample]:
    """Every question of a SQuAD file, answerable or not (v2.0 ``is_impossible``).

    A folder is read as every ``.json`` and ``.json.gz`` file in it, in name
    order (``ragqa serve``'s feedback folder is one).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.is_file() and f.name.endswith((".json", ".json.gz")))
        if not files:
            raise InputError(f"folder {path} holds no .json or .json.gz file: pass a folder of SQuAD files")
        return [example for f in files for example in read_squad(f)]
    if not path.is_file():
        raise InputError(
            f"training file {path} does not exist: pass a SQuAD .json or .json.gz file or a folder of them"
        )
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            data = json.load(fh)["data"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{path} is not SQuAD JSON (expected {{'data': [{{'title', 'paragraphs': ...}}]}}): {exc}"
        ) from exc
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


def article_title(title: str) -> str:
    """An article's title as a document title: SQuAD writes ``Old_English`` for "Old English"."""
    return title.replace("_", " ")


def squad_paragraphs(examples: list[QAExample]) -> dict[str, str]:
    """Each distinct paragraph once, in order of first appearance, with its article's title."""
    paragraphs: dict[str, str] = {}
    for e in examples:
        paragraphs.setdefault(e.context, article_title(e.title))
    return paragraphs


@dataclass
class BeirSet:
    """A BEIR folder read for one split: documents, judged queries and their relevance."""

    corpus: list[dict[str, str]]  # id, title, text
    queries: list[tuple[str, str]]  # (query id, text), judged queries only
    qrels: dict[str, dict[str, float]]  # query id -> {doc id: relevance > 0}


def read_beir(folder: str | Path, split: str = "test") -> BeirSet:
    folder = Path(folder)
    qrels_file = folder / "qrels" / f"{split}.tsv"
    for needed in (folder / "corpus.jsonl", folder / "queries.jsonl", qrels_file):
        if not needed.is_file():
            raise InputError(
                f"BEIR folder {folder} has no {needed.relative_to(folder)}: expected corpus.jsonl, queries.jsonl and "
                f"qrels/{split}.tsv"
            )
    corpus = []
    with open(folder / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                corpus.append({"id": str(row["_id"]), "title": row.get("title", ""), "text": row.get("text", "")})
    qrels: dict[str, dict[str, float]] = {}
    with open(qrels_file, encoding="utf-8") as fh:
        for row in csv.reader(fh, delimiter="\t"):
            if not row or row[0] == "query-id":
                continue
            if float(row[2]) > 0:
                qrels.setdefault(row[0], {})[row[1]] = float(row[2])
    queries = []
    with open(folder / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                if str(row["_id"]) in qrels:
                    queries.append((str(row["_id"]), row["text"]))
    return BeirSet(corpus, queries, qrels)


def beir_held_out(query_ids: list[str], eval_fraction: float = BEIR_EVAL_FRACTION, seed: int = 0) -> set[str]:
    """The BEIR queries every job holds out: a seeded draw of ``eval_fraction`` of them."""
    qids = sorted(query_ids)
    return set(random.Random(seed).sample(qids, int(len(qids) * eval_fraction))) if eval_fraction > 0 else set()


def held_out_beir_queries(
    folder: str | Path,
    split: str = "train",
    eval_fraction: float = BEIR_EVAL_FRACTION,
    seed: int = 0,
    role: str | None = None,
) -> set[str]:
    """The query ids of a BEIR split that training holds out, or one half of
    them (``role``: ``"tune"`` or ``"test"``, see :func:`held_out_role`)."""
    held = beir_held_out([q for q, _ in read_beir(folder, split).queries], eval_fraction, seed)
    return held if role is None else {q for q in held if held_out_role(q) == role}


def answerless_examples(
    examples: list[QAExample], per_question: float, seed: int, pool: list[QAExample] | None = None
) -> list[QAExample]:
    """No-answer examples: each question paired with other paragraphs of its
    article that hold none of its answers (checked on normalised text).

    ``per_question`` paragraphs per question on average: the whole part is
    drawn always, the fraction with that probability. ``pool`` gives the
    paragraphs to draw from (default: those of ``examples``).
    """
    if per_question <= 0:
        return []
    rng = random.Random(seed)
    by_title: dict[str, list[str]] = {}
    for e in pool if pool is not None else examples:
        contexts = by_title.setdefault(e.title, [])
        if not contexts or contexts[-1] != e.context:
            contexts.append(e.context)
    normalised: dict[str, str] = {}
    negatives = []
    for e in examples:
        if e.is_impossible or not e.answer_texts:
            continue
        n = int(per_question) + (rng.random() < per_question - int(per_question))
        candidates = [c for c in by_title.get(e.title, ()) if c != e.context]
        rng.shuffle(candidates)
        answers = [a for a in (normalize_answer(t) for t in e.answer_texts) if a]
        taken = 0
        for context in candidates:
            if taken >= n:
                break
            text = normalised.get(context)
            if text is None:
                text = normalised[context] = normalize_answer(context)
            if any(a in text for a in answers):
                continue
            negatives.append(unanswerable(e, f"{e.qid}-neg{taken}", e.title, context))
            taken += 1
    return negatives


NEGATIVE_SUFFIX = re.compile(r"-(?:bm25)?neg\d+$")


def asked_as(qid: str) -> str:
    """The id of the question an answerless example was made from (``q1-neg0`` -> ``q1``);
    any other id as it is."""
    return NEGATIVE_SUFFIX.sub("", qid)


def unanswerable(question: QAExample, qid: str, title: str, context: str) -> QAExample:
    """``question`` asked of another paragraph, ``context``, labelled no-answer."""
    return QAExample(
        qid=qid,
        title=title,
        context=context,
        question=question.question,
        answer_texts=(),
        answer_starts=(),
        is_impossible=True,
    )
