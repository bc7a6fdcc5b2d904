"""The ``llada-play`` command line: ``main``, and the commands that are not training (sample, eval, submit).

The parser and the training commands live in ``commands.py``, which ``jobs`` uses without importing this module.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from .commands import build_parser as build_command_parser


def cmd_sample(args) -> int:
    from .diffusion.sampler_config import sampler_config_from_args
    from .diffusion.sampling import denoise
    from .diffusion.trace import TraceRecorder
    from .model.checkpoint import DTYPES, load_model
    from .model.text import decode_generation, encode_prompt

    config = sampler_config_from_args(args)  # refused here, before the model loads
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


def cmd_eval(args) -> int:
    from .recipes import run_evaluation

    result = run_evaluation(args.model, args.data, seq_len=args.seq_len, batches=args.batches,
                            mc_samples=args.mc_samples, rows=args.rows, samples=args.samples, seed=args.seed)
    print(json.dumps(result, indent=2))
    return 0


def cluster_config_from_args(args):
    from .jobs import ClusterConfig

    extra = {}
    for item in args.sbatch or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--sbatch takes KEY=VALUE (e.g. qos=high), got {item!r}")
        extra[key.lstrip("-")] = value
    return ClusterConfig(executor=args.executor, tasks_per_node=args.tasks_per_node, nodes=args.nodes,
                         gpus_per_node=args.gpus_per_node, cpus_per_task=args.cpus_per_task,
                         partition=args.partition, account=args.account, time_min=args.time, sbatch=extra,
                         setup=args.setup or [], folder=args.folder)


def cmd_submit(args) -> int:
    """Submit a training command as a job; print its id and where it writes; with --wait, follow it."""
    from .jobs import submit_command

    if not args.training:
        raise ValueError("give the training command after --, e.g. llada-play submit -- train --data d --out runs/x")
    argv = args.training[1:] if args.training[0] == "--" else args.training
    handle = submit_command(argv, cluster_config_from_args(args))
    print(json.dumps({"job_id": handle.job_id, "executor": args.executor, "output_dir": str(handle.output_dir),
                      "log": str(handle.log_paths()[0])}))
    if not args.wait:
        return 0
    status = handle.wait(on_poll=lambda h: None)
    print(handle.log_tail(10), file=sys.stderr)
    print(json.dumps({"job_id": handle.job_id, "status": status, "model": str(handle.model_dir())}))
    return 0 if status == "COMPLETED" else 1


def build_parser() -> argparse.ArgumentParser:
    """The ``llada-play`` parser, every subcommand with its handler."""
    return build_command_parser({"sample": cmd_sample, "eval": cmd_eval, "submit": cmd_submit})


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
