"""Which runtime, device and precision run a model.

Runtimes: ``torch``; ``onnx`` (float32, the same numbers as torch float32 to
about 1e-5); ``onnx-int8`` (weights quantized to int8 on export: faster and
smaller, at a small loss of accuracy that ``bench/reader_speed.py``
measures); ``auto``: ``onnx`` on a CPU-only machine with onnxruntime
installed, else ``torch``. Nothing here imports torch unless a device must
be chosen with it.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from rag_qa.choices import RUNTIMES
from rag_qa.errors import InputError


def onnxruntime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def _has_nvidia_gpu() -> bool:
    # Cheap: asking torch would import it, which is what the ONNX path avoids.
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def resolve_runtime(runtime: str | None, device: str | None = None, precision: str = "auto") -> str:
    """``torch``, ``onnx`` or ``onnx-int8`` for a requested runtime, device and precision.

    ``auto`` picks ONNX Runtime (float32) on a machine without an NVIDIA GPU
    when onnxruntime is installed and no torch precision was asked for.
    """
    runtime = runtime or "auto"
    if runtime not in RUNTIMES:
        raise InputError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    on_cpu = device in (None, "cpu")
    if runtime == "auto":
        return (
            "onnx" if on_cpu and precision == "auto" and onnxruntime_installed() and not _has_nvidia_gpu() else "torch"
        )
    if runtime.startswith("onnx"):
        if not on_cpu:
            raise InputError(
                f"the {runtime} runtime runs on the CPU only, not on device {device!r}: use runtime torch there"
            )
        if not onnxruntime_installed():
            raise InputError(
                f"the {runtime} runtime needs onnxruntime: `pip install onnxruntime`, or use runtime torch"
            )
    return runtime


def serving_reader_runtime(runtime: str | None) -> str | None:
    """The reader's runtime in a long-running process (``ragqa serve``) asked for ``runtime``.

    As asked, except that no choice (None) on a CPU-only machine whose CPU
    multiplies bfloat16 in hardware picks ``torch``: once loaded it reads
    faster there than ONNX Runtime's float32 (``bench/serve_load.py``); what
    ONNX Runtime saves is the start-up, which a service pays once. An explicit
    ``auto`` means what it means everywhere else (``resolve_runtime``).
    """
    if runtime is not None:
        return runtime
    if cpu_has_native_bf16() and not _has_nvidia_gpu() and importlib.util.find_spec("torch") is not None:
        return "torch"
    return runtime


def resolve_device(requested: str | None) -> str:
    if requested:
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_has_native_bf16() -> bool:
    """True on CPUs that multiply bfloat16 in hardware (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve_precision(precision: str, device: str) -> str:
    """The dtype name to run the encoder in (see ``DenseConfig.precision``)."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "float16"
    if device == "cpu" and cpu_has_native_bf16():
        return "bfloat16"
    return "float32"


def trainer_precision_flags(precision: str) -> dict[str, bool]:
    """The Trainer's ``bf16``/``fp16`` flags for a training precision
    (``auto``: bf16 or fp16 on CUDA, bf16 on CPUs with native bf16, else fp32)."""
    import torch

    if precision == "auto":
        if torch.cuda.is_available():
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if cpu_has_native_bf16() else "fp32"
    return {"bf16": precision in ("bf16", "bfloat16"), "fp16": precision in ("fp16", "float16")}
