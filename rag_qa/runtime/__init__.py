"""What runs the models: choosing a runtime, device and precision
(:mod:`.select`), the ONNX export and its cache (:mod:`.onnx`), and
tokenizing without transformers (:mod:`.tokenizer`)."""

from rag_qa.runtime.onnx import OnnxModel, cache_dir, onnx_file
from rag_qa.runtime.select import (
    RUNTIMES,
    cpu_has_native_bf16,
    onnxruntime_installed,
    resolve_device,
    resolve_precision,
    resolve_runtime,
    serving_reader_runtime,
    trainer_precision_flags,
)
from rag_qa.runtime.tokenizer import FastTokenizer, Windows

__all__ = [
    "FastTokenizer",
    "OnnxModel",
    "RUNTIMES",
    "Windows",
    "cache_dir",
    "cpu_has_native_bf16",
    "onnx_file",
    "onnxruntime_installed",
    "resolve_device",
    "resolve_precision",
    "resolve_runtime",
    "serving_reader_runtime",
    "trainer_precision_flags",
]
