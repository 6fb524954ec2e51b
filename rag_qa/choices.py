"""The fixed choices of ragqa's options, defined once: the CLI, the configs
and the library all take them from here. A leaf module with no imports, so
``ragqa --help`` can list them without importing anything heavy."""

from __future__ import annotations

from typing import Literal, get_args

Runtime = Literal["auto", "torch", "onnx", "onnx-int8"]
Mode = Literal["bm25", "dense", "hybrid"]
Precision = Literal["auto", "float32", "bfloat16", "float16"]
TrainPrecision = Literal["auto", "fp32", "bf16", "fp16", "float32", "bfloat16", "float16"]
FusionMethod = Literal["weighted", "rrf"]
Stopwords = Literal["en", "none"]

RUNTIMES: tuple[str, ...] = get_args(Runtime)
MODES: tuple[str, ...] = get_args(Mode)
PRECISIONS: tuple[str, ...] = get_args(Precision)
FUSION_METHODS: tuple[str, ...] = get_args(FusionMethod)

SUPPORTED_EXTENSIONS = (".txt", ".md", ".markdown", ".rst", ".html", ".htm", ".pdf", ".jsonl")
