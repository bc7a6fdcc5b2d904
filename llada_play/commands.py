"""The ``llada-play`` command line's parser and its training commands (train, sft, reversal).

Below ``cli`` (which adds ``main`` and the other commands) so that ``jobs`` can parse a training command line
and run it inside a job without importing ``cli``, which imports ``jobs``.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .training.trainer import TrainConfig

SHIPPED_SFT = Path(__file__).resolve().parent.parent / "data" / "sft"

Handler = Callable[[argparse.Namespace], int]


def add_sample_arguments(subparser: argparse.ArgumentParser) -> None:
    """Every flag of ``llada-play sample`` (read by ``cli.cmd_sample``), in the order ``--help`` lists them."""
    from .diffusion.sampler_config import add_sampler_arguments

    subparser.add_argument("--prompt", required=True, help="text to continue")
    subparser.add_argument("--model", default=None,
                           help="model directory or cached hub id (default: the shipped model)")
    subparser.add_argument("--device", default="cpu")
    subparser.add_argument("--device-map", default=None,
                           help="spread a large model over the GPUs and the CPU (e.g. auto; needs accelerate)")
    add_loading_arguments(subparser)
    subparser.add_argument("--chat", action="store_true", help="wrap the prompt in the chat template")
    subparser.add_argument("--keep-eos", action="store_true", help="print end-of-text tokens and what follows")
    subparser.add_argument("--trace", default=None, metavar="OUT.json", help="write the denoising trace as JSON")
    add_sampler_arguments(subparser)  # one flag per SamplerConfig field


def add_loading_arguments(parser: argparse.ArgumentParser) -> None:
    """How a model directory is opened (sample, sft)."""
    from .model.checkpoint import DTYPES

    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow a checkpoint that ships its own Python code (not needed for LLaDA and Dream, "
                             "which are read natively; off by default)")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES),
                        help="weights dtype (default float32; bfloat16 halves memory, use it for LLaDA-8B)")


def add_train_arguments(parser: argparse.ArgumentParser, steps: int, lr: float, warmup: int = 100) -> None:
    """The TrainConfig flags of train and sft, with the command's own defaults."""
    parser.add_argument("--out", required=True, help="run directory (checkpoints, metrics.jsonl, final/)")
    parser.add_argument("--steps", type=int, default=steps, help=f"optimizer steps (default {steps})")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--warmup", type=int, default=warmup, help=f"warm-up steps before the cosine decay (default {warmup})")
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--grad-clip", type=float, default=1.0)
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-every", type=int, default=250)
    parser.add_argument("--keep-last", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--ddp-backend", default="auto", choices=["auto", "gloo", "nccl"],
                        help="torch.distributed backend when launched as several processes (auto: nccl on GPUs, gloo on CPU)")


def train_config_from_args(args: argparse.Namespace, objective: str) -> TrainConfig:
    """The TrainConfig that parsed train/sft flags describe."""
    from .training.trainer import TrainConfig

    return TrainConfig(objective=objective, output_dir=args.out, max_steps=args.steps, lr=args.lr,
                       warmup_steps=min(args.warmup, args.steps), weight_decay=args.weight_decay,
                       grad_clip=args.grad_clip, grad_accum=args.grad_accum, seed=args.seed,
                       precision=args.precision, device=args.device, log_every=args.log_every,
                       save_every=args.save_every, keep_last=args.keep_last, progress=not args.no_progress,
                       ddp_backend=getattr(args, "ddp_backend", "auto"))


def reversal_run_dir(args: argparse.Namespace) -> Path:
    """Where ``llada-play reversal`` puts its models: --run-dir, or next to the results file."""
    return Path(args.run_dir or str(Path(args.out).with_suffix("")) + "-runs")


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are comma-separated integers, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed")
    return seeds


def _print_summary(summary: dict) -> None:
    print(json.dumps({k: v for k, v in summary.items() if k not in {"config", "train_documents"}}, indent=2))


def cmd_train(args: argparse.Namespace) -> int:
    """llada-play train: pre-train a preset (or its autoregressive twin) on a corpus."""
    from .recipes import run_pretraining

    objective = "autoregressive" if args.autoregressive else "pretrain"
    config = train_config_from_args(args, objective)
    config.fixed_mask_ratio = args.fixed_mask_ratio
    config.__post_init__()  # validate the ratio like every other setting
    summary = run_pretraining(args.data, config, preset=args.preset,
                              vocab_size=args.vocab_size, seq_len=args.seq_len, batch_size=args.batch_size,
                              held_out_fraction=args.held_out, tokenizer_dir=args.tokenizer, resume=args.resume)
    _print_summary(summary)
    return 0


def cmd_sft(args: argparse.Namespace) -> int:
    """llada-play sft: fine-tune a model directory on prompt/response rows."""
    from .model.checkpoint import DTYPES
    from .recipes import run_sft

    if args.eval_data is None and Path(args.data) == SHIPPED_SFT / "arithmetic_train.jsonl":
        args.eval_data = str(SHIPPED_SFT / "arithmetic_test.jsonl")
    objective = "autoregressive" if args.autoregressive else "sft"
    summary = run_sft(args.model, args.data, train_config_from_args(args, objective), batch_size=args.batch_size,
                      seq_len=args.seq_len, on_error=args.on_error, lora_rank=args.lora_rank,
                      lora_alpha=args.lora_alpha, merge_lora=not args.no_merge, resume=args.resume,
                      eval_data=args.eval_data, trust_remote_code=args.trust_remote_code, dtype=DTYPES[args.dtype])
    _print_summary(summary)
    return 0


def cmd_reversal(args: argparse.Namespace) -> int:
    """llada-play reversal: the reversal-curse experiment; writes the results JSON and prints its table."""
    from .experiments.reversal_experiment import ReversalConfig, results_markdown, run_reversal_experiment

    overrides = {k: v for k, v in {
        "data_dir": args.data, "init": args.init, "preset": args.preset, "steps": args.steps, "seeds": args.seeds,
        "people_per_subset": args.people, "eval_rows": args.eval_rows, "lr": args.lr, "batch_size": args.batch_size,
        "device": args.device, "models": args.models}.items() if v is not None}
    overrides["out_dir"] = str(reversal_run_dir(args))
    config = ReversalConfig.quick(**overrides) if args.quick else ReversalConfig(**overrides)
    bar = None
    if not args.no_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=1000, desc="reversal", dynamic_ncols=True, bar_format="{l_bar}{bar}| {elapsed} {postfix}")

    def progress(fraction: float, message: str) -> None:
        if bar is not None:
            bar.n = round(1000 * fraction)
            bar.set_postfix_str(message, refresh=True)

    results = run_reversal_experiment(config, progress=progress, resume=args.resume)
    if bar is not None:
        bar.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(results_markdown(results))
    print(f"[{len(results['runs'])} models in {results['wall_time_s']:.0f} s; results in {args.out}, "
          f"models under {config.out_dir}]", file=sys.stderr)
    return 0


def cmd_puzzle(args: argparse.Namespace) -> int:
    """llada-play puzzle: Sudoku solved by a diffusion model and its left-to-right twin; writes results.json."""
    from .experiments.puzzle import PuzzleConfig, results_markdown, run_puzzle_experiment

    settings = {k: v for k, v in vars(args).items() if k in PuzzleConfig.__dataclass_fields__ and v is not None}
    config = PuzzleConfig(**settings)
    progress = None
    if not args.no_progress:
        def progress(fraction: float, message: str) -> None:
            print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    results = run_puzzle_experiment(config, progress=progress, resume=args.resume)
    print(results_markdown(results))
    print(f"[results in {Path(config.out_dir) / 'results.json'}]", file=sys.stderr)
    return 0


# the commands a job runs (jobs.CommandJob); cli adds sample, eval and submit
TRAINING_COMMANDS: dict[str, Handler] = {"train": cmd_train, "sft": cmd_sft, "reversal": cmd_reversal,
                                         "puzzle": cmd_puzzle}


def add_pretrain_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``llada-play train``."""
    parser.add_argument("--data", required=True, help="a .txt file or a directory of .txt files")
    parser.add_argument("--preset", default="small", help="model shape: tiny, small, ... (default small)")
    parser.add_argument("--autoregressive", action="store_true", help="train the causal twin instead")
    parser.add_argument("--tokenizer", default=None, help="reuse this tokenizer directory instead of training one")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--held-out", type=float, default=0.05, help="fraction of documents held out")
    parser.add_argument("--fixed-mask-ratio", type=float, default=None,
                        help="mask every sequence at this ratio instead of t ~ U(0,1) (0.15: the BERT-style baseline)")
    add_train_arguments(parser, steps=2000, lr=1e-3)


def add_sft_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``llada-play sft``."""
    parser.add_argument("--data", default=str(SHIPPED_SFT / "arithmetic_train.jsonl"),
                        help=".jsonl/.json/.csv/.parquet with prompt+response or messages (default: shipped arithmetic)")
    parser.add_argument("--eval-data", default=None,
                        help="held-out rows answered before and after training (default with the shipped data: its test split)")
    parser.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    parser.add_argument("--autoregressive", action="store_true", help="next-token loss on the response (causal models)")
    parser.add_argument("--seq-len", type=int, default=None, help="pad/cut length (default: the longest row)")
    parser.add_argument("--on-error", default="stop", choices=["stop", "skip"], help="what a malformed row does")
    parser.add_argument("--lora-rank", type=int, default=0, help="train LoRA adapters of this rank (peft)")
    parser.add_argument("--lora-alpha", type=int, default=16, help="LoRA scaling numerator (default 16)")
    parser.add_argument("--no-merge", action="store_true",
                        help="keep only the adapters (OUT/adapter) instead of also saving the merged model")
    add_loading_arguments(parser)
    add_train_arguments(parser, steps=1000, lr=1e-3, warmup=50)


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``llada-play eval``."""
    parser.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    parser.add_argument("--data", required=True, help="held-out text (.txt or directory) or SFT rows (.jsonl...)")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batches", type=int, default=20, help="fixed text windows batches to score")
    parser.add_argument("--mc-samples", type=int, default=64, help="Monte-Carlo samples per row for the bound")
    parser.add_argument("--rows", type=int, default=50, help="SFT rows to score")
    parser.add_argument("--samples", type=int, default=3, help="sample generations to print")
    parser.add_argument("--seed", type=int, default=0)


def add_reversal_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``llada-play reversal``."""
    parser.add_argument("--out", required=True, help="results JSON to write")
    parser.add_argument("--quick", action="store_true",
                        help="5 people per subset, 2 seeds, 1000 steps, 40 test rows per set: < 10 min on 2 CPU cores")
    parser.add_argument("--data", default=None,
                        help="a directory in the published layout (p2d_prompts_train.jsonl, ...); default: generated")
    parser.add_argument("--init", default=None, choices=["scratch", "pretrained"],
                        help="train from scratch (default) or from the shipped model and its autoregressive twin")
    parser.add_argument("--preset", default=None, help="model shape when training from scratch (default mini)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per model (default 2500, quick 1000)")
    parser.add_argument("--seeds", type=_seed_list, default=None, help="comma-separated (default 0,1,2; quick 0,1)")
    parser.add_argument("--models", type=lambda t: t.split(","), default=None,
                        help="diffusion,autoregressive (default both)")
    parser.add_argument("--people", type=int, default=None, help="people per subset of generated data (default 30)")
    parser.add_argument("--eval-rows", type=int, default=None, help="test rows scored per question set (default 100, quick 40)")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--run-dir", default=None, help="where the trained models go (default: next to --out)")
    parser.add_argument("--resume", action="store_true", help="keep the models already scored, continue the one in training")
    parser.add_argument("--no-progress", action="store_true")


def add_submit_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``llada-play submit`` (the training command line follows ``--``)."""
    parser.add_argument("--executor", default="local", choices=["local", "slurm"],
                        help="local: a subprocess on this machine (default); slurm: sbatch through submitit")
    parser.add_argument("--tasks-per-node", type=int, default=1, help="training processes per node (DDP if > 1)")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--gpus-per-node", type=int, default=0)
    parser.add_argument("--cpus-per-task", type=int, default=None)
    parser.add_argument("--partition", default=None)
    parser.add_argument("--account", default=None)
    parser.add_argument("--time", type=int, default=60, help="time limit in minutes (default 60)")
    parser.add_argument("--sbatch", action="append", metavar="KEY=VALUE", help="extra sbatch option (repeatable)")
    parser.add_argument("--setup", action="append", metavar="LINE", help="shell line run before the job (repeatable)")
    parser.add_argument("--folder", default=None, help="submitit logs (default: <out>/submitit)")
    parser.add_argument("--wait", action="store_true", help="wait for the job and print its status and model")
    parser.add_argument("training", nargs=argparse.REMAINDER, help="-- then the training command line")


def add_puzzle_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``llada-play puzzle`` (defaults: those of ``PuzzleConfig``)."""
    parser.add_argument("--out", dest="out_dir", required=True, help="run directory (models, results.json)")
    parser.add_argument("--size", type=int, default=None, choices=[4, 6, 9], help="grid size (default 6)")
    parser.add_argument("--givens", type=int, default=None, help="digits given per puzzle (default 14)")
    parser.add_argument("--any-difficulty", dest="singles_only", action="store_const", const=False, default=None,
                        help="allow puzzles that singles alone do not solve")
    parser.add_argument("--train-puzzles", type=int, default=None, help="training puzzles (default 10000)")
    parser.add_argument("--test-puzzles", type=int, default=None, help="held-out puzzles scored (default 500)")
    parser.add_argument("--preset", default=None, help="model shape for both kinds (default mini)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per model (default 3000)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seeds", type=_seed_list, default=None, help="comma-separated (default 0,1)")
    parser.add_argument("--models", type=lambda t: t.split(","), default=None,
                        help="diffusion,autoregressive (default both)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--resume", action="store_true", help="keep the models already scored, continue the one in training")
    parser.add_argument("--no-progress", action="store_true")


# subcommand -> (help, description or None, the function adding its flags)
SUBCOMMANDS = {
    "sample": ("generate text by denoising", None, add_sample_arguments),
    "train": ("pre-train a model (or its autoregressive twin) on a text corpus", None, add_pretrain_arguments),
    "sft": ("supervised fine-tuning on prompt/response rows", None, add_sft_arguments),
    "eval": ("held-out loss, likelihood bound, accuracy and samples", None, add_eval_arguments),
    "reversal": ("the reversal-curse experiment: a diffusion model against its autoregressive twin", None,
                 add_reversal_arguments),
    "puzzle": ("Sudoku: a diffusion model against its left-to-right twin, where the order of unmasking matters",
               None, add_puzzle_arguments),
    "submit": ("run a train/sft/reversal command as a job (local or Slurm)",
               "llada-play submit [options] -- train --data data/shakespeare --out runs/x", add_submit_arguments),
}


def build_parser(handlers: Mapping[str, Handler] | None = None) -> argparse.ArgumentParser:
    """The ``llada-play`` parser; each subcommand's ``func`` is its handler: ``handlers`` (``cli`` gives those of
    sample, eval and submit) over :data:`TRAINING_COMMANDS`, None for a subcommand without one."""
    handlers = {**TRAINING_COMMANDS, **(handlers or {})}
    parser = argparse.ArgumentParser(prog="llada-play", description="Play with masked-diffusion language models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, description, add_arguments) in SUBCOMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=description)
        add_arguments(command)
        command.set_defaults(func=handlers.get(name))
    return parser
