"""The GPU training bundle: assembled under the size limit, the same command trains 5 steps
here, and the trained reader comes back through parts intact."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag_qa.data import is_held_out
from rag_qa.training.bundle import assemble, pack, unpack

ROOT = Path(__file__).resolve().parent.parent


def _squad(path: Path) -> Path:
    """Sixty small articles, a few of which fall in the held-out bucket."""
    articles = []
    titles = [f"article_{i}" for i in range(400)]
    held = [t for t in titles if is_held_out(t)][:3]
    for title in held + [t for t in titles if not is_held_out(t)][:57]:
        context = f"The {title} museum opened in 1901. Its founder was Ada Lind."
        qas = [
            {
                "id": f"{title}-q",
                "question": f"When did the {title} museum open?",
                "answers": [{"text": "1901", "answer_start": context.index("1901")}],
            }
        ]
        articles.append({"title": title, "paragraphs": [{"context": context, "qas": qas}]})
    path.write_text(json.dumps({"version": "1.1", "data": articles}))
    return path


@pytest.mark.slow
def test_bundle_trains_five_steps_and_comes_back_in_parts(tmp_path, tiny_qa_base):
    bundle = tmp_path / "carry"
    manifest = assemble(_squad(tmp_path / "squad.json"), bundle, base=tiny_qa_base, wheels=False, limit_mib=60)
    assert manifest["mib"] < 60 and (bundle / "base" / "model.safetensors").is_file()

    out = tmp_path / "reader"
    command = [
        sys.executable,
        "-m",
        "rag_qa.cli",
        "-q",
        "train-reader",
        "--train",
        str(bundle / "squad.json"),
        "--base",
        str(bundle / "base"),
        "--config",
        str(ROOT / "configs" / "train_reader.yaml"),
        "--max-steps",
        "5",
        "--out",
        str(out),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "eval_results.json").read_text())["steps"] == 5

    parts_dir = tmp_path / "OUT"
    parts = pack(out, parts_dir, part_mib=0.5)
    assert len(parts) >= 2 and all(p.stat().st_size <= 0.5 * 2**20 for p in parts)
    back = unpack(parts_dir, tmp_path / "back")
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(str(back))
    assert str(model.dtype) == "torch.float16"

    parts[0].write_bytes(parts[0].read_bytes()[:-1] + b"x")
    from rag_qa.errors import InputError

    with pytest.raises(InputError, match="damaged"):
        unpack(parts_dir, tmp_path / "again")
