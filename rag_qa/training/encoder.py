"""``ragqa train-encoder``: fine-tune the dense encoder with in-batch and BM25 hard negatives.

The sentence-transformers Trainer runs MultipleNegativesRankingLoss with a
no-duplicates batch sampler; an information-retrieval evaluator scores
nDCG@10 on held-out queries at each evaluation, and the best checkpoint is
kept. The output is a plain sentence-transformers directory.
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import Any, Optional

from pydantic import model_validator

from rag_qa.choices import TrainPrecision
from rag_qa.config import Config
from rag_qa.data import held_out_role
from rag_qa.errors import InputError, require_extra
from rag_qa.training.pairs import PairSet, load_pairs, mine_hard_negatives

logger = logging.getLogger(__name__)


class EncoderTrainConfig(Config):
    """Settings of ``ragqa train-encoder`` (``configs/train_encoder.yaml``)."""

    base: Optional[str] = None  # local sentence-transformers directory; None = bundled all-MiniLM-L6-v2
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_seq_length: int = 256
    hard_negatives: int = 1  # BM25 negatives per query (0 = in-batch negatives only)
    hard_negative_skip: int = 0  # skip this many top BM25 hits before taking negatives
    max_train_pairs: Optional[int] = None
    eval_fraction: float = 0.2  # BEIR / JSONL: share of queries held out for evaluation
    held_out_percent: int = 5  # SQuAD: articles held out by title hash
    max_eval_queries: Optional[int] = 500
    eval_steps: int = 100
    lora: bool = False  # train LoRA adapters (peft) instead of all weights
    lora_r: int = 16
    precision: TrainPrecision = "auto"
    seed: int = 42

    @model_validator(mode="after")
    def _check(self) -> "EncoderTrainConfig":
        if self.batch_size < 2:
            raise InputError("batch_size must be at least 2: in-batch negatives need company")
        return self


def _evaluator(pairs: PairSet, max_queries: int | None, seed: int):
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    # Checkpoints are chosen on the tuning half; `ragqa eval --held-out` reports on the test half.
    qids = sorted(q for q in pairs.eval_queries if held_out_role(q) == "tune") or sorted(pairs.eval_queries)
    if max_queries and len(qids) > max_queries:
        qids = sorted(random.Random(seed).sample(qids, max_queries))
    return InformationRetrievalEvaluator(
        queries={q: pairs.eval_queries[q] for q in qids},
        corpus=pairs.corpus if pairs.eval_corpus is None else {d: pairs.corpus[d] for d in pairs.eval_corpus},
        relevant_docs={q: pairs.eval_qrels[q] for q in qids},
        name="heldout",
        ndcg_at_k=[10],
        mrr_at_k=[10],
        accuracy_at_k=[1, 5, 20],
        precision_recall_at_k=[5, 20],
        map_at_k=[10],
        show_progress_bar=False,
        batch_size=64,
    )


def train_encoder(
    train_source: str | Path,
    out_dir: str | Path,
    config: EncoderTrainConfig = EncoderTrainConfig(),
    show_progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune an encoder on pairs from ``train_source`` and save it to ``out_dir``."""
    require_extra("train", "accelerate", "datasets", what="ragqa train-encoder")
    import torch
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from transformers import EarlyStoppingCallback

    from rag_qa.models import base_model_path, check_model_dir
    from rag_qa.runtime import trainer_precision_flags
    from rag_qa.training.distributed import ddp_arguments, is_main_process, quiet_other_processes, world_size

    quiet_other_processes()
    out_dir = Path(out_dir)
    base = check_model_dir(config.base or base_model_path(), kind="encoder")
    # The split seed is fixed so that `ragqa eval --held-out` scores exactly these queries.
    pairs = load_pairs(
        train_source, held_out_percent=config.held_out_percent, eval_fraction=config.eval_fraction, seed=0
    )
    rng = random.Random(config.seed)
    if config.max_train_pairs and len(pairs.train) > config.max_train_pairs:
        pairs.train = rng.sample(pairs.train, config.max_train_pairs)
    if not pairs.train:
        raise InputError(f"{train_source} gave no training pairs")
    mine_hard_negatives(pairs, per_query=config.hard_negatives, skip_top=config.hard_negative_skip, seed=config.seed)
    columns: dict[str, list[str]] = {
        "anchor": [q for q, _, _ in pairs.train],
        "positive": [pairs.corpus[p] for _, p, _ in pairs.train],
    }
    for j in range(config.hard_negatives):
        columns[f"negative_{j}"] = [
            pairs.corpus[n[j]] if j < len(n) else pairs.corpus[rng.choice(list(pairs.corpus))]
            for _, _, n in pairs.train
        ]
    dataset = Dataset.from_dict(columns)

    model = SentenceTransformer(
        str(base), device="cuda" if torch.cuda.is_available() else "cpu", local_files_only=True, trust_remote_code=False
    )
    model.max_seq_length = config.max_seq_length
    if config.lora:
        try:
            from peft import LoraConfig, TaskType
        except ImportError as exc:
            raise InputError("lora: true needs peft: pip install 'ragqa[lora]'") from exc
        model.add_adapter(
            LoraConfig(
                task_type=TaskType.FEATURE_EXTRACTION, r=config.lora_r, lora_alpha=2 * config.lora_r, lora_dropout=0.1
            )
        )

    evaluator = _evaluator(pairs, config.max_eval_queries, config.seed) if pairs.eval_queries else None
    before = evaluator(model) if evaluator else {}
    metric = "eval_heldout_cosine_ndcg@10"
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out_dir / "checkpoints"),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=int(config.warmup_ratio * max(1, len(dataset) // config.batch_size * config.epochs)),
        weight_decay=config.weight_decay,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        eval_strategy="steps" if evaluator else "no",
        eval_steps=config.eval_steps,
        save_strategy="steps" if evaluator else "no",
        save_steps=config.eval_steps,
        save_total_limit=2,
        load_best_model_at_end=evaluator is not None,
        metric_for_best_model=metric if evaluator else None,
        greater_is_better=True,
        logging_steps=max(1, config.eval_steps // 4),
        report_to=[],
        seed=config.seed,
        disable_tqdm=not show_progress,
        use_cpu=not torch.cuda.is_available(),
        **trainer_precision_flags(config.precision),
        **ddp_arguments(unused_parameters=True),
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=ranking_loss(model, world_size()),
        evaluator=evaluator,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=3)] if evaluator else [],
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    if config.lora:
        model = _merge_lora(model)
    after = evaluator(model) if evaluator else {}
    results = {
        "train_source": str(train_source),
        "train_pairs": len(pairs.train),
        "eval_queries": len(evaluator.queries) if evaluator else 0,
        "before": {k: float(v) for k, v in before.items()},
        "after": {k: float(v) for k, v in after.items()},
        "steps": trainer.state.global_step,
        "train_seconds": seconds,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "config": config.to_dict(),
        "base": str(base),
        "processes": world_size(),
    }
    if is_main_process():
        model.save(str(out_dir))
        (out_dir / "training_args.bin").unlink(missing_ok=True)
        (out_dir / "eval_results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def ranking_loss(model, processes: int = 1):
    """MultipleNegativesRankingLoss; with several processes, each question is scored against the
    passages of every process's share of the batch (gathered, with their gradients), so the
    in-batch negatives are those of the whole batch, as in one process."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(model, gather_across_devices=processes > 1)


def _merge_lora(model):
    """Fold LoRA adapters into the base weights so the saved model needs no peft."""
    transformer = model[0]
    inner = getattr(transformer, "auto_model", None) or getattr(transformer, "model", None)
    if inner is not None and hasattr(inner, "merge_and_unload"):
        merged = inner.merge_and_unload()
        if hasattr(transformer, "auto_model"):
            transformer.auto_model = merged
        else:
            transformer.model = merged
    return model


def export_encoder(src: str | Path, dst: str | Path, dtype: str = "float16") -> Path:
    """Copy a trained sentence-transformers directory with its weights cast to
    ``dtype`` (half the size in float16), leaving checkpoints behind."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from rag_qa.models import check_model_dir

    src, dst = check_model_dir(src, kind="encoder"), Path(dst)
    shutil.copytree(
        src,
        dst,
        ignore=shutil.ignore_patterns("checkpoints", "eval", "trainer_state.json", "*.pt", "*.pth", "*.bin"),
        dirs_exist_ok=True,
    )
    for weights in src.rglob("*.safetensors"):
        if "checkpoints" in weights.relative_to(src).parts:
            continue
        tensors = {
            k: v.to(getattr(torch, dtype)) if v.is_floating_point() else v for k, v in load_file(str(weights)).items()
        }
        save_file(tensors, str(dst / weights.relative_to(src)), metadata={"format": "pt"})
    return dst
