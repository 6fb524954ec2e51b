"""Reader training on a machine without network whose inputs and outputs are size-limited.

``assemble`` gathers what ``ragqa train-reader`` needs beside the code into one
folder (the starting model in float16, the SQuAD file, wheels of packages the
machine lacks) and checks it fits; ``pack`` turns a trained reader into a few
parts of at most ``part_mib`` MiB each (float16 weights, tarred, split, with
sha256 sums); ``unpack`` checks and joins them into a reader directory again.

    python -m rag_qa.training.bundle assemble --data train-v1.1.json.gz --out .carry/gpu
    python -m rag_qa.training.bundle pack models/reader OUT_DIR
    python -m rag_qa.training.bundle unpack OUT_DIR models/reader-gpu
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from rag_qa.errors import InputError

MIB = 1 << 20
SUMS = "parts.sha256.json"
# What the reader trainer imports that a machine with torch, transformers and
# accelerate may still lack (pure-Python or cp312 wheels, fetched from PyPI here).
WHEELS = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def assemble(
    data: str | Path,
    out: str | Path,
    base: str | Path | None = None,
    wheels: bool = True,
    python_version: str = "3.12",
    limit_mib: float = 60,
) -> dict:
    """Fill ``out`` with ``base/`` (the starting model, float16), the SQuAD
    file and ``wheels/``; refuse when it is over ``limit_mib``."""
    from rag_qa.models import base_model_path, check_model_dir
    from rag_qa.training.reader import export_reader

    data, out = Path(data), Path(out)
    if not data.is_file():
        raise InputError(f"training file {data} does not exist: pass the SQuAD .json or .json.gz file")
    source = check_model_dir(base if base is not None else base_model_path(), kind="base model")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    export_reader(source, out / "base", dtype="float16")
    shutil.copy2(data, out / data.name)
    if wheels:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            python_version,
            "--implementation",
            "cp",
            "--platform",
            "manylinux_2_17_x86_64",
            "--platform",
            "manylinux2014_x86_64",
            "-d",
            str(out / "wheels"),
            *WHEELS,
        ]
        subprocess.run(command, check=True)
    size = _size(out)
    if size > limit_mib * MIB:
        raise InputError(
            f"{out} holds {size / MIB:.1f} MiB, over the {limit_mib:g} MiB that may travel: use a smaller base model "
            "or leave the wheels out"
        )
    manifest = {
        "base": str(source),
        "data": data.name,
        "mib": round(size / MIB, 1),
        "wheels": sorted(p.name for p in (out / "wheels").glob("*.whl")) if wheels else [],
    }
    (out / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def pack(model_dir: str | Path, out: str | Path, part_mib: float = 15) -> list[Path]:
    """The reader in ``model_dir`` (float16 weights) as tar parts of at most
    ``part_mib`` MiB in ``out``, with their sha256 sums."""
    from rag_qa.training.reader import export_reader

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        half = export_reader(model_dir, Path(tmp) / "reader", dtype="float16")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for file in sorted(half.iterdir()):
                tar.add(file, arcname=file.name)
    blob, size = buffer.getvalue(), int(part_mib * MIB)
    parts = []
    for i in range(0, len(blob), size):
        part = out / f"reader.tar.{i // size:02d}"
        part.write_bytes(blob[i : i + size])
        parts.append(part)
    sums = {"tar": hashlib.sha256(blob).hexdigest(), "parts": {p.name: _sha256(p) for p in parts}}
    (out / SUMS).write_text(json.dumps(sums, indent=2) + "\n")
    return parts


def unpack(parts_dir: str | Path, dest: str | Path) -> Path:
    """Check the parts against their sums, join them and extract the reader into ``dest``."""
    parts_dir, dest = Path(parts_dir), Path(dest)
    sums_file = parts_dir / SUMS
    if not sums_file.is_file():
        raise InputError(f"{parts_dir} has no {SUMS}: pass the folder `pack` wrote")
    sums = json.loads(sums_file.read_text())
    blob = b""
    for name, expected in sorted(sums["parts"].items()):
        part = parts_dir / name
        if not part.is_file() or _sha256(part) != expected:
            raise InputError(f"part {part} is missing or damaged (sha256 differs): fetch it again")
        blob += part.read_bytes()
    if hashlib.sha256(blob).hexdigest() != sums["tar"]:
        raise InputError(f"the joined parts in {parts_dir} do not match their sha256: fetch them again")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # Python before 3.11.4 has no extraction filters: allow plain files and folders inside dest only
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in parts:
                    raise InputError(f"the bundle holds {member.name!r}, which is not a plain file inside it")
            tar.extractall(dest)
    return dest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rag_qa.training.bundle", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("assemble", help="gather the base model, the data and wheels into one folder")
    a.add_argument("--data", required=True)
    a.add_argument("--out", default=".carry/gpu")
    a.add_argument("--base", help="starting model directory (default: the all-MiniLM-L6-v2 base)")
    a.add_argument("--no-wheels", action="store_true")
    p = sub.add_parser("pack", help="split a trained reader into parts")
    p.add_argument("model_dir")
    p.add_argument("out")
    p.add_argument("--part-mib", type=float, default=15)
    u = sub.add_parser("unpack", help="join parts into a reader directory")
    u.add_argument("parts_dir")
    u.add_argument("dest")
    args = parser.parse_args(argv)
    if args.command == "assemble":
        print(json.dumps(assemble(args.data, args.out, base=args.base, wheels=not args.no_wheels), indent=2))
    elif args.command == "pack":
        print("\n".join(str(p) for p in pack(args.model_dir, args.out, args.part_mib)))
    else:
        print(unpack(args.parts_dir, args.dest))


if __name__ == "__main__":  # pragma: no cover
    main()
