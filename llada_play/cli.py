"""The ``llada-play`` command line: ``sample``, one subcommand per run of :data:`llada_play.runs.RUNS` (train,
sft, eval, reversal, puzzle, masking-ratio) and ``submit`` (any of those runs as a job).

Every settings dataclass becomes flags by one rule (:mod:`llada_play.flags`: a field's name is its flag):
``SamplerConfig`` for sample, each run's config and options, ``ClusterConfig`` for submit.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import runs
from .flags import add_config_arguments, config_from_args


def add_loading_arguments(parser: argparse.ArgumentParser) -> None:
    """How sample opens a model directory."""
    from .model.checkpoint import DTYPES

    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow a checkpoint that ships its own Python code (not needed for LLaDA and Dream, "
                             "which are read natively; off by default)")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES),
                        help="weights dtype (default float32; bfloat16 halves memory, use it for LLaDA-8B)")


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    """Every flag of ``llada-play sample``, in the order ``--help`` lists them: the prompt, the model, then one
    flag per SamplerConfig field."""
    from .diffusion.sampler_config import add_sampler_arguments

    parser.add_argument("--prompt", required=True, help="text to continue")
    parser.add_argument("--model", default=None, help="model directory or cached hub id (default: the shipped model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--device-map", default=None,
                        help="spread a large model over the GPUs and the CPU (e.g. auto; needs accelerate)")
    add_loading_arguments(parser)
    parser.add_argument("--chat", action="store_true", help="wrap the prompt in the chat template")
    parser.add_argument("--keep-eos", action="store_true", help="print end-of-text tokens and what follows")
    parser.add_argument("--trace", default=None, metavar="OUT.json", help="write the denoising trace as JSON")
    add_sampler_arguments(parser)


def check_writable(path: str, flag: str) -> None:
    """Refuse, before any work, an output file that cannot be written: a folder, or a folder that is missing."""
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{flag} {path} is a folder; name a file, e.g. {target / 'trace.json'}")
    if not target.parent.is_dir():
        raise ValueError(f"{flag} {path}: the folder {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise ValueError(f"{flag} {path} cannot be written (permission denied)")


def cmd_sample(args) -> int:
    from .diffusion.sampler_config import sampler_config_from_args
    from .diffusion.sampling import denoise
    from .diffusion.trace import TraceRecorder
    from .model.checkpoint import DTYPES, load_model
    from .model.text import decode_generation, encode_prompt

    config = sampler_config_from_args(args)  # refused here, before the model loads
    if args.trace:
        check_writable(args.trace, "--trace")
    model, tokenizer = load_model(args.model, device=args.device, trust_remote_code=args.trust_remote_code,
                                  dtype=DTYPES[args.dtype], device_map=args.device_map)
    if tokenizer is None:
        raise ValueError(f"{args.model} has no tokenizer; the CLI needs text in and out")
    prompt = encode_prompt(tokenizer, args.prompt, chat=args.chat)
    run = denoise(model, prompt, config, observe=bool(args.trace))
    recorder = TraceRecorder(tokenizer, config=config) if args.trace else None
    for record in run:
        if recorder is not None:
            recorder(record)
    text = decode_generation(tokenizer, run.output[0], prompt.shape[1], stop_at_eos=not args.keep_eos)
    print(args.prompt + text if not args.chat else text)
    if recorder is not None:
        recorder.trace().to_json(args.trace)
        print(f"[trace written to {args.trace}]", file=sys.stderr)
    return 0


def add_submit_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``llada-play submit``: one per ClusterConfig field, --wait, then ``--`` and a run's command line."""
    from .jobs import CLUSTER_ALIASES, EXECUTORS, ClusterConfig

    add_config_arguments(parser, ClusterConfig, aliases=CLUSTER_ALIASES,
                         overrides={"executor": {"choices": list(EXECUTORS)}, "setup": {"repeat": True}})
    parser.add_argument("--wait", action="store_true", help="wait for the job and print its status and model")
    parser.add_argument("training", nargs=argparse.REMAINDER,
                        help=f"-- then a run's command line ({', '.join(runs.RUNS)})")


def cluster_config_from_args(args):
    """The ClusterConfig of parsed ``submit`` flags."""
    from .jobs import ClusterConfig

    return config_from_args(ClusterConfig, args)


def cmd_submit(args) -> int:
    """Submit a run's command line as a job; print its id and where it writes; with --wait, follow it."""
    from .jobs import submit_command

    if not args.training:
        raise ValueError("give the run's command line after --, e.g. llada-play submit -- train --data d --out runs/x")
    argv = args.training[1:] if args.training[0] == "--" else args.training
    cluster = cluster_config_from_args(args)
    handle = submit_command(argv, cluster)
    print(json.dumps({"job_id": handle.job_id, "executor": cluster.executor, "output_dir": str(handle.output_dir),
                      "log": str(handle.log_paths()[0])}))
    if not args.wait:
        return 0
    status = handle.wait(on_poll=lambda h: None)
    print(handle.log_tail(10), file=sys.stderr)
    print(json.dumps({"job_id": handle.job_id, "status": status, "model": str(handle.model_dir())}))
    return 0 if status == "COMPLETED" else 1


def build_parser() -> argparse.ArgumentParser:
    """The ``llada-play`` parser, every subcommand with its handler (``func``)."""
    parser = argparse.ArgumentParser(prog="llada-play", description="Play with masked-diffusion language models.")
    sub = parser.add_subparsers(dest="command", required=True)
    sample = sub.add_parser("sample", help="generate text by denoising", description="generate text by denoising")
    add_sample_arguments(sample)
    sample.set_defaults(func=cmd_sample)
    runs.add_run_commands(sub)
    submit = sub.add_parser("submit", help="run any run's command line as a job (local or Slurm)",
                            description="llada-play submit [options] -- train --data data/shakespeare --out runs/x")
    add_submit_arguments(submit)
    submit.set_defaults(func=cmd_submit)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # loading a small model should print its output, not bars
    try:
        return args.func(args)
    except ValueError as err:  # bad input: one clear line, no traceback
        print(f"llada-play: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
