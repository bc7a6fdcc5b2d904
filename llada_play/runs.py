"""The one table of runs: name -> (settings dataclass, recipe, help), in :data:`RUNS`.

Every whole run the project has (pre-training, SFT, evaluation, the reversal-curse, puzzle and masking-ratio
experiments) is one :class:`Run` here, and everything that starts runs reads this table:

- the ``llada-play`` subcommands (``cli`` adds one per entry; its flags are the fields of the entry's dataclasses,
  by :mod:`llada_play.flags`' one rule: a field's name is its flag);
- ``llada-play submit -- <run> ...`` and ``jobs.submit_command`` (the same command line, run inside a job);
- ``jobs.submit`` / ``jobs.submit_sweep`` (a config instance and the recipe's options, by the entry's name).

A recipe is called ``recipe(config=..., resume=..., **options)`` and returns a JSON-ready dict; every config has
an ``output_dir`` (where a job's logs go, and each sweep variant's own folder below it) and, where it draws a
progress bar, ``progress``. This module sits below ``jobs`` and ``cli``, which both import it: a job parses and
runs a command line with :func:`run_command` without importing ``cli`` (which imports ``jobs`` for ``submit``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import recipes
from .experiments.masking_ratio import MaskingRatioConfig, run_masking_ratio_experiment
from .experiments.puzzle import PuzzleConfig, run_puzzle_experiment
from .experiments.reversal_experiment import ReversalConfig, run_reversal_experiment
from .flags import add_config_arguments, config_from_args, config_to_argv, given_values
from .model.checkpoint import DTYPES
from .recipes import SHIPPED_SFT, EvalConfig, PretrainOptions, SFTOptions
from .training import distributed
from .training.trainer import TrainConfig

Settings = tuple[Any, dict]  # (the config, the recipe's other options)


@dataclass(frozen=True)
class Run:
    """One entry of :data:`RUNS`. The command line's own concerns (its starting defaults, old flag spellings,
    flags that are not settings, what it prints) sit beside the settings, so that a job and the command line
    run the same recipe with the same settings."""

    name: str
    help: str
    config: type  # the settings dataclass (has output_dir)
    recipe: Callable[..., dict]  # recipe(config=..., resume=..., **options) -> the run's summary
    options: type | None = None  # the recipe's other settings, as a dataclass (train, sft)
    names: tuple[str, ...] = ()  # other names the run answers to, on the command line and in jobs
    defaults: Callable[[], Any] | None = None  # the command line's starting config (else the class's defaults)
    aliases: Mapping[str, Any] = field(default_factory=dict)  # old flag -> field (or (field, value)), both classes
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # field -> add_argument keywords
    required: tuple[str, ...] = ()  # fields the command line must be given
    processes: bool = False  # trains as several processes (DDP) when a job has several tasks
    resumable: bool = True  # takes --resume (continue from the checkpoints in output_dir)
    arguments: Callable[[argparse.ArgumentParser], None] | None = None  # command-line flags that are not settings
    prepare: Callable[[argparse.Namespace, Any, dict], Settings] | None = None  # the command line's adjustments
    report: Callable[[argparse.Namespace, Any, dict], None] | None = None  # what the command prints

    def option_names(self) -> set[str]:
        return {f.name for f in dataclasses.fields(self.options)} if self.options else set()

    def __call__(self, config, resume: bool = False, **options) -> dict:
        """Run the recipe."""
        return self.recipe(config=config, resume=resume, **options)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The command's flags: one per settings field (the config's, then the options'), then its own."""
        for cls, defaults in ((self.config, self.defaults() if self.defaults else None), (self.options, None)):
            if cls is None:
                continue
            names = {f.name for f in dataclasses.fields(cls)}
            add_config_arguments(parser, cls, defaults,
                                 aliases={k: v for k, v in self.aliases.items()
                                          if (v if isinstance(v, str) else v[0]) in names},
                                 overrides={k: v for k, v in self.overrides.items() if k in names},
                                 required=[r for r in self.required if r in names])
        if self.resumable:
            parser.add_argument("--resume", action="store_true",
                                help="continue from the latest checkpoints in the output directory")
        if self.arguments:
            self.arguments(parser)

    def argv(self, config, **options) -> list[str]:
        """The command line of this run with these settings (``["train", "--output-dir", ...]``): what
        ``llada-play submit -- ...`` takes to run them as a job."""
        argv = [self.name, *config_to_argv(config, base=self.defaults() if self.defaults else None)]
        if self.options is not None:
            argv += config_to_argv(self.options(**options))
        elif options:
            raise ValueError(f"{self.name} takes no options beside its config, got {sorted(options)}")
        return argv

    def settings(self, args: argparse.Namespace) -> Settings:
        """(config, options) from the parsed flags, as the command line adjusts them."""
        config = config_from_args(self.config, args)
        options = dataclasses.asdict(config_from_args(self.options, args)) if self.options else {}
        return self.prepare(args, config, options) if self.prepare else (config, options)


# ---- the command line's own parts of each run ---------------------------------------------------------

def _print_summary(args, config, summary: dict) -> None:
    print(json.dumps({k: v for k, v in summary.items() if k not in {"config", "train_documents"}}, indent=2))


def _training_settings(args, config: TrainConfig, options: dict) -> Settings:
    """A short run warms up for at most its own length."""
    return dataclasses.replace(config, warmup_steps=min(config.warmup_steps, config.max_steps)), options


def _sft_settings(args, config: TrainConfig, options: dict) -> Settings:
    """Training on the shipped arithmetic rows scores their test split unless other rows are named."""
    if options["eval_data"] is None and Path(options["data"]) == SHIPPED_SFT / "arithmetic_train.jsonl":
        options = {**options, "eval_data": str(SHIPPED_SFT / "arithmetic_test.jsonl")}
    return _training_settings(args, config, options)


def _reversal_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="start from ReversalConfig.quick(): 5 people per subset, 2 seeds, 1000 steps, 40 test "
                             "rows per set: < 10 min on 2 CPU cores (flags given still win)")
    parser.add_argument("--out", default=None, metavar="RESULTS.json",
                        help="also write the results JSON here; without --output-dir the models go next to it, "
                             "in RESULTS-runs/")


def _reversal_settings(args, config: ReversalConfig, options: dict) -> Settings:
    if args.quick:
        config = config_from_args(ReversalConfig, args, base=ReversalConfig.quick())
    if args.out and "output_dir" not in given_values(ReversalConfig, args):
        config = dataclasses.replace(config, output_dir=str(Path(args.out).with_suffix("")) + "-runs")
    return config, options


def _reversal_report(args, config: ReversalConfig, results: dict) -> None:
    from .experiments.reversal_experiment import results_markdown

    where = f"{config.output_dir}/results.json"
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
        where = f"{args.out} (and {where})"
    print(results_markdown(results))
    print(f"[{len(results['runs'])} models in {results['wall_time_s']:.0f} s; results in {where}, "
          f"models under {config.output_dir}]", file=sys.stderr)


def _puzzle_report(args, config: PuzzleConfig, results: dict) -> None:
    from .experiments.puzzle import results_markdown

    print(results_markdown(results))
    print(f"[results in {Path(config.output_dir) / 'results.json'}]", file=sys.stderr)


def _masking_ratio_report(args, config: MaskingRatioConfig, result: dict) -> None:
    from .experiments.masking_ratio import conclusion

    print("\n".join(conclusion(result)))
    also = f" (and {config.out})" if config.out else ""
    print(f"[results in {Path(config.output_dir) / 'results.json'}{also}]", file=sys.stderr)


def _evaluation_report(args, config: EvalConfig, result: dict) -> None:
    print(json.dumps(result, indent=2))


TRAINING_ALIASES = {"--out": "output_dir", "--steps": "max_steps", "--warmup": "warmup_steps",
                    "--autoregressive": ("objective", "autoregressive")}
TRAINING_OVERRIDES = {"precision": {"choices": ["auto", "bf16", "fp32"]},
                      "ddp_backend": {"choices": list(distributed.BACKENDS)}}

RUNS_LIST = [
    Run("train", "pre-train a model (or its autoregressive twin) on a text corpus", TrainConfig,
        recipes.run_pretraining, PretrainOptions, names=("pretrain",),
        defaults=lambda: TrainConfig(objective="pretrain", max_steps=2000, lr=1e-3, warmup_steps=100),
        aliases={**TRAINING_ALIASES, "--data": "corpus", "--held-out": "held_out_fraction",
                 "--tokenizer": "tokenizer_dir"},
        overrides={**TRAINING_OVERRIDES, "objective": {
            "choices": ["pretrain", "autoregressive"],
            "help": "pretrain: masked diffusion; autoregressive: the causal twin, next-token loss"}},
        required=("output_dir",), processes=True, prepare=_training_settings, report=_print_summary),
    Run("sft", "supervised fine-tuning on prompt/response rows", TrainConfig, recipes.run_sft, SFTOptions,
        defaults=lambda: TrainConfig(objective="sft", max_steps=1000, lr=1e-3, warmup_steps=50),
        aliases={**TRAINING_ALIASES, "--model": "model_dir", "--no-merge": ("merge_lora", False)},
        overrides={**TRAINING_OVERRIDES, "objective": {
                       "choices": ["sft", "autoregressive"],
                       "help": "sft: masked diffusion on the response; autoregressive: next-token loss on it "
                               "(causal models)"},
                   "dtype": {"choices": sorted(DTYPES)}},
        required=("output_dir",), processes=True, prepare=_sft_settings, report=_print_summary),
    Run("eval", "held-out loss, likelihood bound, accuracy and samples", EvalConfig, recipes.evaluate,
        aliases={"--model": "model_dir"}, resumable=False, report=_evaluation_report),
    Run("reversal", "the reversal-curse experiment: a diffusion model against its autoregressive twin",
        ReversalConfig, run_reversal_experiment,
        aliases={"--data": "data_dir", "--people": "people_per_subset", "--run-dir": "output_dir"},
        overrides={"init": {"choices": ["scratch", "pretrained"]}},
        arguments=_reversal_arguments, prepare=_reversal_settings, report=_reversal_report),
    Run("puzzle", "Sudoku: a diffusion model against its left-to-right twin, where the order of unmasking matters",
        PuzzleConfig, run_puzzle_experiment,
        aliases={"--out": "output_dir", "--any-difficulty": ("singles_only", False)},
        overrides={"size": {"choices": [4, 6, 9]}}, report=_puzzle_report),
    Run("masking-ratio", "why the masking ratio is drawn at random: fixed 15% against t ~ U(0, 1) at one budget",
        MaskingRatioConfig, run_masking_ratio_experiment, names=("masking_ratio",), report=_masking_ratio_report),
]
RUNS: dict[str, Run] = {run.name: run for run in RUNS_LIST}


def find(name: str) -> Run:
    """The run of a name (or of one of its other names); ValueError naming the runs for any other."""
    for run in RUNS_LIST:
        if name == run.name or name in run.names:
            return run
    every = sorted(n for r in RUNS_LIST for n in (r.name, *r.names))
    raise ValueError(f"unknown recipe {name!r}; choose one of {every}")


def add_run_commands(subparsers) -> None:
    """One subcommand per run (its other names as aliases), each running it through :func:`execute`."""
    for run in RUNS_LIST:
        command = subparsers.add_parser(run.name, aliases=list(run.names), help=run.help.replace("%", "%%"),
                                        description=run.help)
        run.add_arguments(command)
        command.set_defaults(func=lambda args, run=run: execute(run, args))


def build_parser() -> argparse.ArgumentParser:
    """A parser of the runs' subcommands alone (what a job runs); ``cli.build_parser`` adds sample and submit."""
    parser = argparse.ArgumentParser(prog="llada-play", description="Play with masked-diffusion language models.")
    add_run_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def parse_command(argv: list[str]) -> tuple[Run, argparse.Namespace, Settings]:
    """A run's command line (``["train", "--data", ...]``) -> (its run, the parsed flags, its settings);
    ValueError for one that names no run."""
    if not argv or argv[0].startswith("-"):
        raise ValueError(f"give a run's command line (one of {', '.join(RUNS)}), got {argv[:1] or 'nothing'}")
    run = find(argv[0])
    args = build_parser().parse_args(argv)
    return run, args, run.settings(args)


def execute(run: Run, args: argparse.Namespace, settings: Settings | None = None) -> int:
    """Run a parsed command: its settings (``settings``, if already read from ``args``), the recipe, then what
    the command prints."""
    config, options = settings or run.settings(args)
    result = run(config, resume=getattr(args, "resume", False), **options)
    if run.report:
        run.report(args, config, result)
    return 0


def run_command(argv: list[str], resume: bool | None = None) -> int:
    """Parse and run a run's command line (inside a job: ``resume=True``)."""
    run, args, settings = parse_command(argv)
    if resume is not None and run.resumable:
        args.resume = resume
    return execute(run, args, settings)
