"""A Sudoku grid as HTML, drawn from one frame of a solving run; shared by the app's Puzzle tab and the notebook.

Givens are bold; committed digits sit on a green shade as dark as the model was sure (the probability in the
lower corner, the commit number in the upper one); open cells show the model's current guess in grey; the cells
committed at this step are outlined; in the last frame wrong digits are red (hover for the right one), or in every
frame with ``reveal``. A digit the model changed (token editing) has a blue frame and its history on hover, the
same mark as a revised token on the Denoise canvas.
"""
from __future__ import annotations

import html
import math

from ..experiments.puzzle_replay import Attempt, GridFrame, commit_order
from ..experiments.sudoku import BOXES, Puzzle
from .viz import confidence_color

GRID_CSS = """
<style>
.lp-sudoku-box {display: inline-block; max-width: 100%; vertical-align: top;}
.lp-sudoku {border-collapse: collapse; border: 3px solid #343a40; margin: 4px 0; font-family: ui-sans-serif,
            system-ui, 'DejaVu Sans', sans-serif; table-layout: fixed;}
:is(.lp-sudoku, .lp-sample) td {width: 52px; min-width: 52px; max-width: 52px; height: 52px;
    border: 1px solid #adb5bd; text-align: center; font-size: 24px; line-height: 1; position: relative; padding: 0;
    color: #1c3d5a; box-sizing: border-box;}
:is(.lp-sudoku, .lp-sample) td.lp-right {border-right: 3px solid #343a40;}
:is(.lp-sudoku, .lp-sample) td.lp-below {border-bottom: 3px solid #343a40;}
:is(.lp-sudoku, .lp-sample) td.lp-given {font-weight: 700; color: #111;}
:is(.lp-sudoku, .lp-sample) td.lp-guess {color: #adb5bd; font-style: italic; font-size: 20px;}
:is(.lp-sudoku, .lp-sample) td.lp-now {outline: 3px solid #e8590c; outline-offset: -3px;}
:is(.lp-sudoku, .lp-sample) td.lp-wrong {color: #c92a2a; background: #ffe3e3 !important; font-weight: 700;}
:is(.lp-sudoku, .lp-sample) td.lp-edited {box-shadow: inset 0 0 0 3px #1c7ed6; font-weight: 700;}
:is(.lp-sudoku, .lp-sample) td.lp-edited .lp-e {position: absolute; right: 3px; top: 1px; font-size: 12px;
    line-height: 1; color: #1c7ed6;}
/* the commit number (upper left) and the probability (lower right): legible from the back of a room */
:is(.lp-sudoku, .lp-sample) .lp-k {position: absolute; left: 3px; top: 2px; font-size: 12px; line-height: 1;
    font-weight: 600; font-style: normal; color: #343a40;}
:is(.lp-sudoku, .lp-sample) .lp-p {position: absolute; right: 3px; bottom: 2px; font-size: 11px; line-height: 1;
    color: #343a40; font-style: normal; font-weight: 400;}
.lp-sudoku-title {font-weight: 600; margin-top: 4px;}
.lp-sudoku-note {font-size: 14px; color: #495057; max-width: 330px;}
.lp-sudoku-legend {display: flex; flex-wrap: wrap; gap: 6px 16px; align-items: center; font-size: 14px;
                   color: #343a40; margin: 6px 0;}
.lp-sample {border-collapse: collapse; border: 2px solid #343a40; margin: 0;}
.lp-sudoku-legend .lp-sample td {width: 40px; min-width: 40px; max-width: 40px; height: 40px; font-size: 19px;}
.lp-sudoku-legend > span {display: inline-flex; align-items: center; gap: 6px;}
</style>
"""


def edit_history(frames: list[GridFrame]) -> dict[int, list[str]]:
    """{cell: its edits so far, oldest first, as "3 -> 6 at step 6, p 0.98"}."""
    history: dict[int, list[str]] = {}
    for frame in frames:
        for cell, old, new, p in frame.edited:
            history.setdefault(cell, []).append(f"{old or '_'} -> {new or '_'} at step {frame.step}, p {p:.2f}")
    return history


def _cell(puzzle: Puzzle, frame: GridFrame, cell: int, wrong: set[int], order: dict[int, int], column: int,
          row: int, history: dict[int, list[str]]) -> str:
    box_rows, box_cols = BOXES[puzzle.size]
    classes = []
    if (column + 1) % box_cols == 0 and column + 1 < puzzle.size:
        classes.append("lp-right")
    if (row + 1) % box_rows == 0 and row + 1 < puzzle.size:
        classes.append("lp-below")
    value, style, text, title = frame.values[cell], "", "", ""
    probability = frame.confidence[cell]
    if puzzle.givens[cell]:
        classes.append("lp-given")
        text, title = str(value), "given"
    elif value:
        style = f"background: {confidence_color(probability)}"
        text = f"{value}<span class='lp-p'>{probability:.2f}</span>" if not math.isnan(probability) else str(value)
        title = f"committed with probability {probability:.2f}"
        if cell in order:
            text = f"<span class='lp-k'>#{order[cell]}</span>{text}"
            title = f"commit #{order[cell]}, {title}"
        if cell in history:
            classes.append("lp-edited")
            text += "<span class='lp-e'>&#9998;</span>"
            title += "; edited: " + "; ".join(history[cell])
        if cell in wrong:
            classes.append("lp-wrong")
            title += f"; the solution has {puzzle.solution[cell]}"
    elif frame.guesses[cell]:
        classes.append("lp-guess")
        text = f"{frame.guesses[cell]}<span class='lp-p'>{probability:.2f}</span>"
        title = f"open; the model's current guess, probability {probability:.2f}"
    if cell in frame.new:
        classes.append("lp-now")
    return (f"<td class='{' '.join(classes)}' style='{style}' title='{html.escape(title)}' "
            f"data-cell='{cell}'>{text}</td>")


def grid_html(puzzle: Puzzle, frame: GridFrame, title: str = "", note: str = "", final: bool = False,
              order: dict[int, int] | None = None, history: dict[int, list[str]] | None = None) -> str:
    """One frame as a table; ``final`` marks wrong cells red (the solution is known to us, not to the model);
    ``order`` ({cell: commit number}, see :func:`commit_order`) numbers the committed cells; ``history`` (see
    :func:`edit_history`) frames the edited ones."""
    order, history = order or {}, history or {}
    wrong = {c for c, (v, s) in enumerate(zip(frame.values, puzzle.solution)) if v and v != s} if final else set()
    n = puzzle.size
    rows = "".join("<tr>" + "".join(_cell(puzzle, frame, r * n + c, wrong, order, c, r, history) for c in range(n))
                   + "</tr>"
                   for r in range(n))
    head = f"<div class='lp-sudoku-title'>{html.escape(title)}</div>" if title else ""
    foot = f"<div class='lp-sudoku-note'>{html.escape(note)}</div>" if note else ""
    return f"{GRID_CSS}<div class='lp-sudoku-box'>{head}<table class='lp-sudoku'>{rows}</table>{foot}</div>"


def givens_frame(puzzle: Puzzle) -> GridFrame:
    """The frame before the first step: the givens alone, every other cell open and not yet looked at."""
    return GridFrame(0, puzzle.givens, tuple(0 for _ in puzzle.givens),
                     tuple(math.nan if v else 0.0 for v in puzzle.givens))


def _sample(cell: str, words: str) -> str:
    return f"<span><table class='lp-sample'><tr>{cell}</tr></table>{html.escape(words)}</span>"


def legend_html() -> str:
    """What the marks in a grid mean, each beside a sample cell drawn with the grid's own styles."""
    committed = confidence_color(0.97)
    samples = [
        _sample("<td class='lp-given'>4</td>", "given (bold)"),
        _sample("<td class='lp-guess'>3<span class='lp-p'>0.41</span></td>",
                "open: the model's current guess (grey) and its probability"),
        _sample(f"<td style='background: {committed}'><span class='lp-k'>#7</span>5<span class='lp-p'>0.97</span>"
                "</td>", "committed: #7 = the 7th cell filled; green as dark as the model was sure"),
        _sample(f"<td class='lp-now' style='background: {committed}'>2</td>", "committed at this step"),
        _sample("<td class='lp-wrong'>6</td>", "wrong (shown at the end)"),
    ]
    return f"{GRID_CSS}<div class='lp-sudoku-legend'>{''.join(samples)}</div>"


def attempt_html(attempt: Attempt, step: int | None = None, title: str = "", reveal: bool = False) -> str:
    """An attempt at ``step`` (its last frame by default, with the outcome under it and wrong cells red; with
    ``reveal`` wrong cells are red from the step they are committed, so a repair is seen)."""
    last = len(attempt.frames) - 1
    step = last if step is None else max(0, min(step, last))
    frame = attempt.frames[step]
    note = attempt.summary() if step == last else f"step {frame.step} of {attempt.frames[-1].step}"
    return grid_html(attempt.puzzle, frame, title, note, final=reveal or step == last,
                     order=commit_order(attempt.frames[:step + 1]), history=edit_history(attempt.frames[:step + 1]))


def _frame_shapes(puzzle: Puzzle, frame: GridFrame, x0: float, y0: float, final: bool, order: dict[int, int],
                  edited: set[int] = frozenset()):
    """Plotly shapes and annotations of one grid whose top-left corner is (x0, y0), one unit per cell."""
    n = puzzle.size
    box_rows, box_cols = BOXES[n]
    shapes, notes = [], []
    for cell, value in enumerate(frame.values):
        r, c = divmod(cell, n)
        given, wrong = puzzle.givens[cell] != 0, final and value and value != puzzle.solution[cell]
        fill = ("#ffe3e3" if wrong else "white" if given or not value
                else confidence_color(frame.confidence[cell]))
        shapes.append(dict(type="rect", x0=x0 + c, x1=x0 + c + 1, y0=y0 - r - 1, y1=y0 - r, fillcolor=fill,
                           line=dict(color="#ced4da", width=1), layer="below"))
        if cell in frame.new:
            shapes.append(dict(type="rect", x0=x0 + c + 0.06, x1=x0 + c + 0.94, y0=y0 - r - 0.94, y1=y0 - r - 0.06,
                               line=dict(color="#e8590c", width=2)))
        if cell in edited:  # the blue frame of an edited digit, as on the page
            shapes.append(dict(type="rect", x0=x0 + c + 0.12, x1=x0 + c + 0.88, y0=y0 - r - 0.88, y1=y0 - r - 0.12,
                               line=dict(color="#1c7ed6", width=3)))
        digit = value or frame.guesses[cell]
        if digit:
            text = f"<b>{digit}</b>" if given else f"<i>{digit}</i>" if not value else str(digit)
            colour = "#111" if given else "#c92a2a" if wrong else "#1c3d5a" if value else "#adb5bd"
            notes.append(dict(x=x0 + c + 0.5, y=y0 - r - 0.5, text=text, showarrow=False,
                              font=dict(size=15, color=colour)))
        if value and cell in order:
            notes.append(dict(x=x0 + c + 0.05, y=y0 - r - 0.05, text=f"#{order[cell]}", showarrow=False,
                              xanchor="left", yanchor="top", font=dict(size=10, color="#343a40")))
    for k in range(n + 1):  # box borders over the cell borders
        if k % box_cols == 0:
            shapes.append(dict(type="line", x0=x0 + k, x1=x0 + k, y0=y0, y1=y0 - n, line=dict(color="#343a40", width=2)))
        if k % box_rows == 0:
            shapes.append(dict(type="line", x0=x0, x1=x0 + n, y0=y0 - k, y1=y0 - k, line=dict(color="#343a40", width=2)))
    return shapes, notes


def attempts_figure(attempts: dict[str, Attempt], fractions: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0),
                    title: str = "", reveal: bool = False):
    """A static strip: each attempt (one row) at a few points of its run (columns, as fractions of its steps),
    drawn like :func:`grid_html` (``reveal``: wrong digits red from their commit on, edited ones framed in blue).
    The picture a notebook shows where its widgets cannot run."""
    import plotly.graph_objects as go

    shapes, notes = [], []
    n = next(iter(attempts.values())).puzzle.size
    for row, (name, attempt) in enumerate(attempts.items()):
        last = len(attempt.frames) - 1
        y0 = -row * (n + 2.0)
        notes.append(dict(x=0, y=y0 + 0.35, text=f"<b>{html.escape(name)}</b>: {html.escape(attempt.summary())}",
                          showarrow=False, xanchor="left", yanchor="bottom", font=dict(size=12)))
        for col, fraction in enumerate(fractions):
            step = round(fraction * last)
            x0 = col * (n + 0.8)
            frame_shapes, frame_notes = _frame_shapes(attempt.puzzle, attempt.frames[step], x0, y0 - 0.9,
                                                      reveal or step == last, commit_order(attempt.frames[:step + 1]),
                                                      set(edit_history(attempt.frames[:step + 1])))
            shapes += frame_shapes
            notes += frame_notes + [dict(x=x0 + n / 2, y=y0 - 0.45, text=f"step {attempt.frames[step].step}",
                                         showarrow=False, font=dict(size=10, color="#495057"))]
    width = len(fractions) * (n + 0.8)
    height = len(attempts) * (n + 2.0)
    fig = go.Figure()
    fig.update_layout(shapes=shapes, annotations=notes, title=title or None, plot_bgcolor="white",
                      width=int(60 + 46 * width), height=int((60 if title else 20) + 46 * height),
                      margin=dict(l=10, r=10, t=50 if title else 10, b=10), showlegend=False)
    fig.update_xaxes(visible=False, range=[-0.2, width], fixedrange=True)
    fig.update_yaxes(visible=False, range=[-height + 0.4, 0.9], fixedrange=True, scaleanchor="x")
    return fig
