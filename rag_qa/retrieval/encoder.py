"""The dense encoder: a sentence-transformers model from a local directory,
run by torch or ONNX Runtime, and the check that an index is queried with
the encoder that built it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from rag_qa.errors import IndexMismatchError, ModelError
from rag_qa.models import check_model_dir, default_encoder_path, weights_sha256
from rag_qa.runtime import resolve_device, resolve_precision, resolve_runtime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderInfo:
    """What an index records about the encoder that built it."""

    path: str
    sha256: str
    dimension: int
    max_seq_length: int
    default: bool

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "dimension": self.dimension,
            "max_seq_length": self.max_seq_length,
            "default": self.default,
        }


class Encoder:
    """A sentence-transformers model from a local directory, loaded on first use.

    A plain transformer + pooling model (the usual case, and the default
    encoder) runs through transformers alone; other module stacks load with
    sentence-transformers.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        device: str | None = None,
        batch_size: int = 16,
        precision: str = "auto",
        runtime: str = "auto",
    ):
        self.is_default = path is None
        self.precision = precision
        self.runtime = runtime
        # absolute, so that an index records a folder it can find from any working directory
        self.path = check_model_dir(path if path is not None else default_encoder_path(), kind="encoder").absolute()
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._sha256: str | None = None
        self._info: EncoderInfo | None = None

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = weights_sha256(self.path)
        return self._sha256

    def warm_up(self) -> "Encoder":
        """Load the model now rather than on the first :meth:`encode`."""
        self.model  # noqa: B018 - loads it
        return self

    @property
    def model(self):
        if self._model is None:
            spec = _plain_pooling_spec(self.path)
            runtime = resolve_runtime(self.runtime, self.device, self.precision)
            if runtime != "torch":
                if spec is None:
                    if self.runtime != "auto":
                        raise ModelError(
                            f"encoder directory {self.path} is not a plain transformer + pooling model, which the "
                            f"{runtime} runtime needs: use runtime torch"
                        )
                else:
                    self._model = _OnnxPooled(self.path, spec, self.sha256, quantized=runtime == "onnx-int8")
                    return self._model
            import torch

            device = resolve_device(self.device)
            dtype = getattr(torch, resolve_precision(self.precision, device))
            if spec is not None:
                self._model = _PooledTransformer(self.path, spec, device, dtype)
                return self._model
            from sentence_transformers import SentenceTransformer

            try:
                self._model = SentenceTransformer(
                    str(self.path),
                    device=device,
                    trust_remote_code=False,
                    local_files_only=True,
                    model_kwargs={"dtype": dtype},
                )
            except (OSError, ValueError, KeyError) as exc:
                reason = str(exc).replace("\n", " ")
                raise ModelError(
                    f"encoder directory {self.path} could not be loaded as a sentence-transformers model: {reason}"
                ) from exc
        return self._model

    def info(self) -> EncoderInfo:
        if self._info is None:
            self._info = self._read_info()
        return self._info

    def _read_info(self) -> EncoderInfo:
        model = self.model
        return EncoderInfo(
            path=str(self.path),
            sha256=self.sha256,
            dimension=int(_dimension(model)),
            max_seq_length=int(model.max_seq_length),
            default=self.is_default,
        )

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per text.

        Each call's texts are sorted by length before batching, so padding
        stays small; the rows come back in input order.
        """
        if not texts:
            return np.zeros((0, self.info().dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _plain_pooling_spec(path: Path) -> dict | None:
    """The pooling of a sentence-transformers directory that is only a
    transformer, mean or CLS pooling and optional normalisation (as
    all-MiniLM-L6-v2 is), or None for anything else."""
    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if (
            kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
            or modules[0].get("path", "") != ""
        ):
            return None
        pooling = json.loads((path / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
        settings_file = path / "sentence_bert_config.json"
        settings = json.loads(settings_file.read_text(encoding="utf-8")) if settings_file.is_file() else {}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    modes = [
        k
        for k in (
            "pooling_mode_cls_token",
            "pooling_mode_mean_tokens",
            "pooling_mode_max_tokens",
            "pooling_mode_mean_sqrt_len_tokens",
            "pooling_mode_weightedmean_tokens",
            "pooling_mode_lasttoken",
        )
        if pooling.get(k)
    ]
    mode = pooling.get("pooling_mode") or (
        {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean"}.get(modes[0]) if len(modes) == 1 else None
    )
    if mode not in ("mean", "cls") or settings.get("do_lower_case") or pooling.get("include_prompt") is False:
        return None
    return {"mode": mode, "max_seq_length": settings.get("max_seq_length")}


class _PooledTransformer:
    """A transformer with mean or CLS pooling, run with transformers alone.

    Gives the vectors sentence-transformers gives for such a model without
    importing sentence-transformers, which takes seconds and dominates the
    start-up of `ragqa ask`.
    """

    def __init__(self, path: Path, spec: dict, device: str, dtype):
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = AutoModel.from_pretrained(
                str(path), local_files_only=True, trust_remote_code=False, use_safetensors=True, dtype=dtype
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"encoder directory {path} could not be loaded: {exc}".replace("\n", " ")) from exc
        self.model = model.to(device).eval()
        self.device = device
        self.mode = spec["mode"]
        limits = [
            n
            for n in (
                spec["max_seq_length"],
                getattr(self.model.config, "max_position_embeddings", None),
                self.tokenizer.model_max_length,
            )
            if n
        ]
        self.max_seq_length = int(min(limits))

    def get_embedding_dimension(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: list[str], batch_size: int, **_: object) -> np.ndarray:
        import torch

        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.get_embedding_dimension()), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                rows = order[start : start + batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=self.max_seq_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state.float()
                if self.mode == "cls":
                    pooled = hidden[:, 0]
                else:
                    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[rows] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        return out


class _OnnxPooled:
    """:class:`_PooledTransformer` run by ONNX Runtime (see :mod:`rag_qa.runtime`)."""

    def __init__(self, path: Path, spec: dict, sha256: str, quantized: bool = False):
        from rag_qa.runtime import FastTokenizer, OnnxModel

        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        self.tokenizer = FastTokenizer(path, kind="encoder")
        self.model = OnnxModel(path, "encoder", sha256, quantized=quantized)
        self.mode = spec["mode"]
        self.dimension = int(config["hidden_size"])
        limits = [
            n
            for n in (spec["max_seq_length"], config.get("max_position_embeddings"), self.tokenizer.model_max_length)
            if n
        ]
        self.max_seq_length = int(min(limits))

    def get_embedding_dimension(self) -> int:
        return self.dimension

    def encode(self, texts: list[str], batch_size: int, **_: object) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            arrays = self.tokenizer.texts([texts[i] for i in rows], self.max_seq_length)
            (hidden,) = self.model.run(arrays)
            if self.mode == "cls":
                pooled = hidden[:, 0]
            else:
                mask = arrays["attention_mask"][:, :, None].astype(np.float32)
                pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out


def _dimension(model) -> int:
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return getter()


def check_encoder_matches(recorded: dict, encoder: Encoder) -> None:
    """Refuse to query an index with an encoder other than the one that built it."""
    if recorded.get("sha256") != encoder.sha256:
        raise IndexMismatchError(
            f"index was built with encoder {recorded.get('path')} (sha256 {str(recorded.get('sha256'))[:12]}), "
            f"but encoder {encoder.path} (sha256 {encoder.sha256[:12]}) was given, or its weights, configs or "
            f"tokenizer changed since: re-run `ragqa index --encoder {encoder.path}` "
            "or search with the encoder that built the index"
        )


__all__ = ["Encoder", "EncoderInfo", "check_encoder_matches"]
