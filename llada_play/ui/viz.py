"""Pictures of a denoising run, shared by the app and the notebooks: token cells as HTML and plotly figures."""
from __future__ import annotations

import html
import math

from ..diffusion.trace import Trace

MASK_GLYPH = "▒"
CELL_CSS = """
<style>
.lp-canvas {font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-size: 13px; line-height: 2.1;}
.lp-block {display: inline; border-left: 2px dashed #8a8fa3; margin-left: 2px; padding-left: 2px;}
.lp-prompt {color: #444; background: #eef0f4; border-radius: 3px; padding: 1px 2px; white-space: pre-wrap;}
.lp-tok {display: inline-block; border-radius: 3px; padding: 0 2px; margin: 1px; white-space: pre;
         line-height: 1.5;}
.lp-mask {color: #9aa0ac; background: #f1f2f5;}
.lp-new {outline: 2px solid #e8590c;}
.lp-eos {font-style: italic; color: #7048e8;}
.lp-forced {text-decoration: underline wavy #c2255c;}
.lp-revised {box-shadow: inset 0 0 0 2px #1c7ed6; font-weight: 600;}
.lp-remasked {outline: 2px dashed #1c7ed6;}
.lp-legend {font-size: 13px; color: #444;}
.lp-legend .lp-tok {margin-right: 4px;}
</style>
"""
# What every mark of the canvas means, for the page beside it (the same classes as the cells)
CANVAS_LEGEND = CELL_CSS + (
    '<div class="lp-legend">'
    '<span class="lp-prompt">prompt</span> '
    f'<span class="lp-tok lp-mask">{MASK_GLYPH}</span>masked (grey text: the model\'s guess) '
    '<span class="lp-tok" style="background:hsl(140, 55%, 85%)">a</span>'
    '<span class="lp-tok" style="background:hsl(140, 55%, 50%)">a</span>committed (darker: more confident) '
    '<span class="lp-tok lp-new" style="background:hsl(140, 55%, 70%)">a</span>new at this step '
    '<span class="lp-tok lp-revised" style="background:hsl(140, 55%, 70%)">a</span>revised (hover: its history) '
    f'<span class="lp-tok lp-mask lp-remasked">{MASK_GLYPH}</span>sent back to the mask '
    '<span class="lp-tok lp-forced" style="background:hsl(140, 10%, 85%)">a</span>by hand '
    '<span class="lp-tok lp-eos" style="background:hsl(140, 55%, 70%)">eos</span>end-of-text '
    '<span class="lp-block">&nbsp;</span>block boundary</div>')


def revision_note(step: int, old: str, new: str | None, probability: float | None = None) -> str:
    """One line of a cell's history: "'love' -> 'hate' at step 12 (p 0.71)", or sent back to the mask."""
    if new is None:
        return f"{old!r} sent back to the mask at step {step + 1}"
    return f"{old!r} -> {new!r} at step {step + 1}" + (f" (p {probability:.2f})" if probability is not None else "")


def add_revision_notes(history: dict[int, list[str]], step: int, remasked, edits, pieces, row: int = 0) -> int:
    """Add one step's revisions (a record's or a trace step's lists) to ``history`` (position -> notes);
    returns how many it made."""
    made = 0
    for r, pos, old in remasked:
        if r == row:
            history.setdefault(pos, []).append(revision_note(step, token_text(pieces.get(old, "?")), None))
            made += 1
    for r, pos, old, new, p in edits:
        if r == row:
            history.setdefault(pos, []).append(revision_note(step, token_text(pieces.get(old, "?")),
                                                             token_text(pieces.get(new, "?")), p))
            made += 1
    return made


def note_revisions(record, history: dict[int, list[str]], pieces, row: int = 0) -> int:
    """Add a live step's revisions to ``history`` (position -> notes); returns how many it made."""
    return add_revision_notes(history, record.step, record.remasked, record.edits, pieces, row)


def trace_history(trace: Trace, step: int, row: int = 0) -> dict[int, list[str]]:
    """position -> notes of the revisions made in the first ``step`` steps of a recorded run."""
    pieces = {int(k): v for k, v in trace.tokens.items()}
    history: dict[int, list[str]] = {}
    for i, s in enumerate(trace.steps[:step]):
        add_revision_notes(history, i, s.remasked, s.edits, pieces, row)
    return history


def token_text(piece: str) -> str:
    """A printable label for one token: newlines and tabs made visible."""
    return piece.replace("\n", "↵").replace("\t", "⇥") or "∅"


def confidence_color(confidence: float | None) -> str:
    """Green, darker for more confident commits; grey when unknown."""
    if confidence is None or (isinstance(confidence, float) and math.isnan(confidence)):
        return "hsl(140, 10%, 85%)"
    lightness = 92 - 45 * max(0.0, min(1.0, confidence))
    return f"hsl(140, 55%, {lightness:.0f}%)"


def render_canvas(tokens: list[int], prompt_length: int, block_length: int, mask_id: int, pieces: dict,
                  confidence: dict[int, float] | None = None, new: set[int] | None = None,
                  forced: set[int] | None = None, eos_ids: set[int] = frozenset(), guesses: dict[int, int] | None = None,
                  interactive: bool = False, history: dict[int, list[str]] | None = None) -> str:
    """HTML for one state of the canvas. ``pieces`` maps token id to text; ``guesses`` shows the model's
    current prediction inside still-masked cells (greyed); ``history``: position -> notes of its revisions
    (drawn outlined in blue, the notes on hover)."""
    confidence, new, forced, guesses = confidence or {}, new or set(), forced or set(), guesses or {}
    history = history or {}
    prompt_text = "".join(pieces.get(t, "?") for t in tokens[:prompt_length])
    parts = [CELL_CSS, '<div class="lp-canvas">']
    if prompt_length:
        parts.append(f'<span class="lp-prompt" title="prompt">{html.escape(prompt_text)}</span>')
    for start in range(prompt_length, len(tokens), block_length):
        parts.append(f'<span class="lp-block" title="block {(start - prompt_length) // block_length}">')
        for pos in range(start, min(start + block_length, len(tokens))):
            tok = tokens[pos]
            attrs = f'data-pos="{pos}"'
            if tok == mask_id:
                if interactive:  # the app defines lpPick(); it fills a hidden box that asks for candidates
                    attrs += f' onclick="lpPick({pos})" style="cursor:pointer"' 
                guess = guesses.get(pos)
                label = token_text(pieces.get(guess, "")) if guess is not None else MASK_GLYPH
                tip = f"position {pos}: masked" + (f", model guesses {label!r}" if guess is not None else "")
                tip += "".join(f"\n{note}" for note in history.get(pos, []))
                marks = "lp-tok lp-mask" + (" lp-remasked" if pos in history else "")
                parts.append(f'<span class="{marks}" {attrs} title="{html.escape(tip)}">'
                             f'{html.escape(label)}</span>')
                continue
            classes = ["lp-tok"] + (["lp-revised"] if pos in history else [])
            cursor = ""
            if interactive:  # a committed cell can be sent back to the mask (the step tab)
                attrs += f' onclick="lpPick({pos})"'
                cursor = "; cursor:pointer"

            if pos in new:
                classes.append("lp-new")
            if tok in eos_ids:
                classes.append("lp-eos")
            if pos in forced:
                classes.append("lp-forced")
            conf = confidence.get(pos)
            label = token_text(pieces.get(tok, "?"))
            tip = f"position {pos}: {label!r}" + (f", confidence {conf:.2f}" if conf is not None else "")
            tip += "".join(f"\n{note}" for note in history.get(pos, []))
            style = f"background:{confidence_color(conf)}{cursor}"
            parts.append(f'<span class="{" ".join(classes)}" {attrs} style="{style}" '
                         f'title="{html.escape(tip)}">{html.escape(label)}</span>')
            if pieces.get(tok, "").endswith("\n"):
                parts.append("<br>")  # committed line breaks break the canvas too, so verse looks like verse
        parts.append("</span>")
    parts.append("</div>")
    return "".join(parts)


def trace_step_html(trace: Trace, step: int, row: int = 0, eos_ids: set[int] = frozenset(),
                    show_guesses: bool = True) -> str:
    """The canvas after ``step`` steps (0 = before the first), committed cells coloured by their confidence."""
    states = trace.states(row)
    step = max(0, min(step, len(trace.steps)))
    confidence, forced = {}, set()
    for s in trace.steps[:step]:
        for r, pos, _tok, conf, *_ in s.commits:
            if r == row:
                confidence[pos] = conf
        for r, pos, _tok in s.forced:
            if r == row:
                forced.add(pos)
    new = set()
    guesses = {}
    if step > 0:
        last = trace.steps[step - 1]
        new = {pos for r, pos, *_ in last.commits + last.forced + last.edits if r == row}
    if show_guesses and step < len(trace.steps):
        guesses = {pos: tok for r, pos, tok, _ in trace.steps[step].predictions if r == row}
    pieces = {int(k): v for k, v in trace.tokens.items()}
    return render_canvas(states[step], trace.prompt_length, trace.block_length, trace.mask_id, pieces,
                         confidence, new, forced, eos_ids, guesses, history=trace_history(trace, step, row))


def commit_order_figure(trace: Trace, row: int = 0, title: str = "When each position was committed"):
    """Scatter of position (x) against the step that committed it (y), coloured by confidence."""
    import plotly.graph_objects as go

    xs, ys, cs, labels = [], [], [], []
    pieces = {int(k): v for k, v in trace.tokens.items()}
    for i, s in enumerate(trace.steps):
        for r, pos, tok, conf, *_ in s.commits:
            if r == row:
                xs.append(pos - trace.prompt_length)
                ys.append(i)
                cs.append(conf)
                labels.append(token_text(pieces.get(tok, str(tok))))
        for r, pos, tok in s.forced:
            if r == row:
                xs.append(pos - trace.prompt_length)
                ys.append(i)
                cs.append(None)
                labels.append(token_text(pieces.get(tok, str(tok))) + " (by hand)")
    fig = go.Figure(go.Scatter(
        x=xs, y=ys, mode="markers", text=labels,
        marker=dict(color=[c if c is not None else 0 for c in cs], colorscale="Viridis", cmin=0, cmax=1, size=9,
                    colorbar=dict(title="confidence"), line=dict(width=0)),
        hovertemplate="position %{x}<br>step %{y}<br>%{text}<extra></extra>"))
    for b in range(0, trace.gen_length + 1, trace.block_length):
        fig.add_vline(x=b - 0.5, line=dict(color="#adb5bd", dash="dash", width=1))
    fig.update_layout(title=title, xaxis_title="position in the generation", yaxis_title="step",
                      template="plotly_white", height=360, margin=dict(l=50, r=20, t=50, b=45))
    fig.update_yaxes(autorange="reversed")
    return fig


def confidence_figure(trace: Trace, row: int = 0, title: str = "Confidence of each commit"):
    """Confidence of the tokens committed at each step (one dot per token, mean as a line)."""
    import plotly.graph_objects as go

    xs, ys, means = [], [], []
    for i, s in enumerate(trace.steps):
        vals = [c for r, _p, _t, c, *_ in s.commits if r == row and c is not None]
        xs += [i] * len(vals)
        ys += vals
        means.append(sum(vals) / len(vals) if vals else None)
    fig = go.Figure([
        go.Scatter(x=xs, y=ys, mode="markers", name="committed token", marker=dict(size=5, opacity=0.5)),
        go.Scatter(x=list(range(len(means))), y=means, mode="lines", name="mean per step"),
    ])
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="probability of the committed token",
                      yaxis_range=[0, 1.02], template="plotly_white", height=320,
                      margin=dict(l=50, r=20, t=50, b=45))
    return fig


class PieceCache(dict):
    """token id -> text, decoded on first use."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    def __missing__(self, token: int) -> str:
        self[token] = text = self.tokenizer.decode([token])
        return text

    def get(self, token, default=None):
        return default if token is None or token < 0 else self[token]


def note_commits(record, confidences: dict[int, float], row: int = 0) -> list[int]:
    """Add a step's commits to ``confidences`` (position -> confidence of its commit); returns their positions.
    A viewer that skips drawing a step still notes its commits, so that the next drawing colours them."""
    committed = record.committed[row].nonzero().flatten().tolist()
    for pos in committed:
        confidences[pos] = float(record.confidence[row, pos])
    return committed


def record_canvas(record, pieces: PieceCache, confidences: dict[int, float], row: int = 0,
                  eos_ids: set[int] = frozenset(), interactive: bool = False,
                  history: dict[int, list[str]] | None = None) -> str:
    """HTML for the canvas right after a live step: ``confidences`` (position -> confidence of its commit)
    is updated with this step's commits; hand-committed tokens waiting for the next step are shown too."""
    tokens = record.x_after[row].tolist()
    committed = note_commits(record, confidences, row)
    forced = {pos for r, pos, _t in record.forced if r == row}
    for r, pos, tok in record.forced:
        if r == row:
            tokens[pos] = tok
    guesses = {p: t for p, t in enumerate(record.predicted[row].tolist()) if t >= 0 and tokens[p] == record.mask_id}
    return render_canvas(tokens, record.prompt_length, record.block_length, record.mask_id, pieces, confidences,
                         set(committed), forced, eos_ids, guesses, interactive, history)


def commit_order_panels(results, height: int = 360):
    """One commit-order panel per compared setting, side by side (``results`` from ``compare_settings``)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(results), subplot_titles=[r.name for r in results], shared_yaxes=True)
    for i, r in enumerate(results, 1):
        for trace in commit_order_figure(r.trace).data:
            trace.marker.showscale = i == len(results)
            fig.add_trace(trace, row=1, col=i)
    fig.update_yaxes(autorange="reversed", title_text="step", row=1, col=1)
    fig.update_layout(template="plotly_white", height=height, showlegend=False, margin=dict(l=50, r=20, t=60, b=40))
    return fig
