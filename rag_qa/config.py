"""Configuration dataclasses; ``configs/*.yaml`` map onto them field for field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, TypeVar

from rag_qa.errors import InputError

T = TypeVar("T")

SUPPORTED_EXTENSIONS = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl")


@dataclass(frozen=True)
class ChunkingConfig:
    """How documents are cut into passages (sizes in words).

    100 words (about 130 word pieces) is the passage size DPR used, and fits
    the 128-token sequences the default encoder was trained on.
    """

    size: int = 100
    overlap: int = 20

    def validate(self) -> None:
        if self.size < 8:
            raise InputError(f"chunking.size must be at least 8 words, got {self.size}")
        if not 0 <= self.overlap < self.size:
            raise InputError(
                f"chunking.overlap must be in [0, size), got {self.overlap} with size {self.size}"
            )


@dataclass(frozen=True)
class BM25Config:
    """BM25Okapi parameters (the same as rank-bm25's) and the tokenizer."""

    k1: float = 1.5
    b: float = 0.75
    epsilon: float = 0.25
    stopwords: str = "en"  # "en" or "none"


@dataclass(frozen=True)
class DenseConfig:
    """The encoder and the FAISS index."""

    encoder: str | None = None  # a local sentence-transformers directory; None = bundled default
    batch_size: int = 16
    # "auto": float16 on CUDA, bfloat16 on CPUs with native bf16 (AVX512-BF16
    # or AMX), else float32. Or one of "float32", "bfloat16", "float16".
    precision: str = "auto"
    # "torch", "onnx", "onnx-int8", or "auto": ONNX Runtime on a CPU-only
    # machine with onnxruntime installed (when precision is "auto"), else torch.
    runtime: str = "auto"
    # Below this many passages the index is exact inner product ("Flat");
    # above it, ``faiss_factory`` builds an approximate one.
    exact_threshold: int = 50_000
    faiss_factory: str = "HNSW32,Flat"
    hnsw_ef_search: int = 128
    ivf_nprobe: int = 16
    device: str | None = None  # None = CUDA when available, else CPU


@dataclass(frozen=True)
class FusionConfig:
    """How BM25 and dense rankings are combined in ``hybrid`` mode."""

    # Chosen with `ragqa tune-fusion` on held-out SQuAD and SciFact questions
    # (see docs/fine-tuning.md): min-max normalised scores, equal weights.
    method: str = "weighted"  # "weighted" or "rrf"
    rrf_k: int = 60
    bm25_weight: float = 0.5
    dense_weight: float = 0.5
    # Each retriever contributes this many candidates (at least k) to fusion.
    candidates: int = 100

    def validate(self) -> None:
        if self.method not in ("rrf", "weighted"):
            raise InputError(f"fusion.method must be 'rrf' or 'weighted', got {self.method!r}")


@dataclass(frozen=True)
class IndexConfig:
    """Everything that decides how an index is built and searched."""

    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    bm25: BM25Config = field(default_factory=BM25Config)
    dense: DenseConfig = field(default_factory=DenseConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    include_title: bool = True
    max_file_mb: float = 64.0
    skip_hidden: bool = True

    def validate(self) -> "IndexConfig":
        self.chunking.validate()
        self.fusion.validate()
        if self.dense.precision not in ("auto", "float32", "bfloat16", "float16"):
            raise InputError(f"dense.precision must be auto, float32, bfloat16 or float16, got {self.dense.precision!r}")
        from rag_qa.runtime import RUNTIMES

        if self.dense.runtime not in RUNTIMES:
            raise InputError(f"dense.runtime must be one of {', '.join(RUNTIMES)}, got {self.dense.runtime!r}")
        if self.bm25.stopwords not in ("en", "none"):
            raise InputError(f"bm25.stopwords must be 'en' or 'none', got {self.bm25.stopwords!r}")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> "IndexConfig":
        return load_yaml_config(cls, path)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "IndexConfig":
        return from_dict(cls, data, where="config").validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "IndexConfig":
        """Return a copy with nested fields changed, e.g. ``dense={"encoder": p}``."""
        merged = self.to_dict()
        for key, value in changes.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        return IndexConfig.from_dict(merged)


def from_dict(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    """Build a (nested) dataclass from a mapping, refusing unknown keys."""
    if not isinstance(data, Mapping):
        raise InputError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(fields)}"
        )
    kwargs = {}
    for name, value in data.items():
        default = fields[name].default_factory if fields[name].default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        nested = default() if default is not None else None
        if dataclasses.is_dataclass(nested) and value is not None:
            kwargs[name] = from_dict(type(nested), value, where=f"{where}.{name}")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def load_yaml_config(cls: type[T], path: str | Path) -> T:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {path} does not exist: pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"config file {path} is not valid YAML: {exc}".replace("\n", " ")) from exc
    obj = from_dict(cls, data, where=str(path))
    validate = getattr(obj, "validate", None)
    return validate() if callable(validate) else obj
