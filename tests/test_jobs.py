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


# ---- every run of the table, as a job and as a sweep ------------------------------------------------------

@pytest.fixture(scope="module")
def small_model(tmp_path_factory, char_tokenizer):
    """A tiny model of the character tokenizer, and rows and text it can be fine-tuned and evaluated on."""
    from llada_play.model.checkpoint import save_model
    from llada_play.model.config import config_from_preset
    from llada_play.model.modeling import LladaForMaskedLM
    from llada_play.model.tokenizer import special_token_ids

    folder = tmp_path_factory.mktemp("small")
    tokenizer = char_tokenizer
    torch.manual_seed(0)
    model = LladaForMaskedLM(config_from_preset("tiny", **special_token_ids(tokenizer)))
    rows = folder / "rows.jsonl"
    rows.write_text("".join(json.dumps({"prompt": f"{a}+{b}=", "response": str(a + b)}) + "\n"
                            for a in range(4) for b in range(4)))
    text = folder / "held.txt"
    text.write_text("to be, or not to be, that is the question.\n" * 20)
    return {"model": str(save_model(model, tokenizer, folder / "model")), "rows": str(rows), "text": str(text)}


def tiny_settings(name: str, out: Path, corpus: Path, small: dict):
    """(config, options, what the run writes into its folder) of each run, at settings that take seconds."""
    from llada_play.experiments.masking_ratio import MaskingRatioConfig
    from llada_play.experiments.puzzle import PuzzleConfig
    from llada_play.experiments.reversal_experiment import ReversalConfig
    from llada_play.recipes import EvalConfig

    train = dict(output_dir=str(out), max_steps=4, warmup_steps=2, log_every=2, save_every=4)
    twins = dict(output_dir=str(out), preset="tiny", steps=2, batch_size=4, seeds=[0], models=["diffusion"])
    return {
        "train": (TrainConfig(**train), dict(corpus=str(corpus), **RECIPE), "summary.json"),
        "sft": (TrainConfig(objective="sft", **train),
                dict(model_dir=small["model"], data=small["rows"], batch_size=8), "summary.json"),
        "eval": (EvalConfig(data=small["text"], model_dir=small["model"], output_dir=str(out), seq_len=16,
                            batches=2, batch_size=4, samples=1, sample_length=32), {}, "evaluation.json"),
        "reversal": (ReversalConfig(people_per_subset=3, train_templates=2, test_templates=1, eval_rows=2,
                                    distractors=2, mc_samples=2, **twins), {}, "results.json"),
        "puzzle": (PuzzleConfig(size=4, givens=6, train_puzzles=12, test_puzzles=4, **twins), {}, "results.json"),
        "masking-ratio": (MaskingRatioConfig(steps=2, seeds=2, corpus=str(corpus), output_dir=str(out)), {},
                          "results.json"),
    }[name]


VARIED = {"train": "seed", "sft": "seed", "eval": "seed", "reversal": "data_seed", "puzzle": "data_seed",
          "masking-ratio": "seeds"}


@pytest.mark.parametrize("name", ["train", "sft", "eval", "reversal", "puzzle", "masking-ratio"])
def test_every_run_runs_as_a_job_and_as_a_sweep(name, corpus, small_model, tmp_path):
    """Each entry of runs.RUNS: its command line as a job (what `llada-play submit -- <run> ...` does) and a sweep
    of two variants of one setting, side by side on the local executor; each run writes into its own folder."""
    from llada_play.jobs import submit_command
    from llada_play.runs import RUNS, build_parser

    run = RUNS[name]
    config, options, written = tiny_settings(name, tmp_path / "cli", corpus, small_model)
    argv = run.argv(config, **options)  # the settings' command line parses back to the same settings
    assert run.settings(build_parser().parse_args(argv)) == (config, {**_option_defaults(run), **options})
    command_job = submit_command(argv)
    sweep_config, _, _ = tiny_settings(name, tmp_path / "sweep", corpus, small_model)
    key = VARIED[name]
    values = [2, 3] if key == "seeds" else [0, 1]
    sweep = submit_sweep(sweep_config, sweep_grid(**{key: values}), name, **options)
    assert command_job.wait(timeout_s=240) == "COMPLETED", command_job.log_tail(40)
    assert (tmp_path / "cli" / written).exists() and command_job.output_dir == tmp_path / "cli"
    for handle, value in zip(sweep, values):
        result = handle.result(timeout_s=240)
        assert handle.output_dir == tmp_path / "sweep" / f"{key}={value}"
        assert (handle.output_dir / written).exists(), handle.log_tail(40)
        if "config" in result:  # the variant's setting is the one the run used
            assert result["config"][key] == value


def _option_defaults(run) -> dict:
    import dataclasses

    return {f.name: f.default for f in dataclasses.fields(run.options)
            if f.default is not dataclasses.MISSING} if run.options else {}


def test_a_run_is_refused_settings_it_does_not_have_and_processes_it_cannot_use(tmp_path):
    from llada_play.experiments.puzzle import PuzzleConfig
    from llada_play.jobs import submit_command

    with pytest.raises(ValueError, match=r"train has no setting\(s\) \['corpse'\]"):
        submit(quick(tmp_path), "pretrain", corpse="x")
    with pytest.raises(ValueError, match="recipe 'puzzle' takes a PuzzleConfig, got TrainConfig"):
        submit(quick(tmp_path), "puzzle")
    with pytest.raises(ValueError, match="puzzle runs in one process"):
        submit(PuzzleConfig(output_dir=str(tmp_path)), "puzzle", ClusterConfig(tasks_per_node=2))
    with pytest.raises(ValueError, match="eval as a job needs an output_dir"):
        submit_command(["eval", "--data", "x"])
    with pytest.raises(ValueError, match="unknown recipe 'sample'"):
        submit_command(["sample", "--prompt", "x"])


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
