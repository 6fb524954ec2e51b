"""Tokenizing for the models with the tokenizers library alone (no transformers import)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from rag_qa.errors import InputError, ModelError


class Windows:
    """Tokenized (question, context) windows: model inputs plus what maps tokens back to characters."""

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        sample_map: list[int],
        offsets: list[list[tuple[int, int]]],
        sequence_ids: list[list[int | None]],
    ):
        self.arrays = arrays
        self.sample_map = sample_map
        self.offsets = offsets
        self.sequence_ids = sequence_ids

    def __len__(self) -> int:
        return len(self.sample_map)

    def first_per_sample(self, limit: int) -> "Windows":
        """Only the first ``limit`` windows of each sample (all of them when none has more)."""
        counts: dict[int, int] = {}
        keep = []
        for i, sample in enumerate(self.sample_map):
            counts[sample] = counts.get(sample, 0) + 1
            if counts[sample] <= limit:
                keep.append(i)
        if len(keep) == len(self.sample_map):
            return self
        return Windows(
            {k: v[keep] for k, v in self.arrays.items()},
            [self.sample_map[i] for i in keep],
            [self.offsets[i] for i in keep],
            [self.sequence_ids[i] for i in keep],
        )


class FastTokenizer:
    """A model directory's ``tokenizer.json`` run with the tokenizers library alone.

    Gives the ids, offsets and overflowing windows that transformers' fast
    tokenizer gives for the same files (it wraps the same library), without
    importing transformers.
    """

    def __init__(self, model_dir: str | Path, kind: str = "reader"):
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        file = model_dir / "tokenizer.json"
        if not file.is_file():
            raise ModelError(
                f"{kind} directory {model_dir} has no tokenizer.json (a fast tokenizer), which ragqa needs"
            )
        try:
            self.tokenizer = Tokenizer.from_file(str(file))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exceptions
            raise ModelError(f"{kind} directory {model_dir}: tokenizer.json could not be read ({exc})") from exc
        settings = _read_json(model_dir / "tokenizer_config.json")
        pad = settings.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        self.pad_id = (self.tokenizer.token_to_id(pad) if isinstance(pad, str) else None) or 0
        limit = settings.get("model_max_length")
        self.model_max_length = int(limit) if isinstance(limit, (int, float)) and limit < 1e9 else None
        self.tokenizer.no_padding()
        # truncation is a setting of the tokenizer: set it and encode under one lock, so that threads
        # sharing a reader (the service's) never encode with another call's setting
        self._settings = threading.Lock()

    def _arrays(self, encodings) -> dict[str, np.ndarray]:
        width = max(len(e.ids) for e in encodings)
        arrays = {
            "input_ids": np.full((len(encodings), width), self.pad_id, dtype=np.int64),
            "attention_mask": np.zeros((len(encodings), width), dtype=np.int64),
            "token_type_ids": np.zeros((len(encodings), width), dtype=np.int64),
        }
        for row, e in enumerate(encodings):
            n = len(e.ids)
            arrays["input_ids"][row, :n] = e.ids
            arrays["attention_mask"][row, :n] = e.attention_mask
            arrays["token_type_ids"][row, :n] = e.type_ids
        return arrays

    def count(self, text: str) -> int:
        """How many tokens ``text`` makes, special tokens aside and nothing cut."""
        with self._settings:
            self.tokenizer.no_truncation()
            return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def texts(self, texts: Sequence[str], max_length: int) -> dict[str, np.ndarray]:
        """Single texts, truncated to ``max_length`` tokens, padded to the longest."""
        with self._settings:
            self.tokenizer.enable_truncation(max_length)
            encoded = self.tokenizer.encode_batch(list(texts))
        return self._arrays(encoded)

    def windows(self, questions: Sequence[str], contexts: Sequence[str], max_length: int, stride: int) -> Windows:
        """(question, context) pairs cut into windows of ``max_length`` tokens
        overlapping by ``stride``; only the context is cut."""
        try:
            with self._settings:
                self.tokenizer.enable_truncation(max_length, stride=stride, strategy="only_second")
                encoded = self.tokenizer.encode_batch(list(zip(questions, contexts)))
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - a question that fills the window: an error, or a Rust panic
            raise InputError(
                f"the question is too long to read with a passage in {max_length} tokens: shorten it "
                f"({str(exc).splitlines()[0]})"
            ) from exc
        flat, sample_map = [], []
        for i, e in enumerate(encoded):
            for window in [e, *e.overflowing]:
                flat.append(window)
                sample_map.append(i)
        return Windows(self._arrays(flat), sample_map, [w.offsets for w in flat], [w.sequence_ids for w in flat])


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
