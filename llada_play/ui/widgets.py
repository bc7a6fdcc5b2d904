"""Notebook widgets: a denoising player for any trace (ipywidgets + plotly FigureWidget).

    from llada_play.ui.widgets import DenoisingPlayer
    DenoisingPlayer(trace)            # a step slider, a play button, the canvas and a token grid
    PuzzleReplay({"diffusion": attempt, "twin": other})   # Sudoku attempts side by side, one slider
"""
from __future__ import annotations

import math

import ipywidgets as widgets

from ..diffusion.trace import Trace
from ..experiments.puzzle_replay import Attempt
from .puzzle_view import attempt_html, attempts_figure
from .static import StaticFallback
from .viz import token_text, trace_step_html


def grid_figure(trace: Trace, step: int, row: int = 0, width: int = 16):
    """Plotly heatmap of the generation as a grid of cells (``width`` per line): the value is the confidence of
    each committed token, masked cells are empty, labels are the tokens; the cells committed at ``step`` are
    outlined in the hover text."""
    import plotly.graph_objects as go

    states = trace.states(row)
    step = max(0, min(step, len(trace.steps)))
    seq = states[step][trace.prompt_length:]
    confidence: dict[int, float] = {}
    for s in trace.steps[:step]:
        for r, pos, _tok, conf, *_ in s.commits:
            if r == row:
                confidence[pos - trace.prompt_length] = conf
        for r, pos, _tok in s.forced:
            if r == row:
                confidence[pos - trace.prompt_length] = 1.0
    pieces = {int(k): v for k, v in trace.tokens.items()}
    rows = math.ceil(len(seq) / width)
    z, text = [], []
    for r in range(rows):
        z_row, t_row = [], []
        for c in range(width):
            i = r * width + c
            if i >= len(seq):
                z_row.append(None)
                t_row.append("")
            elif seq[i] == trace.mask_id:
                z_row.append(None)
                t_row.append("▒")
            else:
                z_row.append(confidence.get(i))
                t_row.append(token_text(pieces.get(seq[i], str(seq[i]))))
        z.append(z_row)
        text.append(t_row)
    masked = [[1 if t == "▒" else None for t in t_row] for t_row in text]
    fig = go.Figure([
        go.Heatmap(z=masked, text=text, texttemplate="%{text}", colorscale=[[0, "#e9ecef"], [1, "#e9ecef"]],
                   showscale=False, xgap=2, ygap=2, hovertemplate="masked<extra></extra>"),
        go.Heatmap(z=z, text=text, texttemplate="%{text}", colorscale="Greens", zmin=0, zmax=1,
                   colorbar=dict(title="confidence"), xgap=2, ygap=2,
                   hovertemplate="%{text}<br>confidence %{z:.2f}<extra></extra>")])
    fig.update_layout(height=60 + 34 * rows, margin=dict(l=10, r=10, t=30, b=10), template="plotly_white",
                      title=f"step {step} of {len(trace.steps)}")
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    return fig


def player_strip_figure(trace: Trace, row: int = 0, fractions: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0),
                        width: int = 16):
    """A few frames of a run stacked (the grid of :func:`grid_figure` at fractions of its steps): the picture a
    :class:`DenoisingPlayer` leaves where widgets cannot run."""
    from plotly.subplots import make_subplots

    n = len(trace.steps)
    steps = sorted({round(f * n) for f in fractions})
    frames = [grid_figure(trace, step, row, width) for step in steps]
    fig = make_subplots(rows=len(steps), cols=1, vertical_spacing=0.04,
                        subplot_titles=[f.layout.title.text for f in frames])
    for i, frame in enumerate(frames):
        for trace_ in frame.data:
            fig.add_trace(trace_.update(showscale=False), row=i + 1, col=1)
    rows = math.ceil(trace.gen_length / width)
    fig.update_layout(height=40 + len(steps) * (40 + 30 * rows), margin=dict(l=10, r=10, t=40, b=10),
                      template="plotly_white", showlegend=False)
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    return fig


class DenoisingPlayer(StaticFallback, widgets.VBox):
    """Scrub or play a recorded denoising run: canvas (HTML) and token grid (plotly FigureWidget)."""

    def __init__(self, trace: Trace, row: int = 0, eos_ids: set[int] = frozenset(), grid: bool = True,
                 interval_ms: int = 150):
        self.trace, self.row, self.eos_ids = trace, row, set(eos_ids)
        n = len(trace.steps)
        self.slider = widgets.IntSlider(value=n, min=0, max=n, description="step", continuous_update=True,
                                        layout=widgets.Layout(width="60%"))
        self.play = widgets.Play(value=0, min=0, max=n, interval=interval_ms, description="play")
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.block_button = widgets.Button(description="next block", tooltip="jump to the end of the next block")
        self.block_button.on_click(self._next_block)
        self.canvas = widgets.HTML(trace_step_html(trace, n, row, self.eos_ids))
        children = [widgets.HBox([self.play, self.slider, self.block_button]), self.canvas]
        self.figure = None
        if grid:
            import plotly.graph_objects as go

            self.figure = go.FigureWidget(grid_figure(trace, n, row))
            children.append(self.figure)
        super().__init__(children)
        self.slider.observe(self._show, names="value")

    def _show(self, change) -> None:
        step = change["new"]
        self.canvas.value = trace_step_html(self.trace, step, self.row, self.eos_ids)
        if self.figure is not None:
            fresh = grid_figure(self.trace, step, self.row)
            with self.figure.batch_update():
                for shown, new in zip(self.figure.data, fresh.data):  # the masked cells, then the committed ones
                    shown.z, shown.text = new.z, new.text
                self.figure.layout.title = fresh.layout.title

    def static_figure(self):
        return player_strip_figure(self.trace, self.row)

    def _next_block(self, _button) -> None:
        """Block-by-block playback: the last step of the block after the one shown."""
        current = self.slider.value
        ends = [i + 1 for i, s in enumerate(self.trace.steps)
                if i + 1 == len(self.trace.steps) or self.trace.steps[i + 1].block != s.block]
        later = [e for e in ends if e > current]
        self.slider.value = later[0] if later else 0


class PuzzleReplay(StaticFallback, widgets.VBox):
    """Sudoku attempts side by side (grids as in the app's Puzzle tab), scrubbed or played with one step slider;
    ``reveal`` marks wrong digits red from the step they are committed (so that a repair by token editing is
    seen), not only at the end.

    Its display carries a static strip of the attempts as ``image/png`` too (plotly + kaleido), which is what a
    reader sees where widgets cannot run (GitHub, an HTML export)."""

    def __init__(self, attempts: dict[str, Attempt], interval_ms: int = 300, reveal: bool = False):
        self.attempts, self.reveal = attempts, reveal  # reveal: wrong digits red from their commit on
        n = max(len(a.frames) for a in attempts.values()) - 1
        self.slider = widgets.IntSlider(value=n, min=0, max=n, description="step", layout=widgets.Layout(width="60%"))
        self.play = widgets.Play(value=0, min=0, max=n, interval=interval_ms, description="play")
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.grids = [widgets.HTML(attempt_html(a, title=name, reveal=reveal)) for name, a in attempts.items()]
        super().__init__([widgets.HBox([self.play, self.slider]), widgets.HBox(self.grids)])
        self.slider.observe(self._show, names="value")

    def _show(self, change) -> None:
        for grid, (name, attempt) in zip(self.grids, self.attempts.items()):
            last = len(attempt.frames) - 1
            grid.value = attempt_html(attempt, step=None if change["new"] >= last else change["new"], title=name,
                                      reveal=self.reveal)

    def static_figure(self):
        return attempts_figure(self.attempts, reveal=self.reveal)
