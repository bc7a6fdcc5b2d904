"""Training throughput: the project's loop (llada_play.training.trainer.train) against a minimal hand-written PyTorch
loop on the same model, batch, data and precision. Target (issue 3): ratio >= 0.9.

    python benchmarks/training_throughput.py [--steps 20] [--rounds 3] [--preset small]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from llada_play import LladaForMaskedLM, config_from_preset
from llada_play.training.data import PackedBatches
from llada_play.diffusion.losses import pretrain_loss
from llada_play.training.trainer import TrainConfig, resolve_precision, train


def minimal_loop(model, batches, steps, autocast_dtype, lr=1e-3):
    """What one would write by hand: AdamW, clipping, the LLaDA loss. No logging, no checkpoints."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    g_data, g_mask = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    model.train()
    for _ in range(steps):
        ids = batches.next_batch(g_data)["input_ids"]
        with torch.autocast("cpu", dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = pretrain_loss(model, ids, model.config.mask_token_id, generator=g_mask).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=256)
    args = parser.parse_args()

    torch.manual_seed(0)
    vocab = 4096
    tokens = torch.randint(10, vocab, (200_000,))
    batches = PackedBatches(tokens, args.seq_len, args.batch_size)
    make = lambda: LladaForMaskedLM(config_from_preset(args.preset, vocab_size=vocab, mask_token_id=2))
    config_kw = dict(max_steps=args.steps, warmup_steps=1, log_every=10, save_every=10**9, progress=False)
    autocast_dtype = resolve_precision(TrainConfig(**config_kw), torch.device("cpu"))
    n_tokens = args.steps * args.batch_size * args.seq_len

    ours, theirs = [], []
    for _ in range(args.rounds):
        model = make()
        start = time.perf_counter()
        minimal_loop(model, batches, args.steps, autocast_dtype)
        theirs.append(n_tokens / (time.perf_counter() - start))
        model = make()
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            # save_every beyond max_steps: only the final checkpoint, which the timing includes
            train(model, batches, TrainConfig(output_dir=out, **config_kw))
            ours.append(n_tokens / (time.perf_counter() - start))
    ratios = [a / b for a, b in zip(ours, theirs)]
    print(f"model: {args.preset}, batch {args.batch_size} x {args.seq_len}, {args.steps} steps per run, "
          f"precision {autocast_dtype or 'fp32'}, {torch.get_num_threads()} threads")
    print(f"minimal loop:  {statistics.median(theirs):.0f} tokens/s (median of {args.rounds})")
    print(f"project loop:  {statistics.median(ours):.0f} tokens/s (includes metrics log and final checkpoint)")
    print(f"ratio project/minimal: {statistics.median(ratios):.3f} (per round: "
          f"{', '.join(f'{r:.3f}' for r in ratios)}; target >= 0.9)")


if __name__ == "__main__":
    main()
