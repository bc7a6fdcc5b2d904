"""Multi-process data parallelism (torch.distributed): who am I, how many are we, and the process group.

Ranks come from the environment the way launchers set it: torchrun (RANK / WORLD_SIZE / LOCAL_RANK, with
MASTER_ADDR / MASTER_PORT) or Slurm's one-task-per-process ``srun`` (SLURM_PROCID / SLURM_NTASKS /
SLURM_LOCALID; the rendezvous address is derived from the job's first node). A plain ``python`` run is
rank 0 of 1 and never touches torch.distributed, so the single-process path costs nothing.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
from dataclasses import dataclass

import torch
import torch.distributed as dist

BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_env() -> DistEnv:
    """Rank, world size and local rank from torchrun's variables, else Slurm's, else a single process."""
    env = os.environ
    if "WORLD_SIZE" in env and "RANK" in env:
        return DistEnv(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env and "SLURM_STEP_ID" in env:
        # SLURM_STEP_ID: only inside an srun step are the tasks separate processes
        return DistEnv(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)))
    return DistEnv()


def current() -> DistEnv:
    """The initialized group's view, or the environment's before initialization."""
    if dist.is_available() and dist.is_initialized():
        return DistEnv(dist.get_rank(), dist.get_world_size(), dist_env().local_rank)
    return dist_env()


def resolve_backend(backend: str, device: torch.device) -> str:
    """gloo on CPU, NCCL on GPUs; NCCL without a GPU is refused with a message that says so."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown distributed backend {backend!r}; choose one of {BACKENDS}")
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and (device.type != "cuda" or not torch.cuda.is_available()):
        raise ValueError("the nccl backend needs CUDA GPUs (device is "
                         f"{device.type}, {torch.cuda.device_count()} GPUs visible); use gloo on CPU")
    return backend


def _slurm_rendezvous() -> None:
    """MASTER_ADDR/PORT for tasks started by srun: the job's first node and a port fixed by the job id."""
    if "MASTER_ADDR" not in os.environ:
        nodes = os.environ.get("SLURM_JOB_NODELIST", "127.0.0.1")
        try:
            first = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True,
                                   check=True).stdout.split()[0]
        except (OSError, subprocess.CalledProcessError, IndexError):
            first = nodes.split(",")[0]
        os.environ["MASTER_ADDR"] = first
    os.environ.setdefault("MASTER_PORT", str(20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 20000))


def init_distributed(device: torch.device | str = "cpu", backend: str = "auto") -> DistEnv:
    """Join the process group when launched as several processes (idempotent); single processes return rank 0
    of 1 without initializing anything."""
    device = torch.device(device)
    env = dist_env()
    if env.world_size == 1 or dist.is_initialized():
        return current()
    chosen = resolve_backend(backend, device)
    if "RANK" not in os.environ:  # srun tasks: export what init_method env:// reads
        _slurm_rendezvous()
        os.environ.update(RANK=str(env.rank), WORLD_SIZE=str(env.world_size), LOCAL_RANK=str(env.local_rank))
    if device.type == "cuda":
        torch.cuda.set_device(env.local_rank % max(1, torch.cuda.device_count()))
    dist.init_process_group(chosen)
    # Leaving the group alive until interpreter teardown can abort the process ("terminate called without an
    # active exception" from gloo's threads): destroy it at exit whatever the entry point.
    atexit.register(shutdown)
    return env


def local_device(device: str) -> torch.device:
    """``cuda`` means this process's GPU (by local rank) when several processes share a node."""
    d = torch.device(device)
    if d.type == "cuda" and d.index is None and current().world_size > 1:
        return torch.device("cuda", current().local_rank % max(1, torch.cuda.device_count()))
    return d


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


@contextlib.contextmanager
def main_process_first():
    """Rank 0 runs the block first (e.g. writes a tokenizer), the others run it after, finding its files."""
    main = current().is_main
    if not main:
        barrier()
    yield
    if main:
        barrier()


def shard_rows(batch_size: int, env: DistEnv) -> slice | None:
    """This rank's contiguous rows of a global batch (None for a single process)."""
    if env.world_size == 1:
        return None
    if batch_size % env.world_size:
        raise ValueError(f"batch size {batch_size} is not divisible by the {env.world_size} processes; "
                         "the global batch is split evenly between them")
    per = batch_size // env.world_size
    return slice(env.rank * per, (env.rank + 1) * per)


def mean_over_ranks(values: list[float]) -> list[float]:
    """Average floats across the group (identity for a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()


def any_rank(flags: list[bool]) -> list[bool]:
    """True where any rank says True (a hook on one rank stopping stops everyone)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flags
    t = torch.tensor([float(f) for f in flags])
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def same_on_all_ranks(value: float) -> bool:
    """Whether every rank holds the same number (the same answer on every rank)."""
    if not (dist.is_available() and dist.is_initialized()):
        return True
    t = torch.tensor([float(value), -float(value)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t[0].item() == -t[1].item()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
