"""Typed configuration: pydantic models that ``configs/*.yaml`` map onto key
for key. A wrong key or a value of the wrong type is a one-line error that
names the key; numbers written as strings in YAML (``2e-5``) are read as
numbers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rag_qa.choices import SUPPORTED_EXTENSIONS as _FILE_TYPES
from rag_qa.choices import FusionMethod, Precision, Runtime, Stopwords
from rag_qa.errors import InputError

__all__ = [
    "BACKENDS",
    "BM25Config",
    "ChunkingConfig",
    "Config",
    "DenseConfig",
    "FusionConfig",
    "IndexConfig",
    "MilvusConfig",
    "SUPPORTED_EXTENSIONS",
    "load_yaml_config",
]

C = TypeVar("C", bound="Config")

# The extensions ragqa reads: the fixed file types, and reStructuredText read as
# plain text. Besides these, files without an extension that hold text are read,
# and any of these compressed as ``.gz`` (``notes.md.gz``) is read as what it holds.
SUPPORTED_EXTENSIONS: tuple[str, ...] = _FILE_TYPES

# Where an index keeps passages, BM25 and vectors: ragqa's own files, or a Milvus collection.
Backend = Literal["builtin", "milvus"]
BACKENDS: tuple[str, ...] = get_args(Backend)


def describe_validation_error(exc: ValidationError, where: str, model: type[BaseModel] | None = None) -> str:
    """One line: unknown keys with the known ones, and each bad value with what is wrong with it."""
    unknown: dict[tuple, list[str]] = {}
    problems = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            unknown.setdefault(loc[:-1], []).append(loc[-1])
        else:
            problems.append(f"{'.'.join(loc) or 'value'}: {error['msg'].rstrip('.')} (got {error.get('input')!r})")
    for parent, keys in unknown.items():
        known = _fields_at(model, parent)
        hint = f"; known keys: {', '.join(known)}" if known else ""
        prefix = f"{'.'.join(parent)}: " if parent else ""
        problems.insert(0, f"{prefix}unknown key(s) {', '.join(sorted(keys))}{hint}")
    return f"{where}: " + "; ".join(problems)


def _fields_at(model: type[BaseModel] | None, path: tuple) -> list[str]:
    for name in path:
        field = model.model_fields.get(name) if model is not None else None
        model = (
            field.annotation
            if field is not None and isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
            else None
        )
    return list(model.model_fields) if model is not None else []


class Config(BaseModel):
    """Base of every ragqa config: frozen, unknown keys refused, checked on
    creation (pydantic's ValidationError from the constructor; a one-line
    :class:`InputError` naming the key from :meth:`from_dict` and :meth:`from_yaml`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any], where: str = "config") -> C:
        if not isinstance(data, Mapping):
            raise InputError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise InputError(describe_validation_error(exc, where, cls)) from None

    @classmethod
    def from_yaml(cls: type[C], path: str | Path) -> C:
        return load_yaml_config(cls, path)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def replace(self: C, **changes: Any) -> C:
        """A copy with fields changed; a mapping given for a nested config
        changes only its keys, e.g. ``replace(dense={"encoder": path})``."""
        merged = self.to_dict()
        for key, value in changes.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            elif isinstance(value, BaseModel):
                merged[key] = value.model_dump()
            else:
                merged[key] = value
        return type(self).from_dict(merged, where=type(self).__name__)


class ChunkingConfig(Config):
    """How documents are cut into passages (sizes in words).

    100 words (about 130 word pieces) is the passage size DPR used, and fits
    the 128-token sequences the default encoder was trained on.
    """

    size: int = 100
    overlap: int = 20

    @model_validator(mode="after")
    def _check(self) -> "ChunkingConfig":
        if self.size < 8:
            raise InputError(f"chunking.size must be at least 8 words, got {self.size}")
        if not 0 <= self.overlap < self.size:
            raise InputError(f"chunking.overlap must be in [0, size), got {self.overlap} with size {self.size}")
        return self


class BM25Config(Config):
    """BM25Okapi parameters (the same as rank-bm25's) and the tokenizer."""

    k1: float = 1.5
    b: float = 0.75
    epsilon: float = 0.25
    stopwords: Stopwords = "en"


class DenseConfig(Config):
    """The encoder and the FAISS index."""

    encoder: Optional[str] = None  # a local sentence-transformers directory; None = bundled default
    batch_size: int = Field(16, ge=1)
    # "auto": float16 on CUDA, bfloat16 on CPUs with native bf16 (AVX512-BF16
    # or AMX), else float32. Or one of "float32", "bfloat16", "float16".
    precision: Precision = "auto"
    # "torch", "onnx", "onnx-int8", or "auto": ONNX Runtime on a CPU-only
    # machine with onnxruntime installed (when precision is "auto"), else torch.
    runtime: Runtime = "auto"
    # Below this many passages the index is exact inner product ("Flat");
    # above it, ``faiss_factory`` builds an approximate one.
    exact_threshold: int = 50_000
    faiss_factory: str = "HNSW32,Flat"
    hnsw_ef_search: int = 128
    ivf_nprobe: int = 16
    device: Optional[str] = None  # None = CUDA when available, else CPU


class FusionConfig(Config):
    """How BM25 and dense rankings are combined in ``hybrid`` mode."""

    # Chosen with `ragqa tune-fusion` on held-out SQuAD and SciFact questions
    # (see docs/fine-tuning.md): min-max normalised scores, equal weights.
    method: FusionMethod = "weighted"
    rrf_k: int = 60
    bm25_weight: float = 0.5
    dense_weight: float = 0.5
    # Each retriever contributes this many candidates (at least k) to fusion.
    candidates: int = Field(100, ge=1)


class MilvusConfig(Config):
    """Where a ``backend: milvus`` index lives, and how its collection is indexed.

    ``uri`` is a Milvus Lite file (a local path; the default is
    ``milvus.db`` in the index folder) or a server (``http://host:19530``).
    The token is never stored: ``token_env`` names the environment variable
    that holds it.
    """

    uri: Optional[str] = None
    token_env: Optional[str] = None
    # The alias readers search; None = "ragqa_" + the index folder's name + a hash of its path.
    collection: Optional[str] = None
    index_type: Literal["HNSW", "IVF_FLAT", "FLAT"] = "HNSW"
    hnsw_m: int = Field(16, ge=2)
    hnsw_ef_construction: int = Field(200, ge=8)
    ivf_nlist: int = Field(1024, ge=1)  # hnsw_ef_search and ivf_nprobe are dense's
    timeout: float = Field(30.0, gt=0)  # seconds for one call to the server
    # hybrid mode: "milvus" fuses in Milvus (hybrid_search: RRFRanker, or WeightedRanker, which scales
    # scores by arctan, not min-max); "ragqa" runs both searches and fuses them as the built-in backend does.
    hybrid_fusion: Literal["milvus", "ragqa"] = "milvus"

    @model_validator(mode="after")
    def _check(self) -> "MilvusConfig":
        if self.token_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.token_env):
            raise InputError(
                f"milvus.token_env must name an environment variable (letters, digits, _), got {self.token_env!r}"
            )
        if self.collection is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", self.collection):
            raise InputError(
                "milvus.collection must start with a letter or _ and hold only letters, digits and _, "
                f"got {self.collection!r}"
            )
        return self


class IndexConfig(Config):
    """Everything that decides how an index is built and searched."""

    # Where passages, BM25 and vectors live: ragqa's own files, or a Milvus collection.
    backend: Backend = "builtin"
    milvus: MilvusConfig = Field(default_factory=MilvusConfig)

    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    bm25: BM25Config = Field(default_factory=BM25Config)
    dense: DenseConfig = Field(default_factory=DenseConfig)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    include_title: bool = True
    max_file_mb: float = 64.0
    # HTML and PDF are parsed in a child process with these bounds; a file past them is skipped with a warning.
    parse_seconds: float = Field(60.0, gt=0)
    parse_memory_mb: int = Field(2048, ge=64)
    max_pages: int = Field(5000, ge=1)  # PDF pages read from one file
    max_chars: int = Field(5_000_000, ge=1000)  # HTML, PDF, JSONL: characters kept from one file or record
    skip_hidden: bool = True
    follow_links: bool = False  # read links to files outside the indexed folders


def load_yaml_config(cls: type[C], path: str | Path) -> C:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {path} does not exist: pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"config file {path} is not valid YAML: {exc}".replace("\n", " ")) from exc
    return cls.from_dict(data, where=str(path))
