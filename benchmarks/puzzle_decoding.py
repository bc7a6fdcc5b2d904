"""Decoding order on Sudoku: the solve rate of one trained pair under every decoding of
``llada_play.experiments.puzzle_decoding.STUDY`` (easy-first by three scores, random, left to right,
confidence thresholds, fewer steps, and the autoregressive twin), mean ± std over the run's seeds.

    python benchmarks/puzzle_decoding.py --run runs/puzzle/results.json [--puzzles 500] [--json OUT] [--png OUT]

The puzzles are the run's own held-out set (its data seed + 1), the first ``--puzzles`` of them. About 15
minutes for 500 puzzles and two seeds on the project's 2 CPU cores when they are idle.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

import torch

from llada_play.experiments.puzzle import PuzzleConfig, held_out
from llada_play.experiments.puzzle_decoding import decoding_study, study_figure, study_markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="results.json of `llada-play puzzle`")
    parser.add_argument("--puzzles", type=int, default=None, help="first N held-out puzzles (default all)")
    parser.add_argument("--json", default=None, help="write the study here")
    parser.add_argument("--png", default=None, help="write the bar chart here (plotly + kaleido)")
    args = parser.parse_args()
    config = PuzzleConfig.from_dict(json.loads(Path(args.run).read_text())["config"])
    puzzles = held_out(config)[:args.puzzles]
    tic = time.perf_counter()
    study = decoding_study(args.run, puzzles, progress=lambda f, name: print(f"[{f:4.0%}] {name}", flush=True))
    study["machine"] = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    study["date"] = date.today().isoformat()
    study["wall_time_s"] = round(time.perf_counter() - tic, 1)
    print(study_markdown(study))
    print(f"{len(puzzles)} puzzles, seeds {study['rows'][0]['seeds']}, {study['wall_time_s']:.0f} s, "
          f"{study['machine']}")
    if args.json:
        Path(args.json).write_text(json.dumps(study, indent=2))
    if args.png:
        study_figure(study).write_image(args.png, width=1000, height=480)


if __name__ == "__main__":
    main()
