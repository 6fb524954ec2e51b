"""Training in two processes (torchrun, gloo on CPU): the same commands, one model written."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_encoder_training import write_pairs
from test_reader_training import make_squad

pytestmark = pytest.mark.slow


def _torchrun(tmp_path, *args: str) -> subprocess.CompletedProcess:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_port", str(_free_port()), "-m", "rag_qa", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_train_reader_in_two_processes_writes_one_model_that_answers(tmp_path, tiny_qa_base):
    from rag_qa.reading.reader import Reader
    from rag_qa.types import Passage

    make_squad(tmp_path / "train.json", 256, seed=1)
    make_squad(tmp_path / "dev.json", 32, seed=2)
    (tmp_path / "cfg.yaml").write_text(
        "max_seq_length: 64\ndoc_stride: 32\nlearning_rate: 2.0e-3\nbatch_size: 8\nepochs: 2\n"
        "eval_steps: 16\nlogging_steps: 4\nprecision: fp32\nwarmup_ratio: 0.0\n"
    )
    done = _torchrun(
        tmp_path, "train-reader", "--train", "train.json", "--eval", "dev.json", "--base", str(tiny_qa_base),
        "--out", "reader", "--config", "cfg.yaml",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Reader saved to reader") == 1, done.stdout  # said once, by the first process
    results = json.loads((tmp_path / "reader" / "eval_results.json").read_text())
    assert results["processes"] == 2
    # each step takes 8 windows in each process: half the steps of one process with batch 8
    assert results["steps"] == 2 * results["train_windows"] // 16
    assert results["f1"] > 50
    reader = Reader(tmp_path / "reader", max_seq_length=64, doc_stride=32, precision="float32")
    passage = Passage("p", "d", "d.txt", "It rains here. Boris likes the colour purple. Today.", 0, 52)
    (answer,) = reader.read("Which colour does Boris like?", [passage], top_k=1)
    assert answer.text == "purple"


def test_train_encoder_in_two_processes_writes_one_model(tmp_path, tiny_encoder):
    write_pairs(tmp_path / "p.jsonl")
    (tmp_path / "cfg.yaml").write_text(
        "epochs: 2\nbatch_size: 8\nlearning_rate: 5.0e-3\neval_steps: 4\nprecision: fp32\n"
        "warmup_ratio: 0.0\neval_fraction: 0.25\n"
    )
    done = _torchrun(
        tmp_path, "train-encoder", "--train", "p.jsonl", "--base", str(tiny_encoder), "--out", "enc",
        "--config", "cfg.yaml",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Encoder saved to enc") == 1, done.stdout
    results = json.loads((tmp_path / "enc" / "eval_results.json").read_text())
    assert results["processes"] == 2
    from sentence_transformers import SentenceTransformer

    assert SentenceTransformer(str(tmp_path / "enc"), device="cpu").encode(["a query"]).shape == (1, 32)


def _rank_loss(rank: int, init: str, encoder: str, queries: list, passages: list, out: str) -> None:
    import torch
    import torch.distributed as dist
    from sentence_transformers import SentenceTransformer

    from rag_qa.training.encoder import ranking_loss

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    model = SentenceTransformer(encoder, device="cpu").eval()
    half = len(queries) // 2
    mine = slice(rank * half, (rank + 1) * half)
    features = [model.tokenize(queries[mine]), model.tokenize(passages[mine])]
    with torch.no_grad():
        loss = ranking_loss(model, processes=2)(features, labels=None)
    Path(out, f"rank{rank}").write_text(str(float(loss)))
    dist.destroy_process_group()


def test_in_batch_negatives_are_gathered_across_processes(tmp_path, tiny_encoder):
    """Each process scores its questions against every process's passages, so two processes
    with half a batch each compute the loss that one process computes over the whole batch."""
    import torch
    import torch.multiprocessing as mp
    from sentence_transformers import SentenceTransformer

    from rag_qa.training.encoder import ranking_loss

    queries = [f"tell me about the landform number {i}" for i in range(8)]
    passages = [f"Landform {i} is a {w} near the coast." for i, w in enumerate("abcdefgh")]
    mp.spawn(
        _rank_loss,
        args=(f"file://{tmp_path / 'rendezvous'}", str(tiny_encoder), queries, passages, str(tmp_path)),
        nprocs=2,
    )
    two_processes = sum(float((tmp_path / f"rank{r}").read_text()) for r in range(2)) / 2

    model = SentenceTransformer(str(tiny_encoder), device="cpu").eval()
    with torch.no_grad():
        whole = float(ranking_loss(model)([model.tokenize(queries), model.tokenize(passages)], labels=None))
        halves = [
            float(ranking_loss(model)([model.tokenize(queries[s]), model.tokenize(passages[s])], labels=None))
            for s in (slice(0, 4), slice(4, 8))
        ]
    assert two_processes == pytest.approx(whole, abs=1e-5)
    assert sum(halves) / 2 != pytest.approx(whole, abs=1e-3)  # without gathering, the negatives would be fewer
