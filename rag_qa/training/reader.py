"""``ragqa train-reader``: fine-tune an extractive QA reader on SQuAD-format data.

The Hugging Face Trainer runs the loop; this module prepares windowed
features (offset mapping, [CLS] label for windows without the answer),
evaluates with SQuAD EM/F1 on held-out questions, keeps the best checkpoint
and writes a plain ``save_pretrained`` directory with ``eval_results.json``
and a model card.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import signal
import time
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
from pydantic import model_validator

from rag_qa.choices import TrainPrecision
from rag_qa.config import Config
from rag_qa.data import QAExample, answerless_examples, asked_as, held_out_role, read_squad, split_by_article
from rag_qa.errors import InputError, require_extra
from rag_qa.evaluation.metrics import squad_scores
from rag_qa.reading.spans import decode_window
from rag_qa.retrieval.negatives import retrieved_answerless_examples

logger = logging.getLogger(__name__)


class ReaderTrainConfig(Config):
    """Settings of ``ragqa train-reader`` (``configs/train_reader.yaml``)."""

    base: Optional[str] = None  # a local model directory; None = the bundled MiniLM
    max_seq_length: int = 256
    doc_stride: int = 96
    max_answer_length: int = 30
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    epochs: float = 2.0
    batch_size: int = 32
    max_steps: int = -1  # > 0 stops after this many optimizer steps
    max_train_examples: Optional[int] = None  # a random subset of the training questions
    # With data_offset set, the training questions are a fixed shuffle (data_seed) of all of
    # them, and a run takes the slice [data_offset, data_offset + max_train_examples): runs
    # that continue one another with consecutive offsets go through the data without repeats.
    data_offset: Optional[int] = None
    data_seed: int = 0
    # Answerless windows: for each training question, this many other paragraphs of its
    # article that contain none of its answers, labelled no-answer (a fraction draws one
    # with that probability). 0 = SQuAD v1.1 gold paragraphs only.
    negatives_per_question: float = 0.0
    # Retrieved answerless windows: for each training question, up to this many of the paragraphs
    # of *other* articles that BM25 ranks highest for it (its top 10 of them) and that hold none
    # of its answers: the wrong passages a retriever shows the reader. 0 = none.
    retrieved_negatives_per_question: float = 0.0
    # Shared normalisation (Clark & Gardner 2018): besides each window's own loss, the answer's
    # start and end are scored by one softmax over every token of every window of its question
    # in the batch (its paragraph and its answerless ones), so that span scores compare across
    # passages as the reader ranks them. A question's windows then come one after another
    # (a batch border splits a few: each part is scored against the windows in its batch).
    shared_normalization: bool = False
    # Distillation: a trained reader whose start and end scores the model also learns to match
    # (soft targets at distill_temperature, weighted distill_weight against the labels' loss).
    # Its tokenizer must hold every word piece of the model's (all-mpnet-base-v2 does MiniLM's):
    # its scores are mapped onto the model's tokens one to one (TeacherFrame).
    teacher: Optional[str] = None
    distill_weight: float = 0.5
    distill_temperature: float = 2.0
    eval_examples: Optional[int] = 1000  # held-out questions scored at each evaluation (None = all)
    eval_steps: int = 500
    save_steps: Optional[int] = None  # resumable checkpoints (None = at each evaluation); also on SIGTERM
    early_stopping_patience: int = 3
    held_out_percent: int = 5  # when no --eval file: articles held out by title hash
    precision: TrainPrecision = "auto"  # auto: fp16 on CUDA, bf16 on CPUs with native bf16, else fp32
    group_by_length: bool = True  # batches of windows of similar length, padded to their longest
    # The fused AdamW kernel: the same update, about 7% more windows/s on a 2-core CPU
    # (bench/train_throughput.py); "adamw_torch" is the unfused one.
    optimizer: Literal["adamw_torch_fused", "adamw_torch"] = "adamw_torch_fused"
    # Give the word embeddings no gradient: about 16% more windows/s on a 2-core CPU (one round).
    # With 192-token windows, one 6,336-window stage cost no measurable gold-passage EM
    # (docs/fine-tuning.md); off by default until a longer run says the same.
    freeze_word_embeddings: bool = False
    seed: int = 42
    logging_steps: int = 50

    @model_validator(mode="after")
    def _check(self) -> "ReaderTrainConfig":
        if self.doc_stride >= self.max_seq_length:
            raise InputError(
                f"doc_stride ({self.doc_stride}) must be smaller than max_seq_length ({self.max_seq_length})"
            )
        if self.eval_steps < 1:
            raise InputError(f"eval_steps must be 1 or more, got {self.eval_steps}")
        if self.save_steps is not None and (self.save_steps < 1 or self.save_steps % self.eval_steps):
            raise InputError(
                f"save_steps ({self.save_steps}) must be a multiple of eval_steps ({self.eval_steps}): the best "
                "checkpoint is chosen among the saved ones by its evaluation; leave save_steps out to save at each one"
            )
        if not 0.0 <= self.distill_weight <= 1.0 or self.distill_temperature <= 0:
            raise InputError(
                f"distill_weight must be 0 to 1 and distill_temperature above 0, got {self.distill_weight} and "
                f"{self.distill_temperature}"
            )
        for key in ("negatives_per_question", "retrieved_negatives_per_question"):
            if getattr(self, key) < 0:
                raise InputError(f"{key} must be 0 or more, got {getattr(self, key)}")
        return self


def choose_training_questions(examples: list[QAExample], config: "ReaderTrainConfig") -> list[QAExample]:
    """The training questions of one run: all, a random subset, or a slice of a fixed shuffle."""
    if config.data_offset is not None:
        order = list(range(len(examples)))
        random.Random(config.data_seed).shuffle(order)
        end = len(order) if not config.max_train_examples else config.data_offset + config.max_train_examples
        chosen = [examples[i] for i in order[config.data_offset : end]]
        if not chosen:
            raise InputError(f"data_offset {config.data_offset} is past the {len(examples):,} training questions")
        return chosen
    if config.max_train_examples and len(examples) > config.max_train_examples:
        return random.Random(config.seed).sample(examples, config.max_train_examples)
    return examples


def _windows(examples: list[QAExample], tokenizer, max_length: int, stride: int):
    """Question + context windows of ``max_length`` tokens overlapping by ``stride``."""
    return tokenizer(
        [e.question for e in examples],
        [e.context for e in examples],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )


def prepare_train_features(
    examples: list[QAExample], tokenizer, max_length: int, stride: int, groups: list[int] | None = None
) -> dict[str, np.ndarray]:
    """Tokenised windows with start/end token labels ([CLS] = 0 when the answer is outside);
    with ``groups`` (one number per example), each window's ``group`` too."""
    enc = _windows(examples, tokenizer, max_length, stride)
    starts, ends = [], []
    for i, offsets in enumerate(enc["offset_mapping"]):
        example = examples[enc["overflow_to_sample_mapping"][i]]
        seq_ids = enc.sequence_ids(i)
        if example.is_impossible or not example.answer_texts:
            starts.append(0)
            ends.append(0)
            continue
        a_start = example.answer_starts[0]
        a_end = a_start + len(example.answer_texts[0])
        ctx = [j for j, s in enumerate(seq_ids) if s == 1]
        if not ctx or offsets[ctx[0]][0] > a_start or offsets[ctx[-1]][1] < a_end:
            starts.append(0)
            ends.append(0)
            continue
        s_tok = next(j for j in ctx if offsets[j][1] > a_start)
        e_tok = next(j for j in reversed(ctx) if offsets[j][0] < a_end)
        starts.append(s_tok)
        ends.append(e_tok)
    features = {k: np.asarray(enc[k]) for k in ("input_ids", "attention_mask") if k in enc}
    if "token_type_ids" in enc:
        features["token_type_ids"] = np.asarray(enc["token_type_ids"])
    features["start_positions"] = np.asarray(starts)
    features["end_positions"] = np.asarray(ends)
    if groups is not None:
        features["group"] = np.asarray(groups)[np.asarray(enc["overflow_to_sample_mapping"])]
    return features


def question_groups(examples: list[QAExample], negatives: list[QAExample]) -> list[int]:
    """One number per example of ``examples + negatives``: the index of the training question
    each was asked as (an answerless paragraph takes its question's)."""
    index = {e.qid: i for i, e in enumerate(examples)}
    return list(range(len(examples))) + [index.get(asked_as(n.qid), len(examples) + j) for j, n in enumerate(negatives)]


def shared_normalization_loss(start_logits, end_logits, start_positions, end_positions, groups, attention_mask):
    """The answer's negative log-likelihood under one softmax over the tokens of all the windows
    of its question in the batch ([CLS], the no-answer, left out: each window's own loss trains
    it). A question's answer may lie in several windows; their probabilities add up. Averaged
    over the questions whose answer is in the batch, start and end halved as in the per-window
    loss; 0 when there is none."""
    import torch

    valid = attention_mask.bool().clone()
    valid[:, 0] = False
    losses = []
    for group in torch.unique(groups):
        rows = groups == group
        holds = start_positions[rows] > 0
        if not holds.any():
            continue
        for logits, positions in ((start_logits, start_positions), (end_logits, end_positions)):
            scores = logits[rows].float().masked_fill(~valid[rows], float("-inf"))
            gold = scores[holds].gather(1, positions[rows][holds].unsqueeze(1))
            losses.append(scores.logsumexp(dim=(0, 1)) - gold.logsumexp(dim=(0, 1)))
    if not losses:
        return start_logits.sum() * 0.0
    return torch.stack(losses).mean()


class TeacherFrame:
    """Puts the student's windows in the teacher's frame and brings the teacher's scores back.

    Each word piece is looked up by its text in the teacher's vocabulary ([CLS], [SEP], [PAD]
    become the teacher's own special tokens); a teacher that frames a pair with two separators
    (``<s> question </s></s> context </s>``, as MPNet and RoBERTa do) gets the second one
    inserted after the first. Student position ``j`` is then teacher position ``j``, or ``j + 1``
    after the question: the same word pieces, so one score per student token.
    """

    def __init__(self, student_tokenizer, teacher_tokenizer):
        import torch

        vocab = teacher_tokenizer.get_vocab()
        specials = {
            student_tokenizer.cls_token_id: teacher_tokenizer.cls_token_id,
            student_tokenizer.sep_token_id: teacher_tokenizer.sep_token_id,
            student_tokenizer.pad_token_id: teacher_tokenizer.pad_token_id,
            student_tokenizer.unk_token_id: teacher_tokenizer.unk_token_id,
        }
        table, missing = [], []
        for token_id in range(len(student_tokenizer)):
            token = student_tokenizer.convert_ids_to_tokens(token_id)
            mapped = specials.get(token_id, vocab.get(token))
            if mapped is None:
                missing.append(token)
                mapped = teacher_tokenizer.unk_token_id
            table.append(mapped)
        if len(missing) > len(table) // 100:
            raise InputError(
                f"the teacher's tokenizer lacks {len(missing):,} of the model's {len(table):,} word pieces "
                f"(e.g. {missing[:3]}): distil from a teacher with the same word pieces"
            )
        if missing:
            logger.warning(
                "the teacher's tokenizer lacks %d of the model's word pieces (e.g. %s): the teacher reads them as "
                "unknown",
                len(missing),
                missing[:3],
            )
        self.table = torch.as_tensor(table)
        self._tables: dict = {}
        self.sep = teacher_tokenizer.sep_token_id
        self.pad = teacher_tokenizer.pad_token_id
        pair = teacher_tokenizer("a", "b")["input_ids"]
        self.double_sep = pair.count(self.sep) == 3
        self.student_sep = student_tokenizer.sep_token_id

    def inputs(self, input_ids, attention_mask):
        """The teacher's input ids and attention mask, and each student position's teacher position."""
        import torch

        table = self._tables.get(input_ids.device)
        if table is None:  # copied to each device once, not on every batch
            table = self._tables[input_ids.device] = self.table.to(input_ids.device)
        ids = table[input_ids]
        rows, width = input_ids.shape
        positions = torch.arange(width, device=input_ids.device).expand(rows, width)
        if not self.double_sep:
            return ids, attention_mask, positions
        first_sep = (input_ids == self.student_sep).int().argmax(dim=1, keepdim=True)
        positions = positions + (positions > first_sep).long()
        t_ids = torch.full((rows, width + 1), self.pad, dtype=ids.dtype, device=ids.device)
        t_mask = torch.zeros((rows, width + 1), dtype=attention_mask.dtype, device=ids.device)
        t_ids.scatter_(1, positions, ids)
        t_mask.scatter_(1, positions, attention_mask)
        t_ids.scatter_(1, first_sep + 1, self.sep)
        t_mask.scatter_(1, first_sep + 1, 1)
        return t_ids, t_mask, positions

    def check(self, student_tokenizer, teacher_tokenizer, question: str, context: str, max_length: int) -> None:
        """Refuse a teacher whose own framing of (question, context) differs from this one's."""
        import torch

        enc = student_tokenizer(question, context, truncation="only_second", max_length=max_length)
        ids, mask, _ = self.inputs(torch.as_tensor([enc["input_ids"]]), torch.as_tensor([enc["attention_mask"]]))
        own = teacher_tokenizer(question, context, truncation="only_second", max_length=ids.shape[1])["input_ids"]
        if ids[0].tolist() != list(own):
            raise InputError(
                "the teacher's tokenizer frames a question and its passage differently from the model's "
                f"({len(own)} tokens against {ids.shape[1]}, or other word pieces): distil from a teacher that cuts "
                "text into the same word pieces"
            )


def distillation_loss(student_start, student_end, teacher_start, teacher_end, attention_mask, temperature):
    """KL divergence from the teacher's start and end distributions to the student's, each a
    softmax over the window's tokens at ``temperature`` (padding left out), times the squared
    temperature (Hinton et al.); start and end halved, averaged over the windows."""
    import torch.nn.functional as F

    pad = ~attention_mask.bool()
    total = 0.0
    for student, teacher in ((student_start, teacher_start), (student_end, teacher_end)):
        log_s = F.log_softmax(student.float().masked_fill(pad, -1e4) / temperature, dim=-1)
        log_t = F.log_softmax(teacher.float().masked_fill(pad, -1e4) / temperature, dim=-1)
        total = total + (log_t.exp() * (log_t - log_s)).sum(dim=-1).mean() / 2
    return total * temperature**2


class GroupSampler:
    """Training windows question by question (a question's windows over its paragraph and its
    answerless ones, in a row), the questions shuffled each epoch. Within runs of about 50
    batches, questions are ordered by their longest window, so that a batch pads little, as
    length-grouped batches do (all ``lengths`` equal: no ordering). A question that straddles
    a batch border is split there."""

    def __init__(self, groups: np.ndarray, lengths: np.ndarray, batch_size: int, seed: int):
        order = np.argsort(groups, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(groups[order]) != 0])
        self.members = np.split(order, starts[1:])
        self.longest = np.asarray([lengths[m].max() for m in self.members])
        self.chunk = 50 * batch_size
        self.seed = seed
        self.epoch = 0
        self.n = len(groups)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        chunk: list[int] = []
        size = 0
        for g in rng.permutation(len(self.members)):
            chunk.append(int(g))
            size += len(self.members[g])
            if size >= self.chunk:
                yield from self._longest_first(chunk)
                chunk, size = [], 0
        yield from self._longest_first(chunk)

    def _longest_first(self, chunk: list[int]):
        for c in sorted(chunk, key=lambda c: -self.longest[c]):
            yield from (int(i) for i in self.members[c])


def prepare_eval_features(
    examples: list[QAExample], tokenizer, max_length: int, stride: int
) -> tuple[dict[str, np.ndarray], list[int], list[list]]:
    """Windows, the example each came from, and context-only offsets per token."""
    enc = _windows(examples, tokenizer, max_length, stride)
    offsets = []
    for i, offs in enumerate(enc["offset_mapping"]):
        seq_ids = enc.sequence_ids(i)
        offsets.append([tuple(o) if seq_ids[j] == 1 else None for j, o in enumerate(offs)])
    features = {k: np.asarray(enc[k]) for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    return features, list(enc["overflow_to_sample_mapping"]), offsets


def best_answers(
    examples: list[QAExample],
    sample_map: list[int],
    offsets: list[list],
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    max_answer_length: int,
) -> dict[str, str]:
    """The best span of each example over all its windows (SQuAD v1: always answer)."""
    best: dict[int, tuple[float, int, int]] = {}
    for i, ex_index in enumerate(sample_map):
        spans, _ = decode_window(
            start_logits[i],
            end_logits[i],
            offsets[i],
            max_answer_tokens=max_answer_length,
            context=examples[ex_index].context,
        )
        if spans and (ex_index not in best or spans[0].score > best[ex_index][0]):
            best[ex_index] = (spans[0].score, spans[0].start, spans[0].end)
    return {e.qid: (e.context[best[k][1] : best[k][2]] if k in best else "") for k, e in enumerate(examples)}


class _ArrayDataset:
    """Rows of equal-width arrays. With ``trim``, each row is cut to its own
    length (its attention mask), for batches padded only as far as their
    longest row."""

    def __init__(self, arrays: dict[str, np.ndarray], trim: bool = False):
        self.arrays = arrays
        self.n = len(next(iter(arrays.values())))
        self.lengths = arrays["attention_mask"].sum(axis=1) if trim else None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        if self.lengths is None:
            return {k: torch.as_tensor(v[i]) for k, v in self.arrays.items()}
        n = int(self.lengths[i])
        return {k: torch.as_tensor(v[i][:n] if v.ndim == 2 else v[i]) for k, v in self.arrays.items()}


class _StopOnSignal:
    """A Trainer callback: on SIGTERM or SIGINT, save a resumable checkpoint
    (weights, optimizer, scheduler, RNG, position in the data) at the end of
    the current step and stop."""

    def __init__(self):
        self.received = False

    def _handler(self, signum, frame):
        logger.warning("signal %d: saving a checkpoint after this step", signum)
        self.received = True

    @contextlib.contextmanager
    def installed(self):
        previous = {sig: signal.signal(sig, self._handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def callback(self):
        """The Trainer callback that turns a received signal into save-and-stop."""
        from transformers import TrainerCallback

        owner = self

        class SaveAndStop(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if owner.received:
                    control.should_save = True
                    control.should_training_stop = True
                    control.should_evaluate = False
                return control

        return SaveAndStop()


def train_reader(
    train_path: str | Path,
    out_dir: str | Path,
    config: ReaderTrainConfig = ReaderTrainConfig(),
    eval_path: str | Path | None = None,
    resume: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune a reader and save it to ``out_dir``; returns the final eval results."""
    require_extra("train", "accelerate", what="ragqa train-reader")
    import torch
    from transformers import (
        AutoModelForQuestionAnswering,
        AutoTokenizer,
        DataCollatorWithPadding,
        EarlyStoppingCallback,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from rag_qa.models import base_model_path, check_model_dir
    from rag_qa.runtime import trainer_precision_flags
    from rag_qa.training.distributed import ddp_arguments, is_main_process, quiet_other_processes

    quiet_other_processes()
    set_seed(config.seed)
    out_dir = Path(out_dir)
    base = check_model_dir(config.base or base_model_path(), kind="base model")

    examples = read_squad(train_path)
    if eval_path:
        train_examples, eval_all = examples, read_squad(eval_path)
        eval_source = str(eval_path)
    else:
        train_examples, held = split_by_article(examples, config.held_out_percent)
        # Checkpoints are chosen on the tuning half; `ragqa eval-reader --held-out` reports on the test half.
        eval_all = [e for e in held if held_out_role(e.qid) == "tune"]
        eval_source = f"{train_path} articles held out by title hash ({config.held_out_percent}%), tuning half"
        if not eval_all or not train_examples:
            raise InputError(
                f"{train_path}: holding out articles left no training or no validation questions; pass --eval"
            )
    pool = train_examples
    train_examples = choose_training_questions(train_examples, config)
    negatives = answerless_examples(train_examples, config.negatives_per_question, config.seed, pool=pool)
    retrieved = retrieved_answerless_examples(
        train_examples, config.retrieved_negatives_per_question, config.seed + 1, pool=pool
    )
    negatives += retrieved
    eval_examples = eval_all
    if config.eval_examples and len(eval_all) > config.eval_examples:
        eval_examples = random.Random(config.seed + 1).sample(eval_all, config.eval_examples)

    tokenizer = AutoTokenizer.from_pretrained(str(base), use_fast=True, local_files_only=True)
    if not tokenizer.is_fast:
        raise InputError(f"{base} has no fast tokenizer (tokenizer.json): the reader needs offset mappings")
    # Master weights in float32 whatever the base was saved in (the shipped readers are float16);
    # mixed precision, when on, is the Trainer's autocast.
    model = AutoModelForQuestionAnswering.from_pretrained(
        str(base), local_files_only=True, trust_remote_code=False, dtype=torch.float32
    )
    if config.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    teacher = frame = None
    token_types = False
    if config.teacher:
        from rag_qa.reading.reader import _architectures

        if not Path(config.teacher).is_dir():
            raise InputError(f"teacher {config.teacher} does not exist: set teacher to a trained reader's directory")
        teacher_dir = check_model_dir(config.teacher, kind="teacher reader")
        archs = _architectures(teacher_dir)
        if not any(a.endswith("ForQuestionAnswering") for a in archs):
            raise InputError(
                f"teacher {teacher_dir} is a {', '.join(archs) or 'model without a named architecture'}, not a "
                "trained reader: train one with `ragqa train-reader` and give its directory as teacher"
            )
        teacher = AutoModelForQuestionAnswering.from_pretrained(
            str(teacher_dir), local_files_only=True, trust_remote_code=False, dtype=torch.float32
        ).eval()
        teacher.requires_grad_(False)
        teacher_tokenizer = AutoTokenizer.from_pretrained(str(teacher_dir), use_fast=True, local_files_only=True)
        frame = TeacherFrame(tokenizer, teacher_tokenizer)
        sample = next(iter(train_examples), None)
        if sample is not None:
            frame.check(tokenizer, teacher_tokenizer, sample.question, sample.context, config.max_seq_length)
        # batches are padded to a multiple of 8; a two-separator frame adds one token; RoBERTa-style
        # position ids start after the padding id
        longest = -(-config.max_seq_length // 8) * 8 + frame.double_sep
        limit = teacher.config.max_position_embeddings - ((teacher.config.pad_token_id or 0) + 1) * frame.double_sep
        if longest > limit:
            raise InputError(
                f"the teacher reads at most {limit} tokens and max_seq_length {config.max_seq_length} gives it "
                f"{longest}: lower max_seq_length"
            )
        token_types = not frame.double_sep and getattr(teacher.config, "type_vocab_size", 1) > 1
    # The Trainer casts only the student's forward (through accelerate); the teacher reads at the same precision.
    flags = trainer_precision_flags(config.precision)
    teacher_dtype = torch.bfloat16 if flags["bf16"] else torch.float16 if flags["fp16"] else None

    logger.info(
        "tokenising %d training questions, %d answerless paragraphs and %d evaluation questions",
        len(train_examples),
        len(negatives),
        len(eval_examples),
    )
    groups = question_groups(train_examples, negatives) if config.shared_normalization else None
    train_features = prepare_train_features(
        train_examples + negatives, tokenizer, config.max_seq_length, config.doc_stride, groups
    )
    eval_features, sample_map, eval_offsets = prepare_eval_features(
        eval_examples, tokenizer, config.max_seq_length, config.doc_stride
    )
    references = {e.qid: list(e.answer_texts) for e in eval_examples}

    class SquadTrainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            if not config.shared_normalization:
                return super()._get_train_sampler(train_dataset)
            lengths = train_features["attention_mask"].sum(axis=1)
            if not config.group_by_length:  # rows padded to full length: nothing to gain by ordering
                lengths = np.zeros_like(lengths)
            return GroupSampler(train_features["group"], lengths, config.batch_size, config.seed)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not config.shared_normalization and teacher is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            groups = inputs.pop("group", None)
            outputs = model(**inputs)
            loss = outputs.loss
            if config.shared_normalization:
                loss = loss + shared_normalization_loss(
                    outputs.start_logits,
                    outputs.end_logits,
                    inputs["start_positions"],
                    inputs["end_positions"],
                    groups,
                    inputs["attention_mask"],
                )
            if teacher is not None:
                t_ids, t_mask, positions = frame.inputs(inputs["input_ids"], inputs["attention_mask"])
                with (
                    torch.no_grad(),
                    torch.autocast(
                        t_ids.device.type, dtype=teacher_dtype or torch.float32, enabled=teacher_dtype is not None
                    ),
                ):
                    extra = {"token_type_ids": inputs["token_type_ids"]} if token_types else {}
                    taught = teacher(input_ids=t_ids, attention_mask=t_mask, **extra)
                soft = distillation_loss(
                    outputs.start_logits,
                    outputs.end_logits,
                    taught.start_logits.gather(1, positions),
                    taught.end_logits.gather(1, positions),
                    inputs["attention_mask"],
                    config.distill_temperature,
                )
                loss = (1 - config.distill_weight) * loss + config.distill_weight * soft
            return (loss, outputs) if return_outputs else loss

        def _get_eval_sampler(self, eval_dataset):
            # Windows in order, whatever the training sampler: predictions map back by position.
            return torch.utils.data.SequentialSampler(eval_dataset)

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            start = time.perf_counter()
            output = self.predict(_ArrayDataset(eval_features), metric_key_prefix=metric_key_prefix)
            start_logits, end_logits = output.predictions
            predictions = best_answers(
                eval_examples, sample_map, eval_offsets, start_logits, end_logits, config.max_answer_length
            )
            scores = squad_scores(predictions, references)
            metrics = {
                f"{metric_key_prefix}_exact_match": scores["exact_match"],
                f"{metric_key_prefix}_f1": scores["f1"],
                f"{metric_key_prefix}_questions": scores["count"],
                f"{metric_key_prefix}_seconds": time.perf_counter() - start,
            }
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics

    n_features = len(train_features["input_ids"])
    steps_per_epoch = math.ceil(n_features / config.batch_size)
    total = config.max_steps if config.max_steps > 0 else int(steps_per_epoch * config.epochs)
    eval_steps = min(config.eval_steps, max(total, 1))
    args = TrainingArguments(
        output_dir=str(out_dir / "checkpoints"),
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=int(config.warmup_ratio * total),
        lr_scheduler_type="linear",
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=max(config.batch_size, 64),
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        # a run shorter than save_steps saves at its evaluations (eval_steps shrinks to the run too)
        save_steps=config.save_steps if config.save_steps and config.save_steps <= total else eval_steps,
        save_total_limit=3,
        load_best_model_at_end=True,
        metric_for_best_model="eval_f1",
        greater_is_better=True,
        logging_steps=config.logging_steps,
        report_to=[],
        seed=config.seed,
        disable_tqdm=not show_progress,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        optim=config.optimizer,
        # the windows' question numbers reach compute_loss (shared normalisation)
        remove_unused_columns=not config.shared_normalization,
        **flags,
        **ddp_arguments(),
    )
    if teacher is not None:
        teacher.to(args.device)  # once, where the Trainer puts the model
    stop = _StopOnSignal()
    trainer = SquadTrainer(
        model=model,
        args=args,
        train_dataset=_ArrayDataset(train_features, trim=config.group_by_length),
        data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8),
        eval_dataset=_ArrayDataset({"input_ids": eval_features["input_ids"][:1]}),
        processing_class=tokenizer,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience), stop.callback()],
    )
    started = time.perf_counter()
    resume_from = None
    if resume:
        checkpoints = sorted((out_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
        resume_from = str(checkpoints[-1]) if checkpoints else None
        if resume_from is None:
            logger.warning("no checkpoint in %s to resume from; starting afresh", out_dir / "checkpoints")
    with stop.installed():
        trainer.train(resume_from_checkpoint=resume_from)
    train_seconds = time.perf_counter() - started
    if stop.received:
        logger.warning(
            "stopped by signal at step %d; checkpoint saved in %s: continue with --resume",
            trainer.state.global_step,
            out_dir / "checkpoints",
        )
        return {"interrupted": True, "steps": trainer.state.global_step, "checkpoints": str(out_dir / "checkpoints")}
    final = trainer.evaluate()

    model.to(torch.float32)
    trainer.save_model(str(out_dir))  # by the first process only
    results = {
        "exact_match": final["eval_exact_match"],
        "f1": final["eval_f1"],
        "eval_questions": final["eval_questions"],
        "eval_source": eval_source,
        "train_questions": len(train_examples),
        "answerless_paragraphs": len(negatives),
        "retrieved_answerless_paragraphs": len(retrieved),
        "train_windows": n_features,
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "train_seconds": train_seconds,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "config": config.to_dict(),
        "base": str(base),
        "log_history": trainer.state.log_history,
        "processes": args.world_size,
    }
    if is_main_process():
        # The Trainer also pickles its arguments there; a model directory holds no pickle.
        (out_dir / "training_args.bin").unlink(missing_ok=True)
        (out_dir / "eval_results.json").write_text(json.dumps(results, indent=2) + "\n")
        write_model_card(out_dir, results, train_path)
    return results


def write_model_card(out_dir: Path, results: dict[str, Any], train_path: str | Path) -> None:
    import torch
    import transformers

    from rag_qa import __version__

    cfg = results["config"]
    data = (
        f"`{Path(str(train_path)).name}`: {results['train_questions']:,} questions, "
        f"{results['train_windows']:,} windows of {cfg['max_seq_length']} tokens (stride {cfg['doc_stride']})"
    )
    if results.get("answerless_paragraphs"):
        data += f", {results['answerless_paragraphs']:,} answerless paragraphs"
        if results.get("retrieved_answerless_paragraphs"):
            data += f" ({results['retrieved_answerless_paragraphs']:,} of them retrieved by BM25 from other articles)"
    steps = (
        f"{results['steps']:,} ({results['epochs']:.2f} epochs), batch {cfg['batch_size']}, learning rate "
        f"{cfg['learning_rate']}, on {results['device']} in {results['train_seconds'] / 60:.0f} min"
    )
    loss = "start and end cross-entropy per window ([CLS] where the window holds no answer)"
    if cfg.get("shared_normalization"):
        loss += ", plus the same over all the windows of each question at once (shared normalisation)"
    if cfg.get("teacher"):
        loss += (
            f"; distilled from `{Path(cfg['teacher']).name}`: weight {cfg['distill_weight']} on matching its start "
            f"and end scores at temperature {cfg['distill_temperature']}"
        )
    card = f"""# ragqa extractive reader

An extractive question-answering model (`AutoModelForQuestionAnswering`),
fine-tuned with `ragqa train-reader`.

| | |
|---|---|
| base model | `{Path(results["base"]).name}` |
| training data | {data} |
| steps | {steps} |
| loss | {loss} |
| evaluation | {results["eval_source"]}: {results["eval_questions"]:,} questions |
| exact match | {results["exact_match"]:.2f} |
| F1 | {results["f1"]:.2f} |

Versions: ragqa {__version__}, transformers {transformers.__version__}, torch {torch.__version__}.
Load it with `AutoModelForQuestionAnswering.from_pretrained(path)` or as a
ragqa reader.
"""
    (out_dir / "README.md").write_text(card)


def export_reader(src: str | Path, dst: str | Path, dtype: str = "float16") -> Path:
    """Copy a trained reader to ``dst`` with its weights cast to ``dtype``
    (half the size in float16), keeping its reports and fitted settings."""
    import shutil

    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from rag_qa.models import check_model_dir

    src, dst = check_model_dir(src, kind="reader"), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    model = AutoModelForQuestionAnswering.from_pretrained(str(src), local_files_only=True, dtype=getattr(torch, dtype))
    model.save_pretrained(str(dst))
    AutoTokenizer.from_pretrained(str(src), local_files_only=True).save_pretrained(str(dst))
    for name in ("README.md", "eval_results.json", "ragqa_reader.json", "calibration.json"):
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    return dst
