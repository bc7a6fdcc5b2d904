"""Copy a trained run's final model into llada_play/default_model, stored in bf16 to stay small.

    python scripts/ship_default_model.py runs/shakespeare-mdm/final

The loader casts back to float32 (``load_model(dtype=torch.float32)``), so the shipped model computes in
fp32 on any CPU; only the stored weights are rounded.
"""
from __future__ import annotations

import argparse
import sys

import torch

from llada_play.model.checkpoint import DEFAULT_MODEL_DIR, load_model, save_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_final", help="a model directory written by `llada-play train` (its final/ folder)")
    parser.add_argument("--dest", default=str(DEFAULT_MODEL_DIR))
    args = parser.parse_args()
    model, tokenizer = load_model(args.run_final, dtype=torch.bfloat16)
    if tokenizer is None:
        print(f"{args.run_final} has no tokenizer", file=sys.stderr)
        return 2
    path = save_model(model, tokenizer, args.dest)
    size = sum(f.stat().st_size for f in path.iterdir())
    print(f"wrote {path} ({size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
