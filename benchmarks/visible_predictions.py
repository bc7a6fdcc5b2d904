"""What a masked-diffusion model predicts where the token is already visible (issue 25: token editing).

    python benchmarks/visible_predictions.py [--windows 32] [--puzzles 500] [--editing-model DIR]
        [--text-editing-model DIR] [--sampler-editing]

An editing sampler (LLaDA 2.1's token-to-token step) replaces a committed token when the model's prediction
there differs and is confident enough. A model trained only on masked positions (LLaDA 1.0's absorbing
objective) never had a loss at a visible position, so what it predicts there was never trained. For each
model this prints, over visible positions:

- agrees: how often the argmax is the token shown;
- wrong > 0.5, wrong > 0.9: how often the argmax differs from it with a top probability above 0.5 or 0.9
  (what an edit threshold of 0.5 or 0.9 would rewrite, though the token is right);
- restored: with 10% of the measured positions replaced by random ordinary tokens, how often the argmax at
  a replaced position is the original token (what editing could repair).

For the Sudoku models it also prints what editing after decoding would buy: the puzzles solved easy-first
(one cell a step, as `llada-play puzzle` scores them), then after up to three passes that each replace every
empty cell whose argmax differs from the digit there with a probability above 0.9 (a plain edit pass over
the finished answer, not the sampler's interleaved editing step); with ``--sampler-editing`` also the solve
rate under the sampler's own token editing (``edit_threshold`` 0.9, 0.7, 0.5 with ``edit_steps=4``).

Each figure is measured on clean inputs ("visible") and with half the measured positions masked ("half
masked", a canvas in the middle of its generation). The text model is the shipped default on held-out
Shakespeare windows (the plays its training left out); the Sudoku models are the shipped diffusion model and
the one trained with token editing, on the run's held-out puzzles, measured on the answer's empty cells (the
puzzle is the prompt; the answer's givens are shown, as when they are pinned).
"""
from __future__ import annotations

import argparse
import platform
import time
from datetime import date
from pathlib import Path

import torch

from llada_play.diffusion.losses import corrupt_visible
from llada_play.experiments.puzzle import (PuzzleConfig, Solved, encode_puzzles, held_out, score, solve_with_diffusion,
                                           solver_config)
from llada_play.model.checkpoint import PUZZLE_MODELS_DIR, load_model
from llada_play.model.adapters import as_denoiser
from llada_play.training.data import PackedBatches, pack_tokens, read_corpus, split_documents
from llada_play.training.trainer import edit_tokens_for

ROOT = Path(__file__).resolve().parents[1]
EDITING_MODEL = ROOT / "data" / "puzzle" / "editing" / "seed0" / "diffusion" / "final"


@torch.no_grad()
def figures(model, tokenizer, ids: torch.LongTensor, measured: torch.Tensor, seed: int = 0,
            batch_size: int = 64) -> dict[str, float]:
    """The figures above for rows ``ids``, over the positions ``measured`` (bool, same shape)."""
    denoiser = as_denoiser(model)
    tokens = edit_tokens_for(model, denoiser.mask_id, tokenizer)
    g = torch.Generator().manual_seed(seed)
    half = measured & (torch.rand(ids.shape, generator=g) < 0.5)
    corrupted_ids, corrupted = corrupt_visible(ids, ids, measured, 0.1, tokens, g)
    inputs = {"visible": (ids, measured), "half masked": (ids.masked_fill(half, denoiser.mask_id), measured & ~half)}
    out = {}
    for name, (canvas, where) in inputs.items():
        probs, guess = _top(denoiser, canvas, batch_size)
        wrong = where & (guess != ids)
        count = where.sum().item()
        out[f"{name}: agrees"] = (where & (guess == ids)).sum().item() / count
        out[f"{name}: wrong > 0.5"] = (wrong & (probs > 0.5)).sum().item() / count
        out[f"{name}: wrong > 0.9"] = (wrong & (probs > 0.9)).sum().item() / count
    _, guess = _top(denoiser, corrupted_ids, batch_size)
    out["restored (10% corrupted)"] = (guess == ids)[corrupted].float().mean().item()
    out["positions"] = int(measured.sum())
    return out


def _top(denoiser, canvas: torch.LongTensor, batch_size: int) -> tuple[torch.Tensor, torch.LongTensor]:
    """Top probability and argmax at every position (the mask id never predicted, as in the sampler)."""
    probs, guesses = [], []
    for start in range(0, len(canvas), batch_size):
        logits = denoiser(canvas[start:start + batch_size]).float()
        logits[..., denoiser.mask_id] = float("-inf")
        p, g = logits.softmax(-1).max(-1)
        probs.append(p)
        guesses.append(g)
    return torch.cat(probs), torch.cat(guesses)


@torch.no_grad()
def edit_passes(model, tokenizer, count: int, threshold: float = 0.9, passes: int = 3) -> dict[str, float]:
    """Solve rate easy-first, then after each edit pass over the finished answers (empty cells only)."""
    puzzles = held_out(PuzzleConfig(), count)
    solved = solve_with_diffusion(model, tokenizer, puzzles, solver_config(PuzzleConfig().size))
    ids, measured = puzzle_rows(tokenizer, count)
    cells = ids.shape[1] // 2
    digits = {d: tokenizer.convert_tokens_to_ids(str(d)) for d in range(1, PuzzleConfig().size + 1)}
    canvas = ids.clone()
    canvas[:, cells:] = torch.tensor([[digits.get(v, tokenizer.mask_token_id) for v in g] for g in solved.grids])
    denoiser = as_denoiser(model)
    out = {"easy-first": score(puzzles, Solved(solved.grids))["solved"]}
    for k in range(1, passes + 1):
        probs, guess = _top(denoiser, canvas, 100)
        edit = measured & (guess != canvas) & (probs > threshold)
        canvas = torch.where(edit, guess, canvas)
        grids = [tuple(int(t) if t.isdigit() else 0 for t in tokenizer.convert_ids_to_tokens(row[cells:].tolist()))
                 for row in canvas]
        out[f"after {k} edit pass{'es' if k > 1 else ''}"] = score(puzzles, Solved(grids))["solved"]
        out[f"cells edited in pass {k}"] = int(edit.sum())
    return out


def sampler_editing(model, tokenizer, count: int, thresholds=(0.9, 0.7, 0.5)) -> dict[str, float]:
    """Solve rate easy-first under the sampler's token editing at each threshold (4 edit steps a block)."""
    puzzles = held_out(PuzzleConfig(), count)
    plain = solver_config(PuzzleConfig().size)
    out = {}
    for threshold in thresholds:
        config = plain.replace(edit_threshold=threshold, edit_steps=4)
        out[f"sampler edit_threshold {threshold}"] = score(puzzles, solve_with_diffusion(model, tokenizer, puzzles,
                                                                                         config))["solved"]
    return out


def shakespeare_windows(tokenizer, count: int, seq_len: int = 256) -> torch.LongTensor:
    """``count`` fixed windows of the held-out plays (the default model's split: seed 0, 5% of documents)."""
    _, val_docs = split_documents(read_corpus(ROOT / "data" / "shakespeare"), 0.05, seed=0)
    batches = PackedBatches(pack_tokens(tokenizer, val_docs.values(), seq_len), seq_len, count)
    return batches.fixed_batches(1)[0]["input_ids"]


def puzzle_rows(tokenizer, count: int) -> tuple[torch.LongTensor, torch.Tensor]:
    """Held-out puzzles as prompt + solution rows, and the answer's empty cells."""
    puzzles = held_out(PuzzleConfig(), count)
    prompts, solutions = encode_puzzles(tokenizer, puzzles)
    blank = torch.tensor([[v == 0 for v in p.givens] for p in puzzles])
    measured = torch.cat([torch.zeros_like(blank), blank], 1)
    return torch.cat([prompts, solutions], 1), measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=32, help="held-out Shakespeare windows of 256 tokens")
    parser.add_argument("--puzzles", type=int, default=500, help="held-out puzzles")
    parser.add_argument("--editing-model", default=str(EDITING_MODEL), help="the Sudoku model trained to edit")
    parser.add_argument("--sampler-editing", action="store_true",
                        help="also solve the puzzles with the sampler's token editing (several minutes)")
    parser.add_argument("--text-editing-model", default=None,
                        help="a text model trained to edit (e.g. the default fine-tuned with --edit-ratio), beside it")
    args = parser.parse_args()
    tic = time.perf_counter()
    rows, repairs = {}, {}
    model, tokenizer = load_model()
    ids = shakespeare_windows(tokenizer, args.windows)
    everywhere = torch.ones_like(ids, dtype=torch.bool)
    rows["Shakespeare, default model (absorbing)"] = figures(model, tokenizer, ids, everywhere)
    if args.text_editing_model:
        model, _ = load_model(args.text_editing_model)
        rows[f"Shakespeare, fine-tuned to edit, token_editing={getattr(model.config, 'token_editing', 0)}"] = figures(
            model, tokenizer, ids, everywhere)
    for name, path in (("Sudoku, shipped diffusion (absorbing)", PUZZLE_MODELS_DIR / "diffusion" / "final"),
                       ("Sudoku, trained to edit", Path(args.editing_model))):
        if not (path / "config.json").exists():
            print(f"skipped {name}: no model at {path}")
            continue
        model, tokenizer = load_model(path)
        ids, measured = puzzle_rows(tokenizer, args.puzzles)
        name = f"{name}, token_editing={getattr(model.config, 'token_editing', 0)}"
        rows[name] = figures(model, tokenizer, ids, measured)
        repairs[name] = edit_passes(model, tokenizer, args.puzzles)
        if args.sampler_editing:
            repairs[name].update(sampler_editing(model, tokenizer, args.puzzles))
    columns = [c for c in next(iter(rows.values())) if c != "positions"]
    print("| model | positions | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for name, row in rows.items():
        print(f"| {name} | {row['positions']} | " + " | ".join(f"{row[c]:.1%}" for c in columns) + " |")
    if repairs:
        columns = list(next(iter(repairs.values())))
        print("\n| model | " + " | ".join(columns) + " |")
        print("|---|" + "---|" * len(columns))
        for name, row in repairs.items():
            print(f"| {name} | " + " | ".join(f"{v:.1%}" if isinstance(v, float) else str(v) for v in row.values())
                  + " |")
    print(f"{date.today().isoformat()}, {platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, {time.perf_counter() - tic:.0f} s")


if __name__ == "__main__":
    main()
