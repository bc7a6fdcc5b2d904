"""Training runs as jobs: on this machine (a subprocess) or on a Slurm cluster, through ``submitit``.

    from llada_play.jobs import ClusterConfig, submit
    job = submit(TrainConfig(output_dir="runs/j", max_steps=200), recipe="pretrain", corpus="data/shakespeare",
                 cluster=ClusterConfig(executor="slurm", partition="gpu", gpus_per_node=4, tasks_per_node=4))
    job.status(); job.log_tail(); job.metrics(); job.cancel(); job.result(); job.model_dir()

A job runs one entry of :data:`llada_play.runs.RUNS` (pretrain/train, sft, eval, reversal, puzzle,
masking-ratio), from its config and options (``submit``, ``submit_sweep``) or from its ``llada-play`` command
line (``submit_command``). Several tasks per node (and several nodes) train with torch.distributed, one process
per task, as Slurm's srun starts them (the runs that train one model: train and sft). Every job continues from
the latest checkpoints in its output directory, so a preempted job that Slurm requeues picks up where it was.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import submitit

from . import runs
from .flags import config_to_argv
from .training.trainer import resume_point

EXECUTORS = ("local", "slurm")
FINISHED_OK = {"COMPLETED"}
RUNNING = {"PENDING", "RUNNING", "REQUEUED", "COMPLETING", "CONFIGURING", "RESIZING", "SUSPENDED", "READY"}


def _squeue_state(job_id: str, tries: int = 2) -> str | None:
    """The controller's state of a queued or running job, None once it has left the queue, or "UNKNOWN" when
    the controller did not answer (a busy slurmctld times out): that is no evidence that the job has ended,
    and accounting may still hold an earlier attempt's FAILED for a requeued job."""
    for _ in range(tries):
        try:
            done = subprocess.run(["squeue", "--noheader", "--jobs", job_id, "--format", "%T"],
                                  capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None and done.returncode == 0:
            states = done.stdout.split()
            return states[0] if states else None
        if done is not None and "Invalid job id" in done.stderr:
            return None  # the controller no longer knows the job: it has left the queue
        time.sleep(0.5)
    return "UNKNOWN"


class JobFailed(RuntimeError):
    """A job ended without success; the message carries its state and the tail of its log."""


@dataclass
class ClusterConfig:
    """Where and how a job runs. ``local`` needs nothing; ``slurm`` submits with sbatch (through submitit)."""

    executor: str = "local"  # local: a subprocess on this machine; slurm: sbatch through submitit
    tasks_per_node: int = 1  # training processes per node (torch.distributed when nodes * tasks > 1)
    nodes: int = 1  # nodes (Slurm)
    gpus_per_node: int = 0  # GPUs per node
    cpus_per_task: int | None = None  # CPUs per training process (Slurm)
    partition: str | None = None  # Slurm partition
    account: str | None = None  # Slurm account
    time_min: int = 60  # time limit in minutes
    sbatch: dict[str, str] = field(default_factory=dict)  # extra sbatch option, e.g. qos=high (repeatable)
    setup: list[str] = field(default_factory=list)  # shell line run first: module load, conda activate... (repeatable)
    folder: str | None = None  # submitit's logs and pickles (default: <output_dir>/submitit)
    max_requeues: int = 3  # preemptions/time-outs a job survives by requeueing itself

    def __post_init__(self):
        if self.executor not in EXECUTORS:
            raise ValueError(f"unknown executor {self.executor!r}; choose one of {EXECUTORS}")
        for name in ("tasks_per_node", "nodes", "time_min"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.gpus_per_node < 0:
            raise ValueError(f"gpus_per_node must be >= 0, got {self.gpus_per_node}")
        if self.executor == "local" and self.nodes != 1:
            raise ValueError("the local executor runs on this machine only: nodes must be 1 (use executor='slurm')")

    @property
    def world_size(self) -> int:
        return self.nodes * self.tasks_per_node


# ClusterConfig's flags (``llada-play submit``) are its fields'; the short spellings the README uses stay aliases
CLUSTER_ALIASES = {"--time": "time_min"}


def check_compatible(config, cluster: ClusterConfig, batch_size: int | None = None) -> None:
    """Refuse, before submitting, what would only fail on the cluster (``config``: a TrainConfig, or any run's
    config with a ``device``)."""
    gpu = str(getattr(config, "device", "cpu")).startswith("cuda")
    if getattr(config, "ddp_backend", "auto") == "nccl" and cluster.gpus_per_node == 0:
        raise ValueError("ddp_backend 'nccl' needs GPUs, but the job asks for gpus_per_node=0 "
                         "(ask for GPUs, or use ddp_backend 'gloo' / 'auto' on CPUs)")
    if gpu and cluster.gpus_per_node == 0:
        raise ValueError(f"device {config.device!r} needs GPUs, but the job asks for gpus_per_node=0")
    if gpu and cluster.tasks_per_node > cluster.gpus_per_node:
        raise ValueError(f"{cluster.tasks_per_node} GPU processes per node need as many GPUs "
                         f"(gpus_per_node={cluster.gpus_per_node})")
    if batch_size is not None and batch_size % cluster.world_size:
        raise ValueError(f"batch size {batch_size} is not divisible by the {cluster.world_size} training "
                         "processes; the global batch is split evenly between them")


# ---- what runs inside the job -------------------------------------------------------------------------

def _join_process_group_env() -> None:
    """Export RANK/WORLD_SIZE/MASTER_* from submitit's view of the job when it has several tasks."""
    env = submitit.JobEnvironment()
    if env.num_tasks > 1 and "RANK" not in os.environ:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def _run_until_cancelled(run: Callable[[], object]) -> object:
    """Run a job's work; a cancel (SIGINT) ends it with one line in its log instead of a traceback."""
    from .training import distributed

    _join_process_group_env()
    try:
        return run()
    except KeyboardInterrupt:
        print("stopped by a cancel (SIGINT); submitting the same run again resumes from its latest saved step",
              file=sys.stderr, flush=True)
        raise SystemExit(130) from None  # submitit records no result, as for any killed job
    finally:
        distributed.shutdown()


class RecipeJob(submitit.helpers.Checkpointable):
    """Runs the run ``recipe`` of :data:`llada_play.runs.RUNS` with ``config=..., resume=True, **options``.
    Checkpointable: on preemption submitit requeues this same object, which resumes from the latest checkpoint."""

    def __init__(self, recipe: str, config, options: dict):
        self.recipe, self.config, self.options = recipe, config, options

    def __call__(self):
        run = runs.find(self.recipe)
        return _run_until_cancelled(lambda: run(self.config, resume=True, **self.options))


class CommandJob(submitit.helpers.Checkpointable):
    """Runs a run's ``llada-play`` command line (with ``--resume``) inside the job, printing what the command
    prints; errors propagate so that the job fails with its traceback in the log."""

    def __init__(self, argv: list[str]):
        self.argv = list(argv)

    def __call__(self):
        return _run_until_cancelled(lambda: runs.run_command(self.argv, resume=True))


# ---- the handle ----------------------------------------------------------------------------------------

def _end_local_job(pid: int, grace_s: float) -> None:
    """Stop a local job: SIGINT to its training processes (whose output goes to the job's log), then SIGKILL to
    whatever is left after ``grace_s`` (SIGINT is ignored by processes that a non-interactive shell started in
    the background, e.g. under some CI runners), then the same for the controller, which by then normally has
    ended by itself. Interrupting the controller first, as submitit does, makes it print a KeyboardInterrupt
    traceback into the caller's terminal or notebook."""
    import signal

    import psutil

    try:
        controller = psutil.Process(pid)
        tasks = controller.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    _stop(tasks, signal.SIGINT, grace_s)
    _stop([controller], signal.SIGTERM, grace_s)


def _stop(processes: list, sig: int, grace_s: float) -> None:
    """Send ``sig`` to the processes, then SIGKILL to those still alive after ``grace_s``."""
    import psutil

    for process in processes:
        try:
            process.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace_s)


def _tail(path: Path, lines: int) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 200 * lines))
        text = f.read().decode("utf-8", errors="replace")
    # tqdm redraws with carriage returns; keep the last drawing of each line
    rows = [r.rsplit("\r", 1)[-1] for r in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(rows[-lines:])


class JobHandle:
    """A submitted training job: status, log tail, metrics, cancel, result and the trained model."""

    def __init__(self, job, output_dir: str | Path, cluster: ClusterConfig, name: str = "",
                 resumes_from: int | None = None):
        self.job, self.output_dir, self.cluster, self.name = job, Path(output_dir), cluster, name
        self.resumes_from = resumes_from  # the step of an earlier run's checkpoint it continues from, if any
        self._cancelled = False

    def __repr__(self) -> str:
        return f"JobHandle({self.cluster.executor} job {self.job_id}, {self.status()}, {self.output_dir})"

    @property
    def job_id(self) -> str:
        return str(self.job.job_id)

    def status(self) -> str:
        """PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT... (Slurm's words).

        On Slurm the live state comes from the controller (squeue) while the job is queued or running:
        accounting (sacct, which submitit reads) hears of a start only when slurmdbd has caught up, and can
        say PENDING for a job that has been running for a while. Once the job has left the queue, sacct has
        the final word.
        """
        if self.cluster.executor == "slurm":
            state = _squeue_state(self.job.job_id) or self.job.watcher.get_state(self.job.job_id, mode="force")
            state = state.upper()
            return "CANCELLED" if state.startswith("CANCELLED") else state
        state = self.job.state  # local: RUNNING, FINISHED or INTERRUPTED (killed by a signal)
        if state == "RUNNING":
            return "RUNNING"
        if self._cancelled:
            return "CANCELLED"
        if state == "FINISHED" and self.job.paths.result_pickle.exists():
            outcome, _ = submitit.core.utils.pickle_load(self.job.paths.result_pickle)
            return "COMPLETED" if outcome == "success" else "FAILED"
        return "FAILED"

    def done(self) -> bool:
        return self.status() not in RUNNING | {"UNKNOWN"}

    def log_paths(self) -> tuple[Path, Path]:
        """stdout and stderr of rank 0."""
        return self.job.paths.stdout, self.job.paths.stderr

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of rank 0's output and of its error stream (progress bars, warnings, tracebacks)."""
        out, err = (_tail(p, lines) for p in self.log_paths())
        return "\n".join(part for part in (out.strip("\n"), err.strip("\n")) if part)

    def metrics(self) -> list[dict]:
        """The rows of the run's metrics.jsonl so far (step, loss, lr, ...)."""
        path = self.output_dir / "metrics.jsonl"
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line being written right now
                break
        return rows

    def cancel(self, grace_s: float = 10.0) -> bool:
        """Stop the job (Slurm: scancel; local: SIGINT, then SIGKILL to what is left after ``grace_s``); False,
        and nothing done, when the job has already ended (its state stays what it was, e.g. COMPLETED)."""
        if self.done():
            return False
        self._cancelled = True
        if self.cluster.executor == "local":
            _end_local_job(int(self.job.job_id), grace_s)
        else:
            self.job.cancel(check=False)
        return True

    def preempt(self) -> None:
        """Send the preemption signal (what a cluster does before taking the nodes back), for trying requeue."""
        self.job._interrupt()

    def wait(self, timeout_s: float | None = None, poll_s: float = 1.0,
             on_poll: Callable[["JobHandle"], None] | None = None) -> str:
        """Block until the job ends (or ``timeout_s``), calling ``on_poll(self)`` every ``poll_s``; returns the
        final status."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            status = self.status()
            if on_poll is not None:
                on_poll(self)
            if status not in RUNNING | {"UNKNOWN"}:
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {self.job_id} still {status} after {timeout_s} s\n{self.log_tail()}")
            time.sleep(poll_s)

    def result(self, timeout_s: float | None = None):
        """The recipe's summary (rank 0's); raises :class:`JobFailed` with the log tail if the job failed."""
        status = self.wait(timeout_s)
        if status not in FINISHED_OK:
            raise JobFailed(f"job {self.job_id} ended {status}; the end of its log:\n{self.log_tail(30)}")
        try:
            return self.job.results()[0]  # rank 0's (every task of a job returns one)
        except Exception as err:  # noqa: BLE001 - submitit re-raises the job's own error
            raise JobFailed(f"job {self.job_id} failed: {err}\n{self.log_tail(30)}") from err

    def model_dir(self) -> Path | None:
        """The trained model: ``final/`` once the job has finished, else the latest checkpoint (or None)."""
        final = self.output_dir / "final"
        if (final / "config.json").exists():
            return final
        intact, _ = resume_point(self.output_dir)  # a damaged newest state is passed over, as resume does
        return intact


# ---- submitting ----------------------------------------------------------------------------------------

def make_executor(cluster: ClusterConfig, folder: Path, name: str = "llada-play"):
    """A submitit executor for the cluster settings (LocalExecutor or SlurmExecutor)."""
    folder.mkdir(parents=True, exist_ok=True)
    if cluster.executor == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=cluster.time_min, tasks_per_node=cluster.tasks_per_node,
                                   gpus_per_node=cluster.gpus_per_node)
        return executor
    if shutil.which("sbatch") is None:
        raise ValueError("executor 'slurm' needs Slurm's sbatch on PATH (this machine has none); "
                         "use executor='local', or scripts/local-slurm.sh for a test cluster")
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=cluster.max_requeues, python=sys.executable)
    executor.update_parameters(**slurm_parameters(cluster, name))
    return executor


def slurm_parameters(cluster: ClusterConfig, name: str = "llada-play") -> dict:
    """submitit's SlurmExecutor parameters for the cluster settings (they become the #SBATCH lines)."""
    params = dict(job_name=name, time=cluster.time_min, nodes=cluster.nodes, ntasks_per_node=cluster.tasks_per_node,
                  # submitit itself opens the logs with --open-mode=append: a requeued job's log keeps what came before
                  additional_parameters=dict(cluster.sbatch), setup=list(cluster.setup),
                  signal_delay_s=60, stderr_to_stdout=False)
    if cluster.gpus_per_node:
        params["gpus_per_node"] = cluster.gpus_per_node
    for key in ("cpus_per_task", "partition", "account"):
        if getattr(cluster, key) is not None:
            params[key] = getattr(cluster, key)
    return params


def sbatch_script(cluster: ClusterConfig, name: str = "llada-play", folder: str | Path = "runs/job/submitit") -> str:
    """The batch script submitit would hand to sbatch for these settings, without submitting anything (sbatch
    need not be installed): to review a cluster configuration before using it."""
    from submitit.slurm.slurm import _make_sbatch_string

    command = f"{sys.executable} -u -m submitit.core._submit {Path(folder) / '%j'}"
    return _make_sbatch_string(command=command, folder=str(folder), **slurm_parameters(cluster, name))


def submit_command_line(argv: list[str], cluster: ClusterConfig) -> str:
    """The ``llada-play submit ...`` command line that runs ``argv`` (a run's command line) with these settings:
    a flag for each setting that differs from ClusterConfig's defaults (``--executor`` always; ``--time`` as the
    README writes it)."""
    import shlex

    spelling = {field_name: flag for flag, field_name in CLUSTER_ALIASES.items()}
    opts = config_to_argv(cluster, always=["executor"], spelling=spelling)
    return f"llada-play submit {shlex.join(opts)} -- {shlex.join(argv)}"


def _submit_all(executor, jobs: list, cluster: ClusterConfig) -> list:
    try:
        if len(jobs) == 1:
            return [executor.submit(jobs[0])]
        with executor.batch():  # one job array on Slurm
            futures = [executor.submit(j) for j in jobs]
        return futures
    except submitit.core.utils.FailedJobError as err:
        # sbatch refused it (unknown partition or account, too many GPUs...): its own words, one line each
        words = [line for line in str(err).splitlines() if "error" in line.lower()] or [str(err)]
        raise ValueError(f"{cluster.executor} refused the job: " + " | ".join(w.strip() for w in words[:3])) from err


def submit(config, recipe: str = "pretrain", cluster: ClusterConfig | None = None, **options) -> JobHandle:
    """Run the run ``recipe`` of :data:`llada_play.runs.RUNS` with ``config`` (its config class: a TrainConfig for
    pretrain and sft, a ReversalConfig for reversal...) and the recipe's other keyword ``options`` (e.g.
    ``corpus``, ``preset``, ``batch_size``) as a job; returns its :class:`JobHandle` at once."""
    return submit_sweep(config, [{}], recipe, cluster, **options)[0]


def sweep_grid(**axes) -> list[dict]:
    """Every combination of the axes: ``sweep_grid(seed=[0, 1], objective=["pretrain", "autoregressive"])``."""
    names = list(axes)
    return [dict(zip(names, values)) for values in itertools.product(*(axes[n] for n in names))]


def _variant_name(variant: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in variant.items()) or "run"


def _needs_output_dir(run: runs.Run, config) -> None:
    if getattr(config, "output_dir", None) is None:
        raise ValueError(f"{run.name} as a job needs an output_dir (its results and the job's logs go there)")


def _check_run(run: runs.Run, config, cluster: ClusterConfig, batch_size: int | None) -> None:
    """What a run's job would only fail with later: no output folder, several processes for a run that trains
    in one, settings the cluster cannot give."""
    _needs_output_dir(run, config)
    if not run.processes and cluster.world_size > 1:
        raise ValueError(f"{run.name} runs in one process; a job of {cluster.world_size} tasks would run it "
                         f"{cluster.world_size} times over (give tasks_per_node=1 and nodes=1)")
    check_compatible(config, cluster, batch_size)


def _run_config(run: runs.Run, config):
    """``config`` as the run's config class (a dict of its fields is read too)."""
    if isinstance(config, dict):
        config = run.config.from_dict(config) if hasattr(run.config, "from_dict") else run.config(**config)
    if not isinstance(config, run.config):
        raise ValueError(f"recipe {run.name!r} takes a {run.config.__name__}, got {type(config).__name__}")
    return config


def submit_sweep(config, variants: list[dict], recipe: str = "pretrain", cluster: ClusterConfig | None = None,
                 **options) -> list[JobHandle]:
    """One job per variant of the run ``recipe``, as a single job array on Slurm. A variant overrides fields of
    the config (``seed``, ``objective``, ``lr``, ``steps``...) or the recipe's options (``preset``...); each
    writes to ``<config.output_dir>/<k=v,...>`` unless it is the only one. Unknown names are refused here."""
    cluster = cluster or ClusterConfig()
    run = runs.find(recipe)
    config = _run_config(run, config)
    if not variants:
        raise ValueError("a sweep needs at least one variant")
    config_fields = {f.name for f in dataclasses.fields(run.config)}
    option_fields = run.option_names()
    for names in (options, *variants):
        unknown = sorted(set(names) - config_fields - option_fields)
        if unknown:
            raise ValueError(f"{run.name} has no setting(s) {unknown}; its config's are {sorted(config_fields)}"
                             + (f", its options {sorted(option_fields)}" if option_fields else ""))
    _needs_output_dir(run, config)
    quiet = {"progress": False} if "progress" in config_fields else {}
    jobs, dirs = [], []
    for variant in variants:
        own = {k: v for k, v in variant.items() if k in config_fields}
        out = Path(config.output_dir) if len(variants) == 1 else Path(config.output_dir) / _variant_name(variant)
        run_config = dataclasses.replace(config, **own, output_dir=str(out), **quiet)
        run_options = {**options, **{k: v for k, v in variant.items() if k not in config_fields}}
        _check_run(run, run_config, cluster, run_options.get("batch_size"))
        jobs.append(RecipeJob(run.name, run_config, run_options))
        dirs.append(out)
    folder = Path(cluster.folder or Path(config.output_dir) / "submitit")
    earlier = [_latest_step(d) for d in dirs]  # before the jobs start writing their own checkpoints
    futures = _submit_all(make_executor(cluster, folder, f"llada-{recipe}"), jobs, cluster)
    return [JobHandle(f, d, cluster, _variant_name(v), resumes_from=step)
            for f, d, v, step in zip(futures, dirs, variants, earlier)]


def _latest_step(output_dir: Path) -> int | None:
    """The step of the newest intact checkpoint already in a run folder (a job there resumes from it), else None."""
    intact, _ = resume_point(output_dir)
    return int(intact.name.split("-")[1]) if intact is not None else None


def submit_command(argv: list[str], cluster: ClusterConfig | None = None) -> JobHandle:
    """Run a run's ``llada-play`` command line (``["train", "--data", ...]``, any run of
    :data:`llada_play.runs.RUNS`) as a job. It is parsed here first, so that a typo or a bad setting fails now
    rather than on the cluster; the job writes its logs under the run's output directory."""
    cluster = cluster or ClusterConfig()
    run, args, (config, options) = runs.parse_command(list(argv))
    _check_run(run, config, cluster, options.get("batch_size"))
    out = Path(config.output_dir)
    folder = Path(cluster.folder or out / "submitit")
    quiet = "progress" in {f.name for f in dataclasses.fields(run.config)} and "--no-progress" not in argv
    argv = [*argv, "--no-progress"] if quiet else list(argv)
    futures = _submit_all(make_executor(cluster, folder, f"llada-{argv[0]}"), [CommandJob(argv)], cluster)
    return JobHandle(futures[0], out, cluster, argv[0])
