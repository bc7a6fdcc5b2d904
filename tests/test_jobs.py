"""Training jobs: the local executor, and a real one-node Slurm cluster with accounting (scripts/local-slurm.sh)
that runs submitit jobs, a 2-task DDP job, a cancel, a preemption with requeue, and refuses bad settings."""
import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch

from llada_play.cli import main
from llada_play.jobs import ClusterConfig, JobFailed, submit, submit_sweep, sweep_grid
from llada_play.training.trainer import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "local-slurm.sh"
SHAKESPEARE = ROOT / "data" / "shakespeare"
RECIPE = dict(preset="tiny", vocab_size=300, seq_len=32, batch_size=8, held_out_fraction=0.34, eval_batches=2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    for name, size in [("hamlet", 30000), ("macbeth", 10000), ("lear", 10000)]:
        (d / f"{name}.txt").write_text((SHAKESPEARE / f"{name}_gut.txt").read_text()[:size])
    return d


def quick(out, steps=20, **kw) -> TrainConfig:
    return TrainConfig(output_dir=str(out), max_steps=steps, warmup_steps=2, log_every=2, save_every=10, **kw)


# ---- local executor ------------------------------------------------------------------------------------

def test_cancelling_a_finished_job_leaves_it_completed_and_a_rerun_says_it_resumes(corpus, tmp_path):
    from llada_play.ui.job_widgets import JobMonitor

    config = TrainConfig(output_dir=str(tmp_path / "run"), max_steps=4, warmup_steps=2, log_every=2, save_every=4)
    job = submit(config, "pretrain", corpus=str(corpus), **RECIPE)
    assert job.wait(timeout_s=120) == "COMPLETED" and job.resumes_from is None
    assert job.cancel() is False and job.status() == "COMPLETED"
    again = submit(config, "pretrain", corpus=str(corpus), **RECIPE)  # the same folder: the finished run goes on
    assert again.resumes_from == 4 and again.wait(timeout_s=120) == "COMPLETED"
    assert "resumes the run already in its folder from step 4" in JobMonitor(again).status_line.value


def test_local_cli_job_trains_and_reports(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["submit", "--wait", "--", "train", "--data", str(corpus), "--preset", "tiny", "--vocab-size", "300",
                 "--seq-len", "32", "--batch-size", "8", "--steps", "12", "--warmup", "2", "--log-every", "3",
                 "--held-out", "0.34", "--out", str(out)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert code == 0, lines
    assert lines[-1]["status"] == "COMPLETED" and lines[-1]["model"] == str(out / "final")
    assert [r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())] == [3, 6, 9, 12]
    assert json.loads((out / "summary.json").read_text())["steps"] == 12


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_local_job_can_be_cancelled(corpus, tmp_path, sigint, capfd):
    import signal

    # "ignored": how a job starts under a shell that runs the test suite in the background (SIGINT is SIG_IGN)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if sigint == "ignored" else None
    try:
        job = submit(quick(tmp_path / "long", steps=100_000), "pretrain", corpus=str(corpus), **RECIPE)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 60
        while not job.metrics() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert job.status() == "RUNNING" and job.metrics(), job.log_tail()
        job.cancel()
        assert job.wait(timeout_s=30) == "CANCELLED"
        assert not (tmp_path / "long" / "final").exists()
        controller = int(job.job.job_id)
        assert not _alive(controller), "the job's processes must be gone after cancel"
        # the controller shares this process's terminal (a notebook's output): it must not print a traceback there
        assert "KeyboardInterrupt" not in capfd.readouterr().err
        # nor in the job's own log (a notebook's monitor shows its tail): one line says what happened
        tail = job.log_tail(40)
        assert "Traceback" not in tail and "KeyboardInterrupt" not in tail, tail
        if sigint == "default":  # where SIGINT is ignored, the job is killed after the grace period and says nothing
            assert "stopped by a cancel (SIGINT)" in tail, tail
    finally:
        job.cancel(grace_s=1)  # never leave a 100,000-step job running behind a failed assertion


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_failing_job_raises_with_its_log_tail(tmp_path):
    job = submit(quick(tmp_path / "bad"), "pretrain", corpus=str(tmp_path / "no-such-corpus"), **RECIPE)
    with pytest.raises(JobFailed, match="(?s)ended FAILED.*no-such-corpus does not exist"):
        job.result(timeout_s=60)


def test_bad_cluster_settings_are_refused_before_submitting(tmp_path):
    with pytest.raises(ValueError, match="nccl' needs GPUs, but the job asks for gpus_per_node=0"):
        submit(quick(tmp_path, ddp_backend="nccl"), "pretrain", ClusterConfig(tasks_per_node=2), corpus="x")
    with pytest.raises(ValueError, match="batch size 8 is not divisible by the 3 training processes"):
        submit(quick(tmp_path), "pretrain", ClusterConfig(tasks_per_node=3), corpus="x", batch_size=8)
    with pytest.raises(ValueError, match="unknown executor 'kubernetes'"):
        ClusterConfig(executor="kubernetes")
    with pytest.raises(ValueError, match="local executor runs on this machine only"):
        ClusterConfig(nodes=2)
    with pytest.raises(ValueError, match="unknown recipe 'finetune'"):
        submit(quick(tmp_path), "finetune")
    assert main(["submit", "--gpus-per-node", "0", "--", "train", "--data", "x", "--out", str(tmp_path),
                 "--ddp-backend", "nccl"]) == 2


def test_sweep_grid_names_each_run():
    grid = sweep_grid(seed=[0, 1], objective=["pretrain", "autoregressive"])
    assert len(grid) == 4 and grid[1] == {"seed": 0, "objective": "autoregressive"}


# ---- a real Slurm cluster --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """Start munge, MariaDB, slurmdbd, slurmctld and slurmd (as root, non-default ports) and stop them after."""
    if shutil.which("slurmctld") is None or shutil.which("mariadbd") is None:
        install = subprocess.run([str(SCRIPT), "install"], capture_output=True, text=True)
        if install.returncode != 0:
            pytest.skip(f"Slurm packages are not installed and could not be installed: {install.stderr[-300:]}")
    folder = tmp_path_factory.mktemp("slurm")
    env = dict(os.environ, LOCAL_SLURM_PORT="16910")
    started = subprocess.run([str(SCRIPT), "start", str(folder)], capture_output=True, text=True, env=env, timeout=120)
    assert started.returncode == 0, started.stderr
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(folder / "etc" / "slurm.conf")
    try:
        yield folder
    finally:
        subprocess.run(["scancel", "--user", "root"], capture_output=True)
        subprocess.run([str(SCRIPT), "stop", str(folder)], capture_output=True, text=True, env=env, timeout=120)
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            assert not (folder / "run" / f"{name}.pid").exists()


SLURM = ClusterConfig(executor="slurm", cpus_per_task=1, time_min=10)


def sacct_states(job_id: str) -> set[str]:
    out = subprocess.run(["sacct", "-n", "-X", "-j", job_id, "-o", "State"], capture_output=True, text=True).stdout
    return {s.strip() for s in out.splitlines() if s.strip()}


def test_slurm_training_jobs_one_and_two_tasks(slurm, corpus, tmp_path):
    one = submit(quick(tmp_path / "one"), "pretrain", SLURM, corpus=str(corpus), **RECIPE)
    two = submit(quick(tmp_path / "two"), "pretrain", ClusterConfig(executor="slurm", tasks_per_node=2, cpus_per_task=1),
                 corpus=str(corpus), **RECIPE)
    for job, out in [(one, tmp_path / "one"), (two, tmp_path / "two")]:
        summary = job.result(timeout_s=150)
        assert summary["steps"] == 20 and job.model_dir() == out / "final"
        assert sacct_states(job.job_id) == {"COMPLETED"}  # accounting knows the job
        assert [r["step"] for r in job.metrics()] == list(range(2, 21, 2))
        assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000010", "step-0000020"]
    # the 2-task job ran two ranks (two srun tasks), and only rank 0 wrote
    logs = sorted((tmp_path / "two" / "submitit").glob("*_log.err"))
    assert [p.name for p in logs] == [f"{two.job_id}_0_log.err", f"{two.job_id}_1_log.err"]
    rank1 = (tmp_path / "two" / "submitit" / f"{two.job_id}_1_log.out").read_text()
    assert "global_rank=0(2)" in two.log_tail(200)
    assert "global_rank=1(2)" in rank1 and "Job completed successfully" in rank1  # rank 1 ran too, to the end
    # the same global batch and seed: the two curves agree (see tests/test_distributed.py for the tolerance)
    for a, b in zip(one.metrics(), two.metrics()):
        assert abs(a["loss"] - b["loss"]) < 1e-3


def test_slurm_cancel_and_bad_partition(slurm, corpus, tmp_path):
    with pytest.raises(ValueError, match="slurm refused the job: .*invalid partition"):
        submit(quick(tmp_path / "x"), "pretrain", ClusterConfig(executor="slurm", partition="gpu-h100"),
               corpus=str(corpus), **RECIPE)
    job = submit(quick(tmp_path / "long", steps=100_000), "pretrain", SLURM, corpus=str(corpus), **RECIPE)
    deadline = time.monotonic() + 90
    while not job.metrics() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job.status() == "RUNNING", job.log_tail()
    job.cancel()
    assert job.wait(timeout_s=60) == "CANCELLED"
    assert {s.rstrip("+") for s in sacct_states(job.job_id)} == {"CANCELLED"}  # sacct shortens "CANCELLED by 0"


def test_slurm_preempted_job_requeues_and_resumes(slurm, corpus, tmp_path):
    job = submit(quick(tmp_path / "pre", steps=200), "pretrain", SLURM, corpus=str(corpus), **RECIPE)
    deadline = time.monotonic() + 90
    while job.model_dir() is None and time.monotonic() < deadline:
        time.sleep(0.3)
    assert job.model_dir() is not None, job.log_tail()
    job.preempt()  # SIGTERM + SIGUSR2, as a cluster does: submitit requeues the job
    deadline = time.monotonic() + 30
    while job.status() != "PENDING" and time.monotonic() < deadline:  # RUNNING -> REQUEUED -> PENDING
        time.sleep(0.3)
    assert job.status() == "PENDING", job.log_tail()
    # Slurm holds a requeued job for about two minutes (BeginTime); release it now rather than wait
    subprocess.run(["scontrol", "update", f"jobid={job.job_id}", "StartTime=now"], check=True)
    summary = job.result(timeout_s=150)
    assert summary["steps"] == 200
    assert "Requeued job" in job.log_tail(100)
    shown = subprocess.run(["scontrol", "show", "job", job.job_id], capture_output=True, text=True).stdout
    assert "Restarts=1" in shown
    steps = [r["step"] for r in job.metrics()]
    assert steps == list(range(2, 201, 2))  # resumed from the checkpoint: every step logged once


# ---- LoRA SFT as a job, and previewing a Slurm configuration -------------------------------------------

def test_lora_sft_runs_as_a_job_and_writes_adapter_and_merged_model(tiny_model, char_tokenizer, tmp_path, capsys):
    from llada_play.model.checkpoint import load_model, save_model

    base = save_model(tiny_model, char_tokenizer, tmp_path / "base")
    rows = [{"prompt": f"{a}+{b}=", "response": str(a + b)} for a in range(6) for b in range(6)]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "lora"
    code = main(["submit", "--executor", "local", "--wait", "--", "sft", "--model", str(base), "--data", str(data),
                 "--lora-rank", "2", "--steps", "6", "--warmup", "1", "--batch-size", "8", "--log-every", "2",
                 "--out", str(out)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert code == 0, lines
    assert lines[-1]["status"] == "COMPLETED" and lines[-1]["model"] == str(out / "final")
    assert (out / "adapter" / "adapter_config.json").exists()
    assert json.loads((out / "adapter" / "adapter_config.json").read_text())["r"] == 2
    assert [r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())] == [2, 4, 6]
    merged, _ = load_model(out / "final")
    assert not any("lora" in name for name in merged.state_dict())  # merged: a plain model again
    changed = [n for n, p in merged.state_dict().items() if not torch.equal(p, tiny_model.state_dict()[n])]
    assert changed, "merging the trained adapters changed no weight"
    adapted, _ = load_model(out / "adapter")  # the adapter directory opens with its base attached
    from peft import PeftModel

    assert isinstance(adapted, PeftModel)
    lora = {n: p for n, p in adapted.state_dict().items() if ".lora_" in n}
    assert lora and all(p.shape[0 if ".lora_A." in n else 1] == 2 for n, p in lora.items())  # rank 2
    assert all(p.abs().sum() > 0 for n, p in lora.items() if ".lora_B." in n)  # trained: B starts at zero
    base_weights = {n.replace("base_model.model.", "", 1).replace(".base_layer", ""): p
                    for n, p in adapted.state_dict().items() if ".lora_" not in n}
    assert base_weights.keys() == tiny_model.state_dict().keys()
    assert all(torch.equal(p, tiny_model.state_dict()[n]) for n, p in base_weights.items())  # the base, frozen
    ids = torch.randint(0, len(char_tokenizer), (2, 12))
    with torch.no_grad():
        adapted_logits = adapted(ids).logits
        assert torch.allclose(adapted_logits, merged(ids).logits, atol=1e-5)  # the adapters are what was merged
        assert not torch.allclose(adapted_logits, tiny_model(ids).logits, atol=1e-3)


def test_slurm_settings_preview_without_submitting():
    from llada_play.cli import build_parser, cluster_config_from_args
    from llada_play.jobs import sbatch_script, submit_command_line

    cluster = ClusterConfig(executor="slurm", partition="gpu", nodes=2, tasks_per_node=4, gpus_per_node=4,
                            cpus_per_task=8, account="myproj", time_min=240, sbatch={"qos": "high"},
                            setup=["module load cuda/12.4"])
    script = sbatch_script(cluster, "llada-sft", "runs/x/submitit")
    for line in ["#SBATCH --partition=gpu", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4",
                 "#SBATCH --gpus-per-node=4", "#SBATCH --cpus-per-task=8", "#SBATCH --account=myproj",
                 "#SBATCH --time=240", "#SBATCH --qos=high", "#SBATCH --job-name=llada-sft", "module load cuda/12.4"]:
        assert line in script, line
    assert script.count("--open-mode=append") == 1  # requeued jobs append to their logs; said once
    command = submit_command_line(["sft", "--lora-rank", "16", "--out", "runs/x"], cluster)
    words = shlex.split(command)
    assert words[:2] == ["llada-play", "submit"]
    args = build_parser().parse_args(words[1:])  # the printed command parses back to the same settings
    assert cluster_config_from_args(args) == cluster
    assert args.training[-5:] == ["sft", "--lora-rank", "16", "--out", "runs/x"]
