"""One puzzle solved step by step, as frames of a grid: what the app animates and the notebook replays.

A frame is the grid after a step: the digits committed so far, the model's current best guess (and its
probability) in every cell still open, and the cells committed at that step. The diffusion model's frames come
from its sampler's step hooks, the twin's from its next-token distributions, so both are the runs themselves,
not re-enactments.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..diffusion.autoregressive import generate_autoregressive
from ..diffusion.sampler_config import SamplerConfig
from ..diffusion.sampling import denoise
from .puzzle import decode_grids, encode_puzzles, forced_share, pinned_givens, solver_config
from .sudoku import Puzzle, check_size, mistakes


@dataclass(frozen=True)
class GridFrame:
    """The grid after ``step`` steps (0: the givens alone)."""

    step: int
    values: tuple[int, ...]  # committed digits (the givens included); 0 where the cell is still open
    guesses: tuple[int, ...]  # at open cells the model's best digit at this step (0 when it has not looked yet)
    confidence: tuple[float, ...]  # probability of the guess (open cells) or of the digit when committed; NaN: given
    new: tuple[int, ...] = ()  # cells committed at this step
    # Second thoughts at this step: (cell, old digit, new digit, probability) for a committed cell the model
    # replaced (token editing), and the cells it sent back to the mask (remasking; they show as open again)
    edited: tuple[tuple[int, int, int, float], ...] = ()
    remasked: tuple[int, ...] = ()

    @property
    def open_cells(self) -> int:
        return self.values.count(0)


@dataclass(frozen=True)
class Attempt:
    """A whole solving run: its frames, and how it ended against the puzzle's solution."""

    puzzle: Puzzle
    frames: list[GridFrame]

    @property
    def grid(self) -> tuple[int, ...]:
        return self.frames[-1].values

    @property
    def wrong(self) -> list[int]:
        return mistakes(self.grid, self.puzzle)

    @property
    def order(self) -> list[int]:
        """Cells in the order they were committed (givens excluded)."""
        return list(commit_order(self.frames))

    @property
    def cells_before_first_mistake(self) -> int:
        wrong = set(self.wrong)
        return next((k for k, cell in enumerate(self.order) if cell in wrong), len(self.order))

    @property
    def revisions(self) -> list[tuple[int, int, int, int, float]]:
        """Every edit of the run, (step, cell, old digit, new digit, probability), in order."""
        return [(frame.step, *edit) for frame in self.frames for edit in frame.edited]

    @property
    def repairs(self) -> list[tuple[int, int, int, int, float]]:
        """The edits that turned a wrong digit into the solution's (same fields as :attr:`revisions`)."""
        solution = self.puzzle.solution
        return [r for r in self.revisions if r[2] != solution[r[1]] and r[3] == solution[r[1]]]

    def forced_commits(self) -> tuple[int, int]:
        """(commits of a cell that a single forced at that moment, all commits): how often the solver took a cell
        a human would call obvious, judged on the grid as it stood before each step."""
        when = {cell: frame.step for frame in self.frames for cell in frame.new}
        return forced_share(self.puzzle, self.grid, when)

    def summary(self) -> str:
        """One line: solved or how many cells are wrong, in how many steps, and when the first mistake came."""
        steps = self.frames[-1].step
        edits, repairs = len(self.revisions), len(self.repairs)
        revised = (f" ({edits} edit{'s' * (edits != 1)}, {repairs} of them a repair)" if edits else "")
        if not self.wrong:
            return f"solved in {steps} steps{revised}"
        return (f"{len(self.wrong)} wrong cell{'s' * (len(self.wrong) != 1)} after {steps} steps{revised}; the first "
                f"mistake was its commit number {self.cells_before_first_mistake + 1} of {len(self.order)}")


def commit_order(frames: list[GridFrame]) -> dict[int, int]:
    """{cell: its commit number, from 1} over ``frames``, in commit order (cells of one step by index)."""
    cells = [cell for frame in frames for cell in sorted(frame.new)]
    return {cell: k + 1 for k, cell in enumerate(cells)}


def _start(puzzle: Puzzle) -> GridFrame:
    nan = tuple(math.nan if v else 0.0 for v in puzzle.givens)
    return GridFrame(0, puzzle.givens, tuple(0 for _ in puzzle.givens), nan)


def _check(puzzle: Puzzle, tokenizer) -> None:
    check_size(puzzle.size)
    digits = sum(1 for token in tokenizer.get_vocab() if token.isdigit())
    if digits != puzzle.size:
        raise ValueError(f"this model was trained on {digits}x{digits} puzzles; the puzzle is "
                         f"{puzzle.size}x{puzzle.size}")


def diffusion_frames(model, tokenizer, puzzle: Puzzle, config: SamplerConfig | None = None) -> Iterator[GridFrame]:
    """Frames of the diffusion model solving ``puzzle`` (givens pinned), one per denoising step, as they
    happen; ``config`` defaults to easy-first, one open cell per step."""
    _check(puzzle, tokenizer)
    config = config or solver_config(puzzle.size, steps=puzzle.blanks)
    prompts, _ = encode_puzzles(tokenizer, [puzzle])

    def digit(token: int) -> int:
        return decode_grids(tokenizer, torch.tensor([[token]]))[0][0]

    frame = _start(puzzle)
    yield frame
    with torch.no_grad():
        run = denoise(model, prompts, config, constraints=pinned_givens(tokenizer, [puzzle]))
        for record in run:
            start = record.prompt_length
            values = decode_grids(tokenizer, record.x_after[:, start:])[0]
            predicted = decode_grids(tokenizer, record.predicted[:, start:].clamp(min=0))[0]
            probs = record.confidence[0, start:].tolist()
            new = tuple(int(p) - start for p in record.committed[0].nonzero().flatten().tolist())
            guesses = tuple(g if v == 0 else 0 for g, v in zip(predicted, values))
            confidence = tuple(probs[c] if (c in new or (v == 0 and not math.isnan(probs[c]))) else old
                               for c, (v, old) in enumerate(zip(values, frame.confidence)))
            edited = tuple((position - start, digit(old), digit(token), p)
                           for _, position, old, token, p in record.edits)
            for cell, _, _, p in edited:  # an edited cell shows how sure the model was of the new digit
                confidence = confidence[:cell] + (p,) + confidence[cell + 1:]
            remasked = tuple(position - start for _, position, _ in record.remasked)
            frame = GridFrame(record.step + 1, values, guesses, confidence, new, edited, remasked)
            yield frame


def autoregressive_frames(model, tokenizer, puzzle: Puzzle) -> list[GridFrame]:
    """Frames of the twin solving ``puzzle`` left to right (givens pinned): one per open cell, each showing the
    digit the twin committed there; the twin cannot guess ahead, so no open cell carries a guess."""
    _check(puzzle, tokenizer)
    prompts, _ = encode_puzzles(tokenizer, [puzzle])
    seen: list[tuple[int, float]] = []

    def on_token(i: int, probs: torch.Tensor, tokens: torch.LongTensor) -> None:
        seen.append((int(tokens[0]), float(probs[0, tokens[0]])))

    cells = prompts.shape[1]
    generate_autoregressive(model, prompts, cells, constraints=pinned_givens(tokenizer, [puzzle]), step_hook=on_token)
    digits = decode_grids(tokenizer, torch.tensor([[token for token, _ in seen]]))[0]
    frames = [_start(puzzle)]
    for cell, given in enumerate(puzzle.givens):
        if given:
            continue
        last = frames[-1]
        values = list(last.values)
        values[cell] = digits[cell]
        confidence = list(last.confidence)
        confidence[cell] = seen[cell][1]
        frames.append(GridFrame(last.step + 1, tuple(values), last.guesses, tuple(confidence), (cell,)))
    return frames


def solve_live(model, tokenizer, puzzle: Puzzle, config: SamplerConfig | None = None) -> Attempt:
    """The diffusion model's whole run as an :class:`Attempt` (every frame kept)."""
    return Attempt(puzzle, list(diffusion_frames(model, tokenizer, puzzle, config)))


def twin_attempt(model, tokenizer, puzzle: Puzzle) -> Attempt:
    return Attempt(puzzle, autoregressive_frames(model, tokenizer, puzzle))


# The fast setting at which second thoughts are shown: LLaDA 2.1's joint threshold decoding on the editing Sudoku
# model, a commit threshold of 0.9 (several cells a step) and an edit threshold of 0.9 with up to 2 steps of edits
# once the grid is full. Measured on the 500 held-out puzzles (data/revision/revision.json): 51.2% solved with
# the commit threshold alone in 4.3 passes, 68.2% with edits in 5.3, the largest gain editing made there.
FAST_THRESHOLD = 0.9
SECOND_THOUGHTS = {"edit_threshold": 0.9, "edit_steps": 2}


def fast_config(size: int, edits: bool, threshold: float = FAST_THRESHOLD, **revision) -> SamplerConfig:
    """Easy-first with a commit threshold; ``edits`` adds :data:`SECOND_THOUGHTS` (or ``revision``'s options)."""
    config = solver_config(size, threshold=threshold)
    return config.replace(**(revision or SECOND_THOUGHTS)) if edits else config


@dataclass(frozen=True)
class SecondThoughts:
    """One puzzle at the fast setting, without and with edits."""

    index: int  # its place in the puzzles searched
    baseline: Attempt
    revised: Attempt


def first_repaired(model, tokenizer, puzzles: list[Puzzle], limit: int = 100, **revision) -> SecondThoughts:
    """The rule the app and the notebook use to pick a puzzle that shows second thoughts: the first of
    ``puzzles`` (in their order, the first ``limit`` searched) that the model fails at the fast commit threshold
    alone and solves with edits, at least one edit turning a wrong digit into the right one."""
    size = puzzles[0].size if puzzles else 0
    for index, puzzle in enumerate(puzzles[:limit]):
        baseline = solve_live(model, tokenizer, puzzle, fast_config(size, False))
        if not baseline.wrong:
            continue
        revised = solve_live(model, tokenizer, puzzle, fast_config(size, True, **revision))
        if not revised.wrong and revised.repairs:
            return SecondThoughts(index, baseline, revised)
    raise ValueError(f"none of the first {min(limit, len(puzzles))} puzzles is failed without edits and repaired "
                     "with them at this setting")
