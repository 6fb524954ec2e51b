"""ONNX Runtime for the encoder and the reader on CPU.

Answering a question this way never imports torch or transformers, whose
imports alone take seconds and dominated the start-up of ``ragqa ask``. Each
model directory's safetensors weights are exported to ONNX once (that step
uses torch) and cached under ``$RAGQA_CACHE_DIR`` (default
``~/.cache/ragqa``), keyed by the weights' sha256, so a retrained model gets
a fresh export and a stale one is never used.

Runtimes: ``torch``; ``onnx`` (float32, the same numbers as torch float32 to
about 1e-5); ``onnx-int8`` (weights quantized to int8 on export: faster and
smaller, at a small loss of accuracy that ``bench/reader_speed.py``
measures); ``auto``: ``onnx`` on a CPU-only machine with onnxruntime
installed, else ``torch``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from rag_qa.errors import InputError, ModelError

logger = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnx", "onnx-int8")
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def cache_dir() -> Path:
    """Where exported models are kept: ``$RAGQA_CACHE_DIR``, else ``$XDG_CACHE_HOME/ragqa``, else ``~/.cache/ragqa``."""
    if os.environ.get("RAGQA_CACHE_DIR"):
        return Path(os.environ["RAGQA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ragqa"


def onnxruntime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def _has_nvidia_gpu() -> bool:
    # Cheap: asking torch would import it, which is what this module avoids.
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
        return "onnx" if on_cpu and precision == "auto" and onnxruntime_installed() and not _has_nvidia_gpu() else "torch"
    if runtime.startswith("onnx"):
        if not on_cpu:
            raise InputError(f"the {runtime} runtime runs on the CPU only, not on device {device!r}: use runtime torch there")
        if not onnxruntime_installed():
            raise InputError(f"the {runtime} runtime needs onnxruntime: `pip install onnxruntime`, or use runtime torch")
    return runtime


# ---------------------------------------------------------------------- export
def _export(model_dir: Path, kind: str, out: Path) -> None:
    """Export a reader (start/end logits) or an encoder (last hidden state) to ONNX in float32."""
    import torch
    from transformers import AutoModel, AutoModelForQuestionAnswering

    cls = AutoModelForQuestionAnswering if kind == "reader" else AutoModel
    try:
        model = cls.from_pretrained(
            str(model_dir), local_files_only=True, trust_remote_code=False, use_safetensors=True, dtype=torch.float32, attn_implementation="eager"
        ).eval()
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{kind} directory {model_dir} could not be loaded: {exc}".replace("\n", " ")) from exc
    import inspect

    names = [n for n in INPUT_NAMES if n in inspect.signature(model.forward).parameters]
    outputs = ["start_logits", "end_logits"] if kind == "reader" else ["last_hidden_state"]

    class Graph(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            result = self.inner(**dict(zip(names, args)))
            return tuple(getattr(result, o) for o in outputs)

    example = torch.full((2, 16), 100, dtype=torch.long)
    args = tuple(torch.zeros_like(example) if n == "token_type_ids" else (torch.ones_like(example) if n == "attention_mask" else example) for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names + outputs}
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about Python conditions on shapes; checked by the tests
        torch.onnx.export(Graph(model), args, str(out), input_names=names, output_names=outputs, dynamic_axes=axes, opset_version=17, dynamo=False)


def _quantize(src: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # it advises a pre-processing step on the root logger
    try:
        quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)


def onnx_file(model_dir: str | Path, kind: str, sha256: str, quantized: bool = False) -> Path:
    """The cached ONNX export of ``model_dir``, exported (and quantized) now if missing."""
    folder = cache_dir() / "onnx" / f"{kind}-{sha256[:20]}"
    target = folder / ("model.int8.onnx" if quantized else "model.onnx")
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot write the ONNX cache at {folder} ({exc.strerror}): set RAGQA_CACHE_DIR to a writable folder or use runtime torch") from exc
    from filelock import FileLock

    with FileLock(str(folder / ".lock")):
        if target.is_file():  # another process exported it while we waited
            return target
        plain = folder / "model.onnx"
        if not plain.is_file():
            logger.info("exporting %s %s to ONNX (once; cached in %s)", kind, model_dir, folder)
            tmp = folder / f".model.onnx.{os.getpid()}"
            try:
                _export(Path(model_dir), kind, tmp)
                os.replace(tmp, plain)
            finally:
                tmp.unlink(missing_ok=True)
        if quantized:
            tmp = folder / f".model.int8.onnx.{os.getpid()}"
            try:
                _quantize(plain, tmp)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        (folder / "source.json").write_text(json.dumps({"model": str(Path(model_dir).resolve()), "kind": kind, "sha256": sha256}), encoding="utf-8")
    return target


class OnnxModel:
    """An ONNX Runtime session over a cached export of a model directory."""

    def __init__(self, model_dir: str | Path, kind: str, sha256: str, quantized: bool = False, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        path = onnx_file(model_dir, kind, sha256, quantized)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            # A damaged cache file (a disk error, a killed copy): export it again, once.
            logger.warning("cached ONNX model %s could not be loaded (%s); exporting it again", path, str(exc).splitlines()[0])
            shutil.rmtree(path.parent, ignore_errors=True)
            path = onnx_file(model_dir, kind, sha256, quantized)
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def run(self, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, {name: np.ascontiguousarray(arrays[name], dtype=np.int64) for name in self.inputs})


# ------------------------------------------------------------------- tokenizing
class Windows:
    """Tokenized (question, context) windows: model inputs plus what maps tokens back to characters."""

    def __init__(self, arrays: dict[str, np.ndarray], sample_map: list[int], offsets: list[list[tuple[int, int]]], sequence_ids: list[list[int | None]]):
        self.arrays = arrays
        self.sample_map = sample_map
        self.offsets = offsets
        self.sequence_ids = sequence_ids

    def __len__(self) -> int:
        return len(self.sample_map)


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
            raise ModelError(f"{kind} directory {model_dir} has no tokenizer.json (a fast tokenizer), which ragqa needs")
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

    def texts(self, texts: Sequence[str], max_length: int) -> dict[str, np.ndarray]:
        """Single texts, truncated to ``max_length`` tokens, padded to the longest."""
        self.tokenizer.enable_truncation(max_length)
        return self._arrays(self.tokenizer.encode_batch(list(texts)))

    def windows(self, questions: Sequence[str], contexts: Sequence[str], max_length: int, stride: int) -> Windows:
        """(question, context) pairs cut into windows of ``max_length`` tokens
        overlapping by ``stride``; only the context is cut."""
        self.tokenizer.enable_truncation(max_length, stride=stride, strategy="only_second")
        try:
            encoded = self.tokenizer.encode_batch(list(zip(questions, contexts)))
        except Exception as exc:  # noqa: BLE001 - raised when the question alone fills the window
            raise InputError(f"the question is too long to read with a passage in {max_length} tokens: shorten it ({str(exc).splitlines()[0]})") from exc
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


__all__ = ["FastTokenizer", "OnnxModel", "RUNTIMES", "Windows", "cache_dir", "onnx_file", "resolve_runtime"]
