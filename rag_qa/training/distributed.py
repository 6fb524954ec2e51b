"""Training in several processes, started by ``torchrun`` or ``accelerate launch``.

The launcher sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; the Trainer then
wraps the model in DistributedDataParallel, gives each process its share of
every batch and averages the gradients. Processes talk over NCCL on GPUs and
gloo on CPUs. Only the first process (rank 0) writes the model, its reports
and the log.
"""

from __future__ import annotations

import logging
import os


def world_size() -> int:
    """How many training processes the launcher started (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Whether this process writes outputs: always, unless it is one of several and not the first."""
    return rank() == 0


def ddp_arguments(unused_parameters: bool = False) -> dict:
    """TrainingArguments for several processes: the backend, and whether DDP searches each step
    for parameters without a gradient (a graph walk a step): a reader uses all of its own, an
    encoder that pools token vectors leaves its model's pooler unused."""
    if world_size() <= 1:
        return {}
    import torch

    return {
        "ddp_backend": "nccl" if torch.cuda.is_available() else "gloo",
        "ddp_find_unused_parameters": unused_parameters,
    }


def quiet_other_processes() -> None:
    """Leave logging to the first process, so that each line is printed once."""
    if not is_main_process():
        logging.getLogger("rag_qa").setLevel(logging.ERROR)
