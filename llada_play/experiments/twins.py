"""One skeleton for the twin experiments: models of one shape that differ in one thing (a masked diffusion model
and its autoregressive twin, or two masking schedules), trained for every seed on the same data, scored, and
written into one results file.

An experiment describes its part with a :class:`Twins` (its kinds, a fresh model, its training, its scores);
:func:`run_twins` does the rest:

- every (seed, kind) trains in ``<output_dir>/seed<seed>/<kind>/``; its model is saved in ``final/`` and its
  record in ``run.json`` (written once trained, again once scored);
- with ``resume`` (the same job restarted, e.g. after preemption) a kind already scored is kept as it is, a
  trained one is loaded and scored, and one in training continues from its latest checkpoint through the
  trainer's own resume;
- ``<output_dir>/results.json`` holds the config, the runs and what the experiment adds; each run's
  ``model_dir`` is relative to it (no machine paths), so the folder can be moved or shipped.
"""
from __future__ import annotations

import json
import math
import os
import platform
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch

from ..model.checkpoint import load_model, save_model
from ..training.trainer import TrainConfig, TrainStepRecord, train

Progress = Callable[[float, str], None]
TrainHooks = Callable[[str, int, TrainStepRecord], None]  # (kind, seed, record): live loss plots
RESULTS_FILE = "results.json"
SETTINGS_FILE = "experiment.json"  # the settings a folder was started with (not config.json: that names a model)
TRAINING_SHARE = 0.7  # of each run's progress; scoring takes the rest
# Settings that may change when a job is restarted: where it writes, how it reports, the device it runs on, and
# which seeds it runs (each seed's runs depend on no other seed's: seeds trained as separate jobs in one folder,
# e.g. one per core, are gathered by a last run over all of them).
RESTART_FREE = ("output_dir", "progress", "device", "seeds")


class TwinConfig(Protocol):
    """What the skeleton reads of an experiment's config (a dataclass, saved whole into the results)."""

    output_dir: str
    progress: bool  # draw a progress bar on stderr when no progress callback is given


@dataclass
class Twins:
    """An experiment's part; the skeleton does the loop, the resume, the saving and the results file."""

    kinds: Sequence[str]
    tokenizer: Any  # saved with every model
    build: Callable[[str, int], torch.nn.Module]  # (kind, seed) -> a fresh model
    # (kind, seed) -> (batches, training settings); the skeleton sets their output_dir and turns their bar off
    training: Callable[[str, int], tuple[Any, TrainConfig]]
    score: Callable[[str, torch.nn.Module, Progress], dict]  # (kind, trained model, progress) -> the run's scores
    summarise: Callable[[list[dict]], dict] = lambda runs: {}  # every run -> the results' further keys


def folder_name(kind: str) -> str:
    """A kind as a folder name ("fixed 15% (BERT-style)" -> "fixed-15-bert-style")."""
    return re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-")


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"


def progress_bar(desc: str) -> Progress:
    """A progress callback drawing a text bar on stderr (a plain one: in a notebook it stays text, no widget)."""
    from tqdm import tqdm

    bar = tqdm(total=1000, desc=desc, dynamic_ncols=True, bar_format="{l_bar}{bar}| {elapsed} {postfix}")

    def report(fraction: float, message: str) -> None:
        bar.n = round(1000 * fraction)
        bar.set_postfix_str(message, refresh=True)
        if fraction >= 1:
            bar.close()

    return report


def _last_logged_loss(run_dir: Path) -> float:
    """The last loss in the trainer's log: what a run resumed after its final checkpoint trained to."""
    rows = (run_dir / "metrics.jsonl").read_text().splitlines() if (run_dir / "metrics.jsonl").exists() else []
    return json.loads(rows[-1])["loss"] if rows else float("nan")


def _train(twins: Twins, out: Path, seed: int, kind: str, resume: bool, report: Progress,
           train_hooks: TrainHooks | None) -> tuple[torch.nn.Module, dict]:
    """Train one (seed, kind), save its model and its record (not scored yet)."""
    run_dir = out / f"seed{seed}" / folder_name(kind)
    model = twins.build(kind, seed)
    batches, settings = twins.training(kind, seed)
    settings = replace(settings, output_dir=str(run_dir), progress=False)

    def on_step(record: TrainStepRecord) -> None:
        if train_hooks:
            train_hooks(kind, seed, record)
        if record.step % 10 == 0 or record.step == settings.max_steps:
            report(TRAINING_SHARE * record.step / settings.max_steps,
                   f"training, step {record.step}, loss {record.loss:.3f}")

    (run_dir / "run.json").unlink(missing_ok=True)  # a record left by an earlier run must not outlive this one
    report(0.0, "training")
    tic = time.perf_counter()
    result = train(model, batches, settings, tokenizer=twins.tokenizer, hooks=on_step, resume=resume)
    model.to("cpu").eval()
    save_model(model, twins.tokenizer, run_dir / "final")
    loss = result.final_loss if not math.isnan(result.final_loss) else _last_logged_loss(run_dir)
    record = {"seed": seed, "model": kind, "final_train_loss": loss,
              "train_time_s": round(time.perf_counter() - tic, 1),
              "parameters": sum(p.numel() for p in model.parameters()),
              "model_dir": (run_dir / "final").relative_to(out).as_posix(), "scores": None}
    (run_dir / "run.json").write_text(json.dumps(record, indent=2))
    return model, record


def _run_one(twins: Twins, out: Path, seed: int, kind: str, resume: bool, report: Progress,
             train_hooks: TrainHooks | None) -> dict:
    """One (seed, kind): kept, scored or trained and scored, as far as a resumed folder already got."""
    path = out / f"seed{seed}" / folder_name(kind) / "run.json"
    record = json.loads(path.read_text()) if resume and path.exists() else None
    if record is not None and record.get("scores") is not None:
        return record
    if record is not None:  # trained before the job stopped: score the saved model
        model, _ = load_model(out / record["model_dir"])
    else:
        model, record = _train(twins, out, seed, kind, resume, report, train_hooks)
    record["scores"] = twins.score(kind, model, lambda f, m: report(TRAINING_SHARE + (1 - TRAINING_SHARE) * f, m))
    path.write_text(json.dumps(record, indent=2))
    return record


def train_twins(twins: Twins, seeds: Sequence[int], output_dir: str | Path, resume: bool = False,
                progress: Progress | None = None, train_hooks: TrainHooks | None = None) -> list[dict]:
    """Train and score every (seed, kind) under ``output_dir``, seed by seed; their records, in that order."""
    out = Path(output_dir)
    jobs = [(seed, kind) for seed in seeds for kind in twins.kinds]
    runs = []
    for j, (seed, kind) in enumerate(jobs):
        def report(fraction: float, message: str, j=j, seed=seed, kind=kind) -> None:
            if progress:
                progress((j + fraction) / len(jobs), f"[{j + 1}/{len(jobs)}] {kind}, seed {seed}: {message}")

        runs.append(_run_one(twins, out, seed, kind, resume, report, train_hooks))
    return runs


def _start_folder(out: Path, config: TwinConfig, resume: bool) -> None:
    """Record the settings a folder is started with; refuse to resume a folder that other settings began, since
    its finished runs would be mixed into this experiment's results."""
    settings = json.loads(json.dumps({k: v for k, v in asdict(config).items() if k not in RESTART_FREE}))
    path = out / SETTINGS_FILE
    if resume and path.exists():
        before = json.loads(path.read_text())
        changed = sorted(k for k in (before.keys() | settings.keys()) - set(RESTART_FREE)  # older folders kept them
                         if before.get(k) != settings.get(k))
        if changed:
            raise ValueError(f"cannot resume {out}: it was started with other settings ({', '.join(changed)}); "
                             "give another output_dir or run without resume")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2))


def run_twins(twins: Twins, config: TwinConfig, seeds: Sequence[int], resume: bool = False,
              progress: Progress | None = None, train_hooks: TrainHooks | None = None) -> dict:
    """The whole experiment: every (seed, kind) trained and scored, then ``results.json`` written under
    ``config.output_dir`` and returned: ``{"config", "runs", <what twins.summarise adds>, "wall_time_s",
    "machine"}``. ``progress(fraction, message)`` follows the run (a bar on stderr when it is None and
    ``config.progress``); ``train_hooks(kind, seed, record)`` sees every training step."""
    started = time.perf_counter()
    out = Path(config.output_dir)
    _start_folder(out, config, resume)
    if progress is None and config.progress:
        progress = progress_bar(out.name)
    runs = train_twins(twins, seeds, out, resume, progress, train_hooks)
    results = {"config": asdict(config), "runs": runs, **twins.summarise(runs),
               "wall_time_s": round(time.perf_counter() - started, 1), "machine": machine()}
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    if progress:
        progress(1.0, f"done in {results['wall_time_s']:.0f} s")
    return results


def accepts_out_dir(cls: type) -> type:
    """Let callers written before the rename of ``out_dir`` to ``output_dir`` read ``config.out_dir``; the
    class declares ``out_dir: InitVar[str | None] = None`` and calls :func:`former_out_dir` in its
    ``__post_init__`` so that they can also pass it."""
    cls.out_dir = property(lambda self: self.output_dir, doc="the former name of output_dir")
    return cls


def former_out_dir(config: TwinConfig, out_dir: str | None, default: str) -> None:
    """Take ``out_dir`` (the former name) as ``output_dir`` when ``output_dir`` was left at its default.

    ``dataclasses.replace`` passes the old ``out_dir`` back in (it reads every init argument), so a new
    ``output_dir`` must win over it: the rule is exact except for a replace onto the default folder itself."""
    if out_dir is not None and config.output_dir == default:
        config.output_dir = str(out_dir)
