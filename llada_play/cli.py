"""The ``llada-play`` command line."""
from __future__ import annotations

import argparse
import sys

import torch


def add_sampler_arguments(parser: argparse.ArgumentParser) -> None:
    from .remasking import REMASKING

    parser.add_argument("--gen-length", type=int, default=64, help="tokens to generate (default 64)")
    parser.add_argument("--steps", type=int, default=64, help="denoising steps in all (default 64)")
    parser.add_argument("--block-length", type=int, default=32, help="semi-autoregressive block size (default 32)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default)")
    parser.add_argument("--cfg-scale", type=float, default=0.0, help="classifier-free guidance scale (default 0)")
    parser.add_argument("--remasking", default="low_confidence", choices=sorted(REMASKING) + ["threshold"])
    parser.add_argument("--threshold", type=float, default=None,
                        help="confidence-threshold parallel decoding: commit all candidates above it")
    parser.add_argument("--seed", type=int, default=0)


def cmd_sample(args) -> int:
    from .checkpoint import load_model
    from .sampling import generate
    from .text import decode_generation, encode_prompt
    from .trace import TraceRecorder

    torch.manual_seed(args.seed)
    model, tokenizer = load_model(args.model, device=args.device)
    if tokenizer is None:
        raise ValueError(f"{args.model} has no tokenizer; the CLI needs text in and out")
    prompt = encode_prompt(tokenizer, args.prompt, chat=args.chat)
    recorder = TraceRecorder(tokenizer, params={k: v for k, v in vars(args).items() if k != "func"}) if args.trace else None
    out = generate(model, prompt, steps=args.steps, gen_length=args.gen_length, block_length=args.block_length,
                   temperature=args.temperature, cfg_scale=args.cfg_scale, remasking=args.remasking,
                   threshold=args.threshold, seed=args.seed, hooks=recorder)
    text = decode_generation(tokenizer, out[0], prompt.shape[1], stop_at_eos=not args.keep_eos)
    print(args.prompt + text if not args.chat else text)
    if recorder is not None:
        recorder.trace().to_json(args.trace)
        print(f"[trace written to {args.trace}]", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llada-play", description="Play with masked-diffusion language models.")
    sub = parser.add_subparsers(dest="command", required=True)
    sample = sub.add_parser("sample", help="generate text by denoising")
    sample.add_argument("--prompt", required=True, help="text to continue")
    sample.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    sample.add_argument("--device", default="cpu")
    sample.add_argument("--chat", action="store_true", help="wrap the prompt in the chat template")
    sample.add_argument("--keep-eos", action="store_true", help="print end-of-text tokens and what follows")
    sample.add_argument("--trace", default=None, metavar="OUT.json", help="write the denoising trace as JSON")
    add_sampler_arguments(sample)
    sample.set_defaults(func=cmd_sample)
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
