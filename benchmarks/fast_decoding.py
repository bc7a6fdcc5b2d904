"""Fast decoding measured: accuracy, forward passes, wall time and decoded positions per second of LLaDA's fixed
schedule against threshold decoding, the block KV cache and both (with early exit on end-of-text blocks), on
the shipped arithmetic test set, greedy, in one run; plus the agreement of cached and uncached answers, and
threshold + early exit with fixed batches against continuous batching (slots refilled as rows finish).

    python benchmarks/fast_decoding.py [--quick] [--model DIR] [--rounds 3]

Settings are interleaved over ``--rounds`` and the median wall time is kept (the machine is noisy); accuracy
and passes do not change between rounds (greedy). ``--quick`` scores the first 64 prompts in one round.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from llada_play.model.checkpoint import load_model
from llada_play.experiments.compare import SamplerSetting, accuracy_by_setting, fast_decoding_settings
from llada_play.training.data import load_sft_rows
from llada_play.model.text import stop_token_ids

ROOT = Path(__file__).resolve().parent.parent


def default_model_dir() -> str:
    """The arithmetic-tuned copy of the default model when it is shipped, else a local quick-SFT run."""
    try:
        from llada_play.model.checkpoint import ARITHMETIC_MODEL_DIR
        return str(ARITHMETIC_MODEL_DIR)
    except ImportError:
        return str(ROOT / "runs" / "arith" / "final")


def settings_for(args, eos_ids) -> list[SamplerSetting]:
    ladder = fast_decoding_settings(args.steps, args.gen_length, args.block_length, args.threshold, "dual", eos_ids)
    base = ladder[0].config
    exit_only = base.replace(threshold=args.threshold, eos_early_exit=True)
    return ladder + [
        SamplerSetting("cache prefix", base.replace(cache="prefix")),
        SamplerSetting(f"threshold {args.threshold} + early exit", exit_only),
        SamplerSetting(f"threshold {args.threshold} + cache prefix + early exit", exit_only.replace(cache="prefix")),
        # continuous batching: a finished row's slot takes the next prompt at once (no cache: rows sit in
        # different blocks); compare with "threshold + early exit", whose finished slots stay empty
        SamplerSetting(f"threshold {args.threshold} + early exit, refilled slots", exit_only, refill=True),
    ]


def short_label(name: str) -> str:
    return (name.replace(", refilled slots", "+refill").replace("threshold", "thr").replace("cache ", "").replace("early exit", "exit")
            .replace(" + ", "+"))


def mermaid_charts(names: list[str], speedups: list[float], accuracies: list[float]) -> str:
    """Two bar charts (speed-up, accuracy) as a Mermaid block: a plot RESULTS.md can show without image files."""
    labels = ", ".join(f'"{short_label(n)}"' for n in names)
    top = max(speedups) * 1.1
    return "\n".join([
        "```mermaid", "xychart-beta", '    title "Wall-time speed-up over the baseline (x)"',
        f"    x-axis [{labels}]", f'    y-axis "speed-up" 0 --> {top:.1f}',
        f"    bar [{', '.join(f'{v:.2f}' for v in speedups)}]", "```", "",
        "```mermaid", "xychart-beta", '    title "Exact-match accuracy (%)"',
        f"    x-axis [{labels}]", '    y-axis "accuracy %" 0 --> 100',
        f"    bar [{', '.join(f'{100 * v:.1f}' for v in accuracies)}]", "```"])


def agreement(a: list[str], b: list[str]) -> float:
    return sum(x == y for x, y in zip(a, b)) / len(a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model directory (default: the arithmetic-tuned model)")
    parser.add_argument("--data", default=str(ROOT / "data" / "sft" / "arithmetic_test.jsonl"))
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--gen-length", type=int, default=32)
    parser.add_argument("--block-length", type=int, default=8)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="64 prompts, one round (a couple of minutes)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.rounds = min(args.rows, 64), 1

    model_dir = args.model or default_model_dir()
    model, tokenizer = load_model(model_dir)
    conversations = load_sft_rows(args.data)[:args.rows]
    settings = settings_for(args, stop_token_ids(tokenizer))

    times: dict[str, list[float]] = {s.name: [] for s in settings}
    results: dict[str, dict] = {}
    for _ in range(args.rounds):
        for setting in settings:
            row = accuracy_by_setting(model, tokenizer, conversations, [setting], batch_size=args.batch_size,
                                      return_answers=True)[0]
            times[setting.name].append(row["wall_time_s"])
            results[setting.name] = row

    base_time = statistics.median(times["baseline"])
    print(f"date: {time.strftime('%Y-%m-%d')}; machine: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"model: {model_dir}; data: {Path(args.data).name}, {len(conversations)} prompts, batches of "
          f"{args.batch_size}; gen_length {args.gen_length}, block_length {args.block_length}, steps {args.steps} "
          f"(baseline), threshold {args.threshold}, greedy; {args.rounds} round(s), median wall time")
    print()
    print("| setting | accuracy | forward passes per batch (windowed) | wall time | tokens/s | speed-up |")
    print("|---|---|---|---|---|---|")
    for setting in settings:
        r, t = results[setting.name], statistics.median(times[setting.name])
        print(f"| {setting.name} | {r['accuracy']:.1%} | {r['forward_passes']} ({r['windowed_passes']}) | "
              f"{t:.2f} s | {args.gen_length * len(conversations) / t:.0f} | {base_time / t:.2f}x |")
    print()
    answers = {name: r["answers"] for name, r in results.items()}
    t = f"threshold {args.threshold}"
    pairs = [("baseline", "cache dual"), ("baseline", "cache prefix"),
             (f"{t} + early exit", f"{t} + cache dual + early exit"),
             (f"{t} + early exit", f"{t} + cache prefix + early exit"), ("baseline", f"{t}"),
             (f"{t} + early exit", f"{t} + early exit, refilled slots")]
    for a, b in pairs:
        print(f"identical answers, {a} vs {b}: {agreement(answers[a], answers[b]):.1%}")
    print()
    names = [s.name for s in settings]
    print(mermaid_charts(names, [base_time / statistics.median(times[n]) for n in names],
                         [results[n]["accuracy"] for n in names]))


if __name__ == "__main__":
    main()
