"""Sampler overhead: time of generate() with S steps / time of S bare forward passes on the same shapes.

Targets (issue 2): <= 1.05 without hooks, <= 1.15 with the trace recorder. Runs interleave the three
measurements and report medians of per-round ratios, because this machine is noisy.

    python benchmarks/sampler_overhead.py [--rounds 7] [--preset small] [--temperature 0]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from llada_play import LladaForMaskedLM, TraceRecorder, config_from_preset, generate


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--prompt-length", type=int, default=32)
    parser.add_argument("--gen-length", type=int, default=128)
    parser.add_argument("--block-length", type=int, default=32)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--remasking", default="low_confidence")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = LladaForMaskedLM(config_from_preset(args.preset, vocab_size=args.vocab_size, mask_token_id=2)).eval()
    prompt = torch.randint(10, args.vocab_size, (1, args.prompt_length))
    canvas = torch.cat([prompt, torch.full((1, args.gen_length), 2)], 1)
    kw = dict(steps=args.steps, gen_length=args.gen_length, block_length=args.block_length,
              temperature=args.temperature, remasking=args.remasking, seed=0)

    def bare():
        with torch.no_grad():
            for _ in range(args.steps):
                model(canvas)

    def sampler():
        generate(model, prompt, **kw)

    def recorded():
        recorder = TraceRecorder()
        generate(model, prompt, hooks=recorder, **kw)
        recorder.trace().to_json()  # serialising is part of what the recorder costs

    for fn in (bare, sampler, recorded):  # warm-up
        fn()
    plain_ratios, trace_ratios, bare_times = [], [], []
    for _ in range(args.rounds):
        t_bare = timed(bare)
        t_plain = timed(sampler)
        t_trace = timed(recorded)
        bare_times.append(t_bare)
        plain_ratios.append(t_plain / t_bare)
        trace_ratios.append(t_trace / t_bare)

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print(f"model: {args.preset} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params), "
          f"sequence {args.prompt_length}+{args.gen_length}, {args.steps} steps, block {args.block_length}, "
          f"temperature {args.temperature}, {args.remasking}")
    print(f"{args.steps} bare forward passes: {statistics.median(bare_times) * 1000:.0f} ms (median)")
    print(f"generate / bare, no hooks:       {statistics.median(plain_ratios):.3f} "
          f"(min {min(plain_ratios):.3f}, max {max(plain_ratios):.3f}; target <= 1.05)")
    print(f"generate / bare, trace recorder: {statistics.median(trace_ratios):.3f} "
          f"(min {min(trace_ratios):.3f}, max {max(trace_ratios):.3f}; target <= 1.15)")


if __name__ == "__main__":
    main()
