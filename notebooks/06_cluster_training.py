# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. Training as a job: this machine first, a Slurm cluster next
#
# `llada_play.jobs` runs any training recipe as a **job** through `submitit`: a subprocess on this machine
# (`executor="local"`, the default here) or a Slurm batch job (`executor="slurm"`), with the same code, the same
# configuration and the same handle to follow it. This notebook runs every kind of job on the local executor:
#
# 1. a small pre-training run on `data/shakespeare`, followed live by the `JobMonitor` widget,
# 2. a job that is cancelled, and a job that fails on a bad configuration,
# 3. the same run with two DDP processes (`tasks_per_node=2`, gloo on CPU), and a sweep of two seeds,
# 4. the trained checkpoint loaded into the denoising player,
#
# and ends with the Slurm configuration you would use on a real cluster, printed, not submitted.
#
# *Run time on a 2-core CPU: about 1.5 minutes
# (with `LLADA_PLAY_QUICK=1`, as `make test` runs it: about 1.5 minutes; measured 2026-11-30).*

# %%
from llada_play.ui.notebook import setup

# No loading bars in the outputs; every figure and widget stored with a PNG of it as well (GitHub, nbviewer and
# HTML exports run no JavaScript); torch seeded with 0. ROOT: the project's folder (data/ is in it). QUICK: the
# test suite asks for shrunken work (LLADA_PLAY_QUICK=1).
ROOT, QUICK = setup()

import tempfile
from pathlib import Path
from IPython.display import display
from llada_play.model.checkpoint import DEFAULT_MODEL_DIR
from llada_play.ui.job_widgets import JobMonitor
from llada_play.jobs import ClusterConfig, JobFailed, submit, submit_sweep, sweep_grid
from llada_play.training.trainer import TrainConfig

RUNS = Path(tempfile.mkdtemp(prefix="cluster-nb-"))
STEPS = 40 if QUICK else 200
# the tiny preset with the shipped model's tokenizer (no tokenizer training inside the jobs)
RECIPE = dict(corpus=str(ROOT / "data/shakespeare"), preset="tiny", tokenizer_dir=str(DEFAULT_MODEL_DIR),
              seq_len=64, batch_size=8, eval_batches=4)

def config(name, steps=STEPS, **overrides):
    return TrainConfig(output_dir=str(RUNS / name), max_steps=steps, lr=3e-3, warmup_steps=10, log_every=5,
                       save_every=50, **overrides)

print(f"{STEPS} steps per run")

# %% [markdown]
# ## A job on this machine, followed live
#
# `submit` returns at once with a `JobHandle` (`status()`, `metrics()`, `log_tail()`, `cancel()`, `result()`,
# `model_dir()`). `JobMonitor(handle)` draws them: the status line, the loss read from the run's `metrics.jsonl`
# as it grows, the end of the job's log and a Cancel button. `monitor.show()` displays it; `await
# monitor.follow_async()` refreshes until the job ends, so the cell finishes with the final state, and Cancel
# works meanwhile: the cell waits on the kernel's event loop, which hands button clicks through (a plain
# `monitor.follow()` blocks the kernel, and a click would wait for the cell to end; it is for scripts).
# `monitor.start()` refreshes from a background thread instead and returns at once. The stored output also holds
# a picture of the final loss curve, for readers without a kernel.

# %%
job = submit(config("pretrain"), "pretrain", ClusterConfig(executor="local"), **RECIPE)
monitor = JobMonitor(job)
monitor.show()
status = await monitor.follow_async()
summary = job.result()
print(f"job {job.job_id}: {status}; {len(job.metrics())} logged points, last loss {job.metrics()[-1]['loss']:.3f}")
held_out = summary["metrics"]
print(f"held-out masked-token loss {held_out['held_out_before_training']['masked_token_loss']:.2f} before, "
      f"{held_out['held_out']['masked_token_loss']:.2f} after training (unigram baseline "
      f"{held_out['unigram_held_out']:.2f}); model in {job.model_dir().relative_to(RUNS)}")

# %% [markdown]
# ## Cancelling a job
#
# A second job asks for 100,000 steps. As soon as it has logged its first metrics, the monitor's Cancel button
# is clicked (here from code, `cancel_button.click()`, the same callback as a click in the page): the handle
# cancels the job (a signal to the local process, `scancel` on Slurm) and the monitor shows the final state.

# %%
import time

long_job = submit(config("cancelled", steps=100_000), "pretrain", **RECIPE)
long_monitor = JobMonitor(long_job, poll_s=0.5)
long_monitor.show()
while not long_job.metrics() and not long_monitor.done():
    time.sleep(0.5)
    long_monitor.refresh()
print("before cancelling:", long_monitor.refresh(), "at step", long_job.metrics()[-1]["step"])
long_monitor.cancel_button.click()
print("after cancelling: ", await long_monitor.follow_async(timeout_s=60), "; final model written:",
      (RUNS / "cancelled" / "final").exists())

# %% [markdown]
# ## A job that fails
#
# Settings that only the recipe can check fail inside the job. Here the sequence length (1,024) is above the
# tiny preset's context: the job ends `FAILED`, the monitor shows the error with the end of the log, and
# `result()` raises `JobFailed` carrying the same log tail, which we catch and print (the cell does not error).

# %%
bad_job = submit(config("failing"), "pretrain", **{**RECIPE, "seq_len": 1024})
bad_monitor = JobMonitor(bad_job, poll_s=0.5)
bad_monitor.show()
await bad_monitor.follow_async()
try:
    bad_job.result()
except JobFailed as err:
    message = str(err)
    print(message.splitlines()[0])
    print("the cause, from the log:", next(line for line in message.splitlines() if line.startswith("ValueError")))

# %% [markdown]
# ## Two processes: data-parallel training (DDP)
#
# `tasks_per_node=2` starts two training processes, as Slurm's `srun` would; they join a torch.distributed
# group (gloo on CPU), each computes the gradient on half of every batch, and DDP averages them. The whole batch
# and its masks are drawn identically on both ranks, so the run follows the one-process run above except for
# floating-point rounding (the gradient is summed in another order), which can grow over the steps. The gap
# between the two logged loss curves at the first logged step and the largest gap are measured below.

# %%
ddp_job = submit(config("ddp"), "pretrain", ClusterConfig(tasks_per_node=2), **RECIPE)
ddp_monitor = JobMonitor(ddp_job)
ddp_monitor.show()
print("2-process job:", await ddp_monitor.follow_async())
one, two = ([r["loss"] for r in j.metrics()] for j in (job, ddp_job))
gap = max(abs(a - b) for a, b in zip(one, two))
print(f"{len(two)} logged points; loss difference to the 1-process run at step {job.metrics()[0]['step']}: "
      f"{abs(one[0] - two[0]):.1e}, largest {gap:.1e} ({gap / min(one):.1e} relative)")
print("two ranks started:", "global_rank=0(2)" in ddp_job.log_tail(400))

# %% [markdown]
# ## A sweep: two seeds as one job array
#
# `submit_sweep` submits one job per variant (a single job array on Slurm); each writes to its own directory.

# %%
import plotly.graph_objects as go

sweep = submit_sweep(config("sweep"), sweep_grid(seed=[0, 1]), "pretrain", **RECIPE)
fig = go.Figure()
for handle in sweep:
    print(f"{handle.name}: {handle.wait()}, final training loss {handle.metrics()[-1]['loss']:.3f}, "
          f"held-out {handle.result()['metrics']['held_out']['masked_token_loss']:.3f}")
    rows = handle.metrics()
    fig.add_scatter(x=[r["step"] for r in rows], y=[r["loss"] for r in rows], mode="lines", name=handle.name)
fig.update_layout(title="Training loss of the two seeds", xaxis_title="step", yaxis_title="loss",
                  template="plotly_white", height=320)
fig.show()

# %% [markdown]
# ## The result, in the denoising player
#
# `job.model_dir()` is the trained model (its `final/` directory). It loads like any model and runs the same
# sampler. A tiny model after a few hundred steps is not expected to write well; judge the text below yourself.

# %%
from llada_play import TraceRecorder, generate
from llada_play.model.checkpoint import load_model
from llada_play.model.text import decode_generation, encode_prompt
from llada_play.ui.widgets import DenoisingPlayer

model, tokenizer = load_model(job.model_dir())
prompt = encode_prompt(tokenizer, "Romeo.\n")
recorder = TraceRecorder(tokenizer)
# sampled (temperature 1): greedy decoding of a model this young writes only the most frequent token, a newline
out = generate(model, prompt, steps=32, gen_length=32, block_length=16, temperature=1.0, seed=0, hooks=recorder)
print(decode_generation(tokenizer, out[0], prompt.shape[1]))
DenoisingPlayer(recorder.trace())

# %% [markdown]
# ## On a real cluster
#
# The same call with `executor="slurm"` submits through `sbatch` (it needs Slurm's `sbatch` on `PATH`; this
# notebook submits nothing). Below: a 2-node job with 4 GPU processes per node, and the batch script
# `submitit` would write for it (`jobs.sbatch_script`), then the equivalent command lines, including the LoRA
# fine-tuning of LLaDA-8B-Instruct on one GPU.

# %%
from llada_play.jobs import sbatch_script, submit_command_line

cluster = ClusterConfig(executor="slurm", partition="gpu", nodes=2, tasks_per_node=4, gpus_per_node=4,
                        cpus_per_task=8, account="myproj", time_min=240, sbatch={"qos": "high"},
                        setup=["module load cuda/12.4", "source ~/venvs/llada/bin/activate"])
import sys

script = sbatch_script(cluster, "llada-pretrain", "runs/big/submitit")
# submitit writes absolute paths and this machine's Python; shown relative to this folder and as plain `python`
print(script.replace(str(Path.cwd()) + "/", "").replace(sys.executable, "python"))

# %%
# NBVAL_CHECK_OUTPUT
print(submit_command_line(["train", "--data", "data/shakespeare", "--preset", "small", "--device", "cuda",
                           "--out", "runs/big"], cluster))
print()
lora_gpu = ClusterConfig(executor="slurm", partition="gpu", gpus_per_node=1, cpus_per_task=8, time_min=480)
print(submit_command_line(["sft", "--model", "GSAI-ML/LLaDA-8B-Instruct",
                           "--dtype", "bfloat16", "--device", "cuda", "--lora-rank", "16", "--data", "rows.jsonl",
                           "--out", "runs/llada-lora"], lora_gpu))

# %% [markdown]
# On the cluster, `handle.status()` reads Slurm's accounting (`sacct`) and `cancel()` runs `scancel`; every job
# runs its recipe with `resume=True`, so a job that Slurm preempts and requeues continues from its latest
# checkpoint (`tests/test_jobs.py` checks this on a one-node Slurm that `scripts/local-slurm.sh start` brings up).

# %% [markdown]
# ## Exercises
#
# 1. **A bigger allocation.** For 4 nodes with 8 GPU processes each, predict the number of training processes,
#    the `#SBATCH` lines for nodes, tasks and GPUs, and whether a global batch of 48 rows can be split between
#    the processes (and 64). Nothing is submitted. (Answer in the next cell, hidden in JupyterLab; run it.)

# %% jupyter={"source_hidden": true} tags=["answer"]
# NBVAL_CHECK_OUTPUT
# Answer 1: 32 processes; every process takes an equal share of the global batch, so it must divide evenly.
from llada_play.jobs import check_compatible

big = ClusterConfig(executor="slurm", partition="gpu", nodes=4, tasks_per_node=8, gpus_per_node=8)
print("training processes:", big.world_size)
print("\n".join(line for line in sbatch_script(big, "llada-big").splitlines()
                if any(key in line for key in ("--nodes", "--ntasks-per-node", "--gpus-per-node"))))
for rows in (48, 64):
    try:
        check_compatible(TrainConfig(output_dir="runs/big", device="cuda"), big, batch_size=rows)
        print(f"batch {rows}: accepted, {rows // big.world_size} rows per process")
    except ValueError as err:
        print(f"batch {rows}: refused before submitting: {err}")

# %% [markdown]
# 2. **A grid.** Predict how many jobs `sweep_grid(seed=[0, 1, 2], lr=[1e-3, 3e-3])` gives `submit_sweep`, and
#    the folder each writes to (`submit_sweep` names it after the variant). (Answer in the next cell.)

# %% jupyter={"source_hidden": true} tags=["answer"]
# NBVAL_CHECK_OUTPUT
# Answer 2: every combination, 3 x 2 = 6 jobs (one job array on Slurm), each in <output_dir>/<k=v,...>.
grid = sweep_grid(seed=[0, 1, 2], lr=[1e-3, 3e-3])
print(len(grid), "jobs:")
for variant in grid:
    print("  runs/grid/" + ",".join(f"{key}={value}" for key, value in variant.items()))
