"""Decoding order as the experiment: one trained Sudoku pair, many ways to decode it.

The same diffusion model is decoded easy-first (three scores of "easy"), in random and in left-to-right order,
with a confidence threshold (several cells a step when the model is sure), and with fewer steps than open cells;
its twin decodes left to right. Every number is a mean ± standard deviation over the training seeds of a run.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..model.checkpoint import load_model
from .puzzle import Solved, model_dir_of, score, solve_with_autoregressive, solve_with_diffusion, solver_config
from .reversal_experiment import mean_spread
from .sudoku import Puzzle

METRICS = ("solved", "cell_accuracy", "cells_before_first_mistake", "forced_commits", "steps")


@dataclass(frozen=True)
class Decoding:
    """One way to decode: a remasking strategy, and either a step count (None: one open cell per step) or a
    confidence threshold (commit every cell above it, at least one a step)."""

    name: str
    strategy: str = "low_confidence"
    steps: int | None = None
    threshold: float | None = None
    twin: bool = False  # the autoregressive twin, left to right (the other fields are ignored)


STUDY = [
    Decoding("easy-first: low_confidence"),
    Decoding("easy-first: margin", "margin"),
    Decoding("easy-first: entropy", "entropy"),
    Decoding("random order", "random"),
    Decoding("left to right (forced order)", "left_to_right"),
    *[Decoding(f"threshold {t}", threshold=t) for t in (0.5, 0.7, 0.9, 0.99)],
    *[Decoding(f"low_confidence, {s} steps", steps=s) for s in (11, 6, 3)],
    Decoding("autoregressive twin, left to right", twin=True),
]


def steps_taken(solved: Solved) -> float:
    """Mean number of denoising steps a puzzle needed (its last commit's step + 1)."""
    steps = [max(when.values()) + 1 if when else 0 for when in solved.commit_steps]
    return sum(steps) / len(steps)


def run_decoding(decoding: Decoding, pair: dict[str, tuple], puzzles: list[Puzzle], size: int) -> dict:
    """Score one decoding of one seed's pair: solved, cell accuracy, cells before the first mistake (diffusion
    only), steps (one per open cell for the twin) and seconds per puzzle."""
    tic = time.perf_counter()
    if decoding.twin:
        model, tokenizer = pair["autoregressive"]
        scores = score(puzzles, solve_with_autoregressive(model, tokenizer, puzzles))
        scores["steps"] = sum(p.blanks for p in puzzles) / len(puzzles)
    else:
        model, tokenizer = pair["diffusion"]
        config = solver_config(size, decoding.strategy, decoding.steps, decoding.threshold)
        solved = solve_with_diffusion(model, tokenizer, puzzles, config)
        scores = score(puzzles, solved)
        scores["steps"] = steps_taken(solved)
    scores["seconds_per_puzzle"] = (time.perf_counter() - tic) / len(puzzles)
    return scores


def run_pairs(results: dict, results_path: Path) -> dict[int, dict[str, tuple]]:
    """{seed: {kind: (model, tokenizer)}} for every seed of a puzzle run whose two models are on disk."""
    pairs: dict[int, dict[str, tuple]] = {}
    for run in results["runs"]:
        where = model_dir_of(results_path, run)
        if (where / "config.json").exists():
            pairs.setdefault(run["seed"], {})[run["model"]] = load_model(where)
    return {seed: pair for seed, pair in pairs.items() if len(pair) == 2}


def decoding_study(results_path: str | Path, puzzles: list[Puzzle], decodings: list[Decoding] = STUDY,
                   progress: Callable[[float, str], None] | None = None) -> dict:
    """Every decoding on every seed of a puzzle run; rows of mean ± std over seeds (see :data:`METRICS`)."""
    results_path = Path(results_path)
    results = json.loads(results_path.read_text())
    pairs = run_pairs(results, results_path)
    if not pairs:
        raise ValueError(f"no trained pair of models found for {results_path}")
    size = results["config"]["size"]
    rows = []
    for i, decoding in enumerate(decodings):
        if progress:
            progress(i / len(decodings), decoding.name)
        per_seed = [run_decoding(decoding, pair, puzzles, size) for pair in pairs.values()]
        row = {"decoding": asdict(decoding), "seeds": sorted(pairs), "n": len(puzzles)}
        for metric in (*METRICS, "seconds_per_puzzle"):
            values = [s[metric] for s in per_seed if metric in s]
            if values:
                row[metric] = mean_spread(values)
        rows.append(row)
    return {"results": str(results_path), "rows": rows}


def study_markdown(study: dict) -> str:
    """The study as a table (percentages with ± std over seeds)."""
    def cell(row, metric, percent):
        if metric not in row:
            return ""
        m, s = row[metric]["mean"], row[metric]["std"]
        return f"{100 * m:.1f}% ± {100 * s:.1f}" if percent else f"{m:.1f} ± {s:.1f}"

    lines = ["| decoding | solved | empty-cell accuracy | cells before the first mistake | forced commits | steps |",
             "|---|---|---|---|---|---|"]
    for row in study["rows"]:
        lines.append(f"| {row['decoding']['name']} | {cell(row, 'solved', True)} | "
                     f"{cell(row, 'cell_accuracy', True)} | {cell(row, 'cells_before_first_mistake', False)} | "
                     f"{cell(row, 'forced_commits', True)} | {cell(row, 'steps', False)} |")
    return "\n".join(lines)


def study_figure(study: dict):
    """Solve rate by decoding (bars, ± std over seeds), the twin in orange."""
    import plotly.graph_objects as go

    rows = study["rows"]
    names = [f"{r['decoding']['name']}<br>({r['steps']['mean']:.1f} steps)" for r in rows]
    colours = ["#f58518" if r["decoding"]["twin"] else "#4c78a8" for r in rows]
    fig = go.Figure(go.Bar(x=names, y=[100 * r["solved"]["mean"] for r in rows], marker_color=colours,
                           error_y=dict(type="data", array=[100 * r["solved"]["std"] for r in rows]),
                           text=[f"{100 * r['solved']['mean']:.0f}%" for r in rows], textposition="outside"))
    seeds = len(rows[0]["seeds"])
    fig.update_layout(title=f"6x6 Sudoku solved, by decoding order ({rows[0]['n']} held-out puzzles, {seeds} "
                            f"seed{'s' * (seeds != 1)}, ± std)",
                      yaxis_title="puzzles solved (%)", yaxis_range=[0, 110], height=460,
                      margin=dict(l=50, r=20, t=60, b=170))
    return fig
