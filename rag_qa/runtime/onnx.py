"""ONNX Runtime for the encoder and the reader on CPU: the export and its cache.

Answering a question this way never imports torch or transformers, whose
imports alone take seconds and dominated the start-up of ``ragqa ask``. Each
model directory's safetensors weights are exported to ONNX once (that step
uses torch) and cached under ``$RAGQA_CACHE_DIR`` (default
``~/.cache/ragqa``), keyed by the weights' sha256, so a retrained model gets
a fresh export and a stale one is never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from rag_qa.errors import ModelError

logger = logging.getLogger(__name__)

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def cache_dir() -> Path:
    """Where exported models are kept: ``$RAGQA_CACHE_DIR``, else ``$XDG_CACHE_HOME/ragqa``, else ``~/.cache/ragqa``."""
    if os.environ.get("RAGQA_CACHE_DIR"):
        return Path(os.environ["RAGQA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ragqa"


def _export(model_dir: Path, kind: str, out: Path) -> None:
    """Export a reader (start/end logits) or an encoder (last hidden state) to ONNX in float32."""
    import torch
    from transformers import AutoModel, AutoModelForQuestionAnswering

    cls = AutoModelForQuestionAnswering if kind == "reader" else AutoModel
    try:
        model = cls.from_pretrained(
            str(model_dir),
            local_files_only=True,
            trust_remote_code=False,
            use_safetensors=True,
            dtype=torch.float32,
            attn_implementation="eager",
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
    args = tuple(
        torch.zeros_like(example)
        if n == "token_type_ids"
        else (torch.ones_like(example) if n == "attention_mask" else example)
        for n in names
    )
    axes = {n: {0: "batch", 1: "sequence"} for n in names + outputs}
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about Python conditions on shapes; checked by the tests
        torch.onnx.export(
            Graph(model),
            args,
            str(out),
            input_names=names,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def _quantize(src: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # it advises a pre-processing step on the root logger
    try:
        quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)


SOURCE = "source.json"  # in each export's folder: the model it came from and the sha256 of each file


def _private_folder(folder: Path) -> None:
    """Create ``folder`` (0700) if needed, and refuse one that another user owns or may write."""
    try:
        # every missing level 0700: `mkdir(parents=True)` would make the parents by the umask (0775 under 002)
        for level in reversed([folder, *folder.parents]):
            if not level.exists():
                level.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ModelError(
            f"cannot write the ONNX cache at {folder} ({exc.strerror}): set RAGQA_CACHE_DIR to a writable folder or "
            "use runtime torch"
        ) from exc
    for path in (folder, folder.parent):
        info = path.lstat()
        if hasattr(os, "geteuid") and (info.st_uid != os.geteuid() or info.st_mode & 0o022 or path.is_symlink()):
            raise ModelError(
                f"the ONNX cache folder {path} is a link, owned by another user or writable by others: "
                "set RAGQA_CACHE_DIR to a folder of your own"
            )


def _recorded(folder: Path) -> dict:
    try:
        data = json.loads((folder / SOURCE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_private(folder: Path, name: str, write) -> None:
    """Write ``folder/name`` through a fresh temporary file (never through a link), then rename it."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, folder / name)
    finally:
        Path(tmp).unlink(missing_ok=True)


def onnx_file(model_dir: str | Path, kind: str, sha256: str, quantized: bool = False) -> Path:
    """The cached ONNX export of ``model_dir``, exported (and quantized) now if missing.

    Each exported file's sha256 is recorded beside it and checked before it
    is used: a damaged or replaced file is exported again.
    """
    onnx_root = cache_dir() / "onnx"
    _private_folder(onnx_root)
    folder = onnx_root / f"{kind}-{sha256[:20]}"
    _private_folder(folder)
    name = "model.int8.onnx" if quantized else "model.onnx"
    if _intact(folder, name):
        return folder / name
    from filelock import FileLock

    with FileLock(str(folder / ".lock"), mode=0o600):
        if _intact(folder, name):  # another process exported it while we waited
            return folder / name
        hashes = {k: v for k, v in (_recorded(folder).get("files") or {}).items() if _intact(folder, k)}
        if "model.onnx" not in hashes:
            logger.info("exporting %s %s to ONNX (once; cached in %s)", kind, model_dir, folder)
            _write_private(folder, "model.onnx", lambda tmp: _export(Path(model_dir), kind, tmp))
            hashes["model.onnx"] = _file_sha256(folder / "model.onnx")
        if quantized:
            _write_private(folder, name, lambda tmp: _quantize(folder / "model.onnx", tmp))
            hashes[name] = _file_sha256(folder / name)
        source = {"model": str(Path(model_dir).resolve()), "kind": kind, "sha256": sha256, "files": hashes}
        _write_private(folder, SOURCE, lambda tmp: tmp.write_text(json.dumps(source, indent=2), encoding="utf-8"))
    return folder / name


def _intact(folder: Path, name: str) -> bool:
    """True when ``folder/name`` exists and matches the sha256 recorded for it."""
    path = folder / name
    if not path.is_file() or path.is_symlink():
        return False
    expected = (_recorded(folder).get("files") or {}).get(name)
    if expected == _file_sha256(path):
        return True
    logger.warning("cached ONNX file %s does not match its recorded sha256; exporting it again", path)
    return False


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class OnnxModel:
    """An ONNX Runtime session over a cached export of a model directory."""

    def __init__(
        self, model_dir: str | Path, kind: str, sha256: str, quantized: bool = False, threads: int | None = None
    ):
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
            logger.warning(
                "cached ONNX model %s could not be loaded (%s); exporting it again", path, str(exc).splitlines()[0]
            )
            shutil.rmtree(path.parent, ignore_errors=True)
            path = onnx_file(model_dir, kind, sha256, quantized)
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def run(self, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(
            None, {name: np.ascontiguousarray(arrays[name], dtype=np.int64) for name in self.inputs}
        )
