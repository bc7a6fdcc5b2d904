"""The Puzzle tab: the shipped Sudoku pair solving one grid live, the diffusion model in the order its remasking
strategy picks, its twin left to right beside it; or, with "Second thoughts", the model that edits at a fast
setting with and without token editing, so a wrong digit is seen being repaired."""
from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from functools import partial

import gradio as gr

from ...experiments.puzzle import PuzzleConfig, held_out, solve_rates, solver_config
from ...experiments.puzzle_replay import (FAST_THRESHOLD, SECOND_THOUGHTS, Attempt, GridFrame, SecondThoughts,
                                          commit_order, diffusion_frames, fast_config, first_repaired, twin_attempt)
from ...experiments.sudoku import check_puzzle, grid_text, make_puzzles
from ...model.checkpoint import SHIPPED_MODELS
from ..errors import Refusal, shown_in_page
from ..paths import PUZZLE_RESULTS, REVISION_RESULTS
from ..puzzle_view import attempt_html, edit_history, givens_frame, grid_html, legend_html
from ..registry import ModelRegistry

DIFFUSION_NAME = "Sudoku 6x6, diffusion (seed 0)"
TWIN_NAME = "Sudoku 6x6, autoregressive twin (seed 0)"
EDITING_NAME = "Sudoku 6x6, diffusion that edits (seed 0)"
SIZE, GIVENS = 6, 14  # the shipped pair's training distribution (data/puzzle/README.md)
STRATEGIES = ["low_confidence", "margin", "entropy", "random", "left_to_right"]
# The page opens on held-out puzzle #1 (counting from 0) of the shipped run: the first on which the two shipped
# models' outcomes differ (tests/test_puzzle.py checks it), so that the first Solve shows what the tab is about.
FIRST_HELD_OUT = 1
# The grids' row wraps: each grid is a block of its own width (about 330 px), side by side where they fit, one
# under the other on a narrow page, never over each other or past the page's edge.
CSS = (".lp-givens textarea {font-family: ui-monospace, 'DejaVu Sans Mono', monospace; white-space: pre}\n"
       ".lp-puzzle-grids {flex-wrap: wrap !important; gap: 16px !important}\n"
       ".lp-puzzle-grids > div {flex: 1 1 340px !important; min-width: min(340px, 100%) !important; "
       "max-width: 100%; overflow-x: auto}")
TITLES = {"solve": ("Diffusion model ({strategy})", "Autoregressive twin (left to right)"),
          "second": ("With second thoughts (token editing)", "Without (commits are final)")}


def rows_text(grid: tuple[int, ...], size: int = SIZE) -> str:
    """The grid as one line per row, ``_`` for an empty cell: what the givens box shows and accepts."""
    text = grid_text(grid)
    return "\n".join(text[r * size:(r + 1) * size] for r in range(size))


def shipped_results() -> dict | None:
    """The shipped pair's results file (data/puzzle/results.json), None where it is absent."""
    return json.loads(PUZZLE_RESULTS.read_text()) if PUZZLE_RESULTS.exists() else None


def first_puzzle(results: dict | None) -> tuple[str, str]:
    """(givens text, note) of the puzzle the page opens on (see :data:`FIRST_HELD_OUT`), drawn from the shipped
    run's held-out stream (with the default settings, which that run used, where its results are absent)."""
    config = PuzzleConfig.from_dict(results["config"]) if results else PuzzleConfig()
    puzzle = held_out(config, FIRST_HELD_OUT + 1)[FIRST_HELD_OUT]
    return rows_text(puzzle.givens), (f"Held-out puzzle #{FIRST_HELD_OUT} of the shipped run ({puzzle.blanks} open "
                                      "cells), or press New puzzle.")


def new_puzzle(seed: int | None = None) -> tuple[str, str]:
    """(givens text, note): a fresh puzzle from the pair's training distribution, drawn with a seed that its
    training set (data seed 0) did not use."""
    seed = random.randrange(1_000_000) if seed is None else seed
    puzzle = make_puzzles(1, SIZE, GIVENS, seed=10_000 + seed)[0]
    return rows_text(puzzle.givens), f"A new {SIZE}x{SIZE} puzzle ({puzzle.blanks} open cells, seed {seed})."


def measured_note(results: dict | None) -> str:
    """The shipped pair's measured solve rates, from its results (mean ± std over seeds)."""
    if not results:
        return ""
    rates = solve_rates(results)
    if set(rates) != {"diffusion", "autoregressive"}:
        return ""
    d, a = rates["diffusion"], rates["autoregressive"]
    return (f"Measured on {d['n']} held-out puzzles ({d['seeds']} training seeds, mean ± std): the diffusion "
            f"model solves **{d['solved']['mean']:.1%} ± {d['solved']['std']:.1%}** easy-first, the twin "
            f"**{a['solved']['mean']:.1%} ± {a['solved']['std']:.1%}** left to right (data/puzzle/README.md).")


def _models(registry: ModelRegistry, names=(DIFFUSION_NAME, TWIN_NAME)):
    missing = [name for name in names if name not in SHIPPED_MODELS]
    if missing:
        raise Refusal(f"the Sudoku models are not here ({', '.join(missing)}): train them with "
                       "`llada-play puzzle --out runs/puzzle` (`--edit-ratio 0.1` for the one that edits) and see "
                       "data/puzzle/README.md")
    return [registry.get(name) for name in names]


_REPAIRED: dict[int, SecondThoughts] = {}  # the rule's puzzle, found once per process


def repaired_puzzle(registry: ModelRegistry, results: dict | None) -> tuple[str, str]:
    """(givens text, note) of the puzzle "Second thoughts" opens on, chosen by :func:`first_repaired`'s rule
    over the shipped run's held-out puzzles."""
    if not _REPAIRED:
        config = PuzzleConfig.from_dict(results["config"]) if results else PuzzleConfig()
        [(model, tokenizer)] = _models(registry, (EDITING_NAME,))
        _REPAIRED[0] = first_repaired(model, tokenizer, held_out(config, 100))
    found = _REPAIRED[0]
    return rows_text(found.revised.puzzle.givens), (
        f"Held-out puzzle #{found.index} of the shipped run ({found.revised.puzzle.blanks} open cells): the first "
        f"that the model that edits gets wrong at commit threshold {FAST_THRESHOLD} alone and solves with edit "
        f"threshold {SECOND_THOUGHTS['edit_threshold']}, at least one edit turning a wrong digit right.")


def preview(givens: str, second: bool = False, strategy: str = "low_confidence") -> tuple:
    """(left grid, right grid, caption) before the first Solve: the puzzle's givens in both grids and what Solve
    will do. Givens that are not a grid yet (typed half way) leave a line saying so: Solve names what is wrong."""
    view = "second" if second else "solve"
    titles = [title.format(strategy=strategy) for title in TITLES[view]]
    try:
        puzzle = check_puzzle(givens or "", SIZE)
    except ValueError:
        waiting = ("<div class='lp-sudoku-note'>The grid is drawn here once the givens box holds a 6x6 puzzle "
                   "(press Solve to see what is wrong, or New puzzle).</div>")
        return waiting, waiting, ""
    frame = givens_frame(puzzle)
    if second:
        notes = (f"{puzzle.blanks} open cells; may change a committed digit", "the same model; every commit is final")
        caption = ("**Before Solve.** Both grids hold the givens alone. *Solve with and without edits* runs the "
                   "model that edits twice, one frame a step: on the left it may change a digit it committed.")
    else:
        notes = (f"{puzzle.blanks} open cells; fills the surest first", "fills the open cells left to right")
        caption = (f"**Before Solve.** Both grids hold the givens alone ({puzzle.blanks} open cells). *Solve* "
                   "fills them one frame a step: the diffusion model in the order its strategy picks, the twin "
                   "left to right, top to bottom; each committed cell then shows its commit number (#1 first) "
                   "and its probability.")
    left, right = (grid_html(puzzle, frame, title, note) for title, note in zip(titles, notes))
    return left, right, caption


def _view(attempt_frames: list[GridFrame], puzzle, twin: Attempt, k: int, done: bool, strategy: str) -> tuple:
    title, twin_title = (title.format(strategy=strategy) for title in TITLES["solve"])
    if done:
        attempt = Attempt(puzzle, attempt_frames)
        left = attempt_html(attempt, title=title)
        status = f"**Diffusion:** {attempt.summary()}.  **Twin:** {twin.summary()}."
    else:
        frame = attempt_frames[-1]
        left = grid_html(puzzle, frame, title, f"step {frame.step}: {frame.open_cells} cells still open",
                         order=commit_order(attempt_frames))
        status = "Solving..."
    right = attempt_html(twin, step=None if done else k, title=twin_title)
    return left, right, status


def solve(registry: ModelRegistry, givens: str, strategy: str, steps: float, delay: float) -> Iterator[tuple]:
    """Stream both attempts frame by frame; the twin (one cell per step, left to right) keeps pace."""
    with shown_in_page():
        if not givens or not givens.strip():
            raise ValueError("type the givens (one character per cell, _ for an empty one) or press New puzzle")
        puzzle = check_puzzle(givens, SIZE)
        config = solver_config(SIZE, strategy, steps=max(1, min(int(steps), puzzle.blanks)))  # refuses a strategy
        (model, tokenizer), (twin_model, twin_tokenizer) = _models(registry)
        twin = twin_attempt(twin_model, twin_tokenizer, puzzle)
        frames: list[GridFrame] = []
        for k, frame in enumerate(diffusion_frames(model, tokenizer, puzzle, config)):
            frames.append(frame)
            yield _view(frames, puzzle, twin, k, False, strategy)
            if delay > 0:
                time.sleep(delay)
    yield _view(frames, puzzle, twin, len(frames), True, strategy)


def _second_view(revised: list[GridFrame], baseline: list[GridFrame], puzzle, k: int, done: bool) -> tuple:
    attempts = Attempt(puzzle, revised), Attempt(puzzle, baseline)
    titles = TITLES["second"]
    if done:
        grids = [attempt_html(attempt, title=title, reveal=True) for attempt, title in zip(attempts, titles)]
    else:  # the run with edits so far (it may be the longer one), the one without kept in step with it
        frame = revised[-1]
        grids = [grid_html(puzzle, frame, titles[0], f"step {frame.step}: {frame.open_cells} cells still open",
                           final=True, order=commit_order(revised), history=edit_history(revised)),
                 attempt_html(attempts[1], step=min(k, len(baseline) - 1), title=titles[1], reveal=True)]
    if done:
        repairs = attempts[0].repairs
        said = "; ".join(f"cell {cell + 1} (row {cell // SIZE + 1}, column {cell % SIZE + 1}) {old} -> {new} at "
                         f"step {step}, p {p:.2f}" for step, cell, old, new, p in repairs)
        status = (f"**With edits:** {attempts[0].summary()}.  **Without:** {attempts[1].summary()}."
                  + (f"  Repaired: {said}." if said else ""))
    else:
        status = "Solving..."
    return grids[0], grids[1], status


def solve_second_thoughts(registry: ModelRegistry, givens: str, threshold: float, edit_threshold: float,
                          delay: float) -> Iterator[tuple]:
    """Stream the model that edits on ``givens`` at a commit threshold, with token editing and without, in step."""
    with shown_in_page():
        if not givens or not givens.strip():
            raise ValueError("type the givens (one character per cell, _ for an empty one) or press New puzzle")
        puzzle = check_puzzle(givens, SIZE)
        revision = {**SECOND_THOUGHTS, "edit_threshold": edit_threshold}
        revised_config = fast_config(SIZE, True, threshold, **revision)  # refuses thresholds outside (0, 1]
        [(model, tokenizer)] = _models(registry, (EDITING_NAME,))
        baseline = list(diffusion_frames(model, tokenizer, puzzle, fast_config(SIZE, False, threshold)))
        frames: list[GridFrame] = []
        for k, frame in enumerate(diffusion_frames(model, tokenizer, puzzle, revised_config)):
            frames.append(frame)
            yield _second_view(frames, baseline, puzzle, k, False)
            if delay > 0:
                time.sleep(delay)
    yield _second_view(frames, baseline, puzzle, len(frames), True)


def second_thoughts_words() -> str:
    """What the second-thoughts view shows, with the fast setting's measured solve rates where they are on disk."""
    words = (f"**Second thoughts.** The model that edits (the Sudoku model trained again to restore corrupted digits "
             f"too: LLaDA 2.1's token editing) commits every open cell it is at least {FAST_THRESHOLD:.0%} sure of at "
             "each step: fast, and it gets cells wrong. On the left it may **change a committed digit** when it is at "
             "least as sure of another digit there (the edit threshold); on the right every commit is final. "
             "**Red**: a digit that is wrong now (the solution is known to us, not to the model). **Blue frame, ✎**: "
             "a digit the model changed (hover for its history).")
    if not REVISION_RESULTS.exists():
        return words
    rows = {row["key"]: row for row in json.loads(REVISION_RESULTS.read_text())["sudoku"]["rows"]}
    edit = SECOND_THOUGHTS["edit_threshold"]
    alone = rows.get(f"editing: threshold {FAST_THRESHOLD}")
    edited = rows.get(f"editing: threshold {FAST_THRESHOLD} + edit {edit} (+{SECOND_THOUGHTS['edit_steps']})")
    if alone and edited:
        words += (f" Measured on {alone['n']} held-out puzzles: {alone['solved']:.1%} solved without edits in "
                  f"{alone['passes_mean']:.1f} forward passes a puzzle, {edited['solved']:.1%} with them in "
                  f"{edited['passes_mean']:.1f} (data/revision/README.md).")
    return words


def puzzle_tab(registry: ModelRegistry) -> None:
    results = shipped_results()
    with gr.Tab("Puzzle"):
        gr.Markdown(
            "**Where the order of unmasking decides success.** Both models were trained on the same 10,000 6x6 "
            "Sudoku puzzles for the same steps; they differ only in how they fill the grid. The diffusion model "
            "commits the cell it is surest of first (or in the order the strategy picks); its autoregressive twin "
            "must go left to right. Grey digits are the diffusion model's current guesses in open cells, the "
            "small number in the lower corner is the probability, the one in the upper corner (#) the order in "
            "which the cells were committed, the orange frame marks the cells committed at this step, and red "
            "digits at the end are wrong.\n\n" + measured_note(results))
        text, note = first_puzzle(results)
        with gr.Row():
            with gr.Column(scale=1):
                givens = gr.Textbox(value=text, lines=SIZE, label="Givens (digits 1-6, _ for an empty cell)",
                                    elem_classes=["lp-givens"])
                puzzle_note = gr.Markdown(note)
                new_button = gr.Button("New puzzle")
                strategy = gr.Dropdown(STRATEGIES, value="low_confidence", label="Remasking strategy (the order)")
                steps = gr.Slider(1, SIZE * SIZE, value=SIZE * SIZE, step=1,
                                  label="Steps (at most one per open cell; fewer commit several cells a step)")
                threshold = gr.Slider(0.5, 1, value=FAST_THRESHOLD, step=0.01, visible=False,
                                      label="Commit threshold (every open cell at least this sure, each step)")
                edit_threshold = gr.Slider(0.5, 1, value=SECOND_THOUGHTS["edit_threshold"], step=0.01,
                                           visible=False, label="Edit threshold (change a digit at least this sure)")
                delay = gr.Slider(0, 1, value=0.25, step=0.05, label="Pause between steps (s)")
                second = gr.Checkbox(False, label="Second thoughts: watch the model repair its mistakes")
                solve_button = gr.Button("Solve", variant="primary")
                second_button = gr.Button("Solve with and without edits", variant="primary", visible=False)
            with gr.Column(scale=2):
                words = gr.Markdown(second_thoughts_words(), visible=False)
                first_left, first_right, caption = preview(text)
                status = gr.Markdown(caption)
                # each grid keeps its width; a narrow page puts the second under the first (CSS above)
                with gr.Row(elem_classes=["lp-puzzle-grids"]):
                    with gr.Column(min_width=340):
                        left = gr.HTML(first_left)
                    with gr.Column(min_width=340):
                        right = gr.HTML(first_right)
                gr.HTML(legend_html())
    new_button.click(lambda: new_puzzle(), None, [givens, puzzle_note], api_name="puzzle_new")
    solve_button.click(partial(solve, registry), [givens, strategy, steps, delay], [left, right, status],
                       api_name="puzzle_solve")
    second_button.click(partial(solve_second_thoughts, registry), [givens, threshold, edit_threshold, delay],
                        [left, right, status], api_name="puzzle_second_thoughts")

    def switch(on: bool):
        """Show the controls of the chosen view; turning second thoughts on loads the rule's puzzle."""
        shown = [gr.update(visible=not on)] * 3 + [gr.update(visible=on)] * 4
        if not on:
            return [*shown, gr.update(), gr.update()]
        with shown_in_page():
            text, note = repaired_puzzle(registry, results)
        return [*shown, text, note]

    second.change(switch, second, [strategy, steps, solve_button, threshold, edit_threshold, second_button, words,
                                   givens, puzzle_note], api_name="puzzle_second_thoughts_switch").then(
        preview, [givens, second, strategy], [left, right, status], api_name=False, show_progress="hidden")
    # a new puzzle (New puzzle, the switch, or typed by hand) is drawn at once, before any Solve
    givens.change(preview, [givens, second, strategy], [left, right, status], api_name=False,
                  show_progress="hidden")
