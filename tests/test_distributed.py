"""Data-parallel training with torch.distributed (gloo on CPU): two processes with the same global batch and
seed follow the single-process loss curve; only rank 0 writes; a killed run resumes."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llada_play.training import distributed

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "ddp_worker.py"
# Same masks, same rows, gradients averaged in another order: the curves agree to float32 rounding.
LOSS_TOLERANCE = 1e-4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict:
    e = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_NTASKS", "SLURM_PROCID"):
        e.pop(key, None)
    return e


def single(out: Path, objective: str, steps: int, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(WORKER), str(out), objective, str(steps), *extra], env=env(),
                          capture_output=True, text=True, timeout=120)


def two_processes(out: Path, objective: str, steps: int, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
                           str(WORKER), str(out), objective, str(steps), *extra],
                          env=env(), capture_output=True, text=True, timeout=180)


def losses(out: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]


def final_weights(out: Path) -> dict:
    return load_file(sorted((out / "checkpoints").glob("step-*"))[-1] / "model.safetensors")


@pytest.mark.parametrize("objective", ["pretrain", "sft"])
def test_two_processes_follow_the_single_process_loss_curve(tmp_path, objective):
    one, two = tmp_path / "one", tmp_path / "two"
    assert single(one, objective, 10).returncode == 0
    run = two_processes(two, objective, 10)
    assert run.returncode == 0, run.stderr[-3000:]
    a, b = losses(one), losses(two)
    assert [s for s, _ in a] == [s for s, _ in b] == list(range(1, 11))  # rank 0 alone logs, each step once
    for (step, la), (_, lb) in zip(a, b):
        assert abs(la - lb) <= LOSS_TOLERANCE, f"step {step}: {la} (1 process) vs {lb} (2 processes)"
    wa, wb = final_weights(one), final_weights(two)
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-4
    # checkpoints from rank 0 only: no staging directories or duplicates left behind
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == ["step-0000004", "step-0000008",
                                                                        "step-0000010"]


def test_a_killed_two_process_run_resumes_to_the_same_end(tmp_path):
    reference, run = tmp_path / "ref", tmp_path / "run"
    assert single(reference, "pretrain", 10).returncode == 0
    killed = two_processes(run, "pretrain", 10, "--die-at", "6")
    assert killed.returncode != 0
    assert max(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*")) == 4
    resumed = two_processes(run, "pretrain", 10, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [s for s, _ in losses(run)] == list(range(1, 11))  # the lost steps 5-6 logged once, after resuming
    for (_, la), (_, lb) in zip(losses(reference), losses(run)):
        assert abs(la - lb) <= LOSS_TOLERANCE
    wa, wb = final_weights(reference), final_weights(run)
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-4


def test_environment_gives_rank_and_world_size(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_STEP_ID"):
        monkeypatch.delenv(key, raising=False)
    assert distributed.dist_env() == distributed.DistEnv(0, 1, 0)
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert distributed.dist_env().world_size == 1  # the batch script itself, not an srun task
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    assert distributed.dist_env() == distributed.DistEnv(3, 4, 1)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert distributed.dist_env() == distributed.DistEnv(1, 2, 0)  # torchrun's variables win


def test_uneven_shards_and_nccl_without_gpus_are_refused():
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        distributed.shard_rows(8, distributed.DistEnv(0, 3, 0))
    assert distributed.shard_rows(8, distributed.DistEnv(1, 2, 1)) == slice(4, 8)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="nccl backend needs CUDA GPUs"):
            distributed.resolve_backend("nccl", torch.device("cpu"))
    assert distributed.resolve_backend("auto", torch.device("cpu")) == "gloo"
