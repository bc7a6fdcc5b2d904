"""Pictures of a denoising run, shared by the app, the notebooks and the exported replays: token cells as HTML
(one renderer for every canvas) and plotly figures in the same colours."""
from __future__ import annotations

import html
import math

from ..diffusion.trace import Trace

MASK_GLYPH = "▒"
# Confidence in [0, 1] as the canvas draws it (committed cells) and as the charts colour their dots: one scale.
CONFIDENCE_HUE, CONFIDENCE_LIGHTEST, CONFIDENCE_DARKEST = 140, 92, 40


def confidence_color(confidence: float | None) -> str:
    """Green, darker for more confident commits; grey when unknown (a token written by hand)."""
    if confidence is None or (isinstance(confidence, float) and math.isnan(confidence)):
        return "hsl(140, 10%, 85%)"
    c = max(0.0, min(1.0, confidence))
    lightness = CONFIDENCE_LIGHTEST - (CONFIDENCE_LIGHTEST - CONFIDENCE_DARKEST) * c
    return f"hsl({CONFIDENCE_HUE}, 55%, {lightness:.0f}%)"


# The same scale for plotly (its colour bars and markers)
CONFIDENCE_SCALE = [[v / 4, confidence_color(v / 4)] for v in range(5)]

CELL_CSS = """
<style>
.lp-canvas {font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-size: 15px; line-height: 2.3;
            color: #1b1e24;}
.lp-block {display: inline; background: #f6f7fb; border-left: 3px solid #8a8fa3; padding: 3px 4px 3px 2px;
           margin-right: 2px;}
.lp-block:nth-of-type(even) {background: #eef2fb;}
.lp-block-label {font: 600 11px ui-sans-serif, system-ui, sans-serif; color: #5c6170; vertical-align: super;
                 margin-right: 3px; user-select: none;}
.lp-prompt {color: #333; background: #e3e6ec; border-radius: 3px; padding: 2px 3px; white-space: pre-wrap;}
.lp-tok {display: inline-block; border-radius: 3px; padding: 0 3px; margin: 1px; white-space: pre;
         line-height: 1.6; border: 1px solid transparent;}
.lp-mask {color: #7a8090; background: #fff; border: 1px dashed #9aa0ac; font-style: italic;}
.lp-new {outline: 3px solid #e8590c; outline-offset: 0;}
.lp-eos {font-style: italic; color: #5f3dc4; font-weight: 600;}
.lp-forced {text-decoration: underline wavy #c2255c;}
.lp-pinned {border: 2px solid #5f3dc4; font-weight: 600;}
.lp-revised {box-shadow: inset 0 0 0 2px #1c7ed6; font-weight: 600;}
.lp-remasked {outline: 2px dashed #1c7ed6;}
.lp-picked {outline: 3px solid #1864ab !important; outline-offset: 1px;}
.lp-legend {font-size: 14px; color: #333; line-height: 2.2; font-family: ui-sans-serif, system-ui, sans-serif;}
.lp-legend .lp-item {display: inline-block; margin-right: 14px; white-space: nowrap;}
.lp-legend .lp-tok {margin-right: 4px; font-family: ui-monospace, 'DejaVu Sans Mono', monospace;}
.lp-legend .lp-block {padding: 2px 6px;}
</style>
"""


def _legend_item(cell: str, words: str) -> str:
    return f'<span class="lp-item">{cell}{words}</span>'


# What every mark of the canvas means, for the page beside it (the same classes as the cells)
CANVAS_LEGEND = CELL_CSS + (
    '<div class="lp-legend">'
    + _legend_item('<span class="lp-prompt">prompt</span> ', "")
    + _legend_item('<span class="lp-tok lp-mask">the</span>', "masked: grey italic is the model's current guess")
    + _legend_item(f'<span class="lp-tok" style="background:{confidence_color(0.5)}">a</span>'
                   '<span class="lp-tok lp-new" style="background:' + confidence_color(0.5) + '">a</span>',
                   "committed at this step (orange frame)")
    + _legend_item("".join(f'<span class="lp-tok" style="background:{confidence_color(c)};margin:0">a</span>'
                           for c in (0.05, 0.35, 0.65, 0.95)),
                   " committed earlier: confidence 0 → 1 (the charts use the same greens)")
    + _legend_item('<span class="lp-tok lp-pinned" style="background:' + confidence_color(None) + '">a</span>',
                   "pinned by you")
    + _legend_item('<span class="lp-tok lp-forced" style="background:' + confidence_color(None) + '">a</span>',
                   "written by hand")
    + _legend_item('<span class="lp-tok lp-eos" style="background:' + confidence_color(0.5) + '">eos</span>',
                   "end-of-text")
    + _legend_item('<span class="lp-block"><span class="lp-block-label">block 2</span>…</span>',
                   " a block: filled before the next starts")
    + _legend_item('<span class="lp-tok lp-revised" style="background:' + confidence_color(0.5) + '">a</span>',
                   "revised (hover: its history)")
    + _legend_item(f'<span class="lp-tok lp-mask lp-remasked">{MASK_GLYPH}</span>', "sent back to the mask")
    + "</div>")

# One step of the sampler in three sentences, above every canvas that plays a run
STEP_EXPLANATION = (
    "**One step:** the model reads the whole canvas and guesses every masked cell at once (grey italic text). "
    "The sampler then commits some of those guesses, the ones its *remasking* rule ranks first (by default the "
    "most confident), about *generation length ÷ steps* of them, and leaves the rest masked for the next step. "
    "The canvas is cut into *blocks*, filled left to right: a block is finished before the next one starts.")


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


def render_canvas(tokens: list[int], prompt_length: int, block_length: int, mask_id: int, pieces: dict,
                  confidence: dict[int, float] | None = None, new: set[int] | None = None,
                  forced: set[int] | None = None, eos_ids: set[int] = frozenset(), guesses: dict[int, int] | None = None,
                  interactive: bool = False, history: dict[int, list[str]] | None = None,
                  pinned: set[int] | None = None, picked: int | None = None, css: bool = True,
                  show_prompt: bool = True) -> str:
    """HTML for one state of the canvas. ``pieces`` maps token id to text; ``guesses`` shows the model's
    current prediction inside still-masked cells (grey italic); ``history``: position -> notes of its revisions
    (drawn outlined in blue, the notes on hover); ``pinned``: positions the user fixed before the run;
    ``picked``: the cell the user selected (framed); ``css``: include the cells' style sheet (a page drawing
    many frames needs it once); ``show_prompt``: False leaves the prompt out (a chat's whole conversation)."""
    confidence, new, forced, guesses = confidence or {}, new or set(), forced or set(), guesses or {}
    history, pinned = history or {}, pinned or set()
    prompt_text = "".join(pieces.get(t, "?") for t in tokens[:prompt_length])
    parts = [CELL_CSS if css else "", '<div class="lp-canvas">']
    if prompt_length and show_prompt:
        parts.append(f'<span class="lp-prompt" title="prompt">{html.escape(prompt_text)}</span>')
    blocks = max(1, math.ceil((len(tokens) - prompt_length) / block_length))
    for start in range(prompt_length, len(tokens), block_length):
        number = (start - prompt_length) // block_length + 1
        parts.append(f'<span class="lp-block" title="block {number} of {blocks}">')
        if blocks > 1:
            parts.append(f'<span class="lp-block-label">block {number}</span>')
        for pos in range(start, min(start + block_length, len(tokens))):
            tok = tokens[pos]
            attrs = f'data-pos="{pos}"'
            extra = " lp-picked" if pos == picked else ""
            if tok == mask_id:
                if interactive:  # the app defines lpPick(); it fills a hidden box that asks for candidates
                    attrs += f' onclick="lpPick({pos})" style="cursor:pointer"'
                guess = guesses.get(pos)
                label = token_text(pieces.get(guess, "")) if guess is not None else MASK_GLYPH
                tip = f"position {pos}: masked" + (f", model guesses {label!r}" if guess is not None else "")
                tip += "".join(f"\n{note}" for note in history.get(pos, []))
                marks = "lp-tok lp-mask" + (" lp-remasked" if pos in history else "") + extra
                parts.append(f'<span class="{marks}" {attrs} title="{html.escape(tip)}">'
                             f'{html.escape(label)}</span>')
                continue
            classes = ["lp-tok"] + (["lp-revised"] if pos in history else [])
            cursor = ""
            if interactive:  # a committed cell can be sent back to the mask (the step tab)
                attrs += f' onclick="lpPick({pos})"'
                cursor = "; cursor:pointer"
            if pos in pinned:
                classes.append("lp-pinned")
            if tok in eos_ids:
                classes.append("lp-eos")
            if pos in forced:
                classes.append("lp-forced")
            if pos in new:
                classes.append("lp-new")
            conf = confidence.get(pos)
            label = token_text(pieces.get(tok, "?"))
            tip = f"position {pos}: {label!r}" + (f", confidence {conf:.2f}" if conf is not None else "")
            tip += ", pinned" if pos in pinned else ""
            tip += "".join(f"\n{note}" for note in history.get(pos, []))
            style = f"background:{confidence_color(conf)}{cursor}"
            parts.append(f'<span class="{" ".join(classes)}{extra}" {attrs} style="{style}" '
                         f'title="{html.escape(tip)}">{html.escape(label)}</span>')
            if pieces.get(tok, "").endswith("\n"):
                parts.append("<br>")  # committed line breaks break the canvas too, so verse looks like verse
        parts.append("</span>")
    parts.append("</div>")
    return "".join(parts)


def trace_pinned(trace: Trace, row: int = 0) -> set[int]:
    """Positions of the generation already filled before the first step: the pinned words."""
    return {pos for pos, tok in enumerate(trace.initial[row]) if pos >= trace.prompt_length and tok != trace.mask_id}


def trace_step_html(trace: Trace, step: int, row: int = 0, eos_ids: set[int] = frozenset(),
                    show_guesses: bool = True, css: bool = True) -> str:
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
                         confidence, new, forced, eos_ids, guesses, history=trace_history(trace, step, row),
                         pinned=trace_pinned(trace, row), css=css)


def trace_text(trace: Trace, step: int, row: int = 0, eos_ids: set[int] = frozenset()) -> str:
    """The generated text after ``step`` steps of a recorded run, as the Text box shows it: committed tokens from
    the trace's own pieces (a trace opened from a file has no tokenizer beside it), one :data:`MASK_GLYPH` per
    masked position, cut at the first committed end-of-text (``decode_partial`` does the same for a live run,
    through its tokenizer)."""
    step = max(0, min(step, len(trace.steps)))
    pieces = {int(k): v for k, v in trace.tokens.items()}
    parts = []
    for tok in trace.states(row)[step][trace.prompt_length:]:
        if tok in eos_ids:
            break
        parts.append(MASK_GLYPH if tok == trace.mask_id else pieces.get(tok, "?"))
    return "".join(parts)


def trace_status(trace: Trace, step: int) -> str:
    """'Step 27 of 64, block 1 of 2' for a recorded run after ``step`` steps (0: before the first)."""
    n = len(trace.steps)
    step = max(0, min(step, n))
    blocks = max(1, math.ceil(trace.gen_length / trace.block_length))
    if step == 0:
        return f"Before the first step (of {n}): every cell masked but the prompt and pins."
    return f"Step {step} of {n}, block {trace.steps[step - 1].block + 1} of {blocks}."


def commit_order_figure(trace: Trace, row: int = 0, title: str = "When each position was committed"):
    """Scatter of position (x) against the step that committed it (y), coloured by confidence in the canvas's
    greens (by-hand tokens grey)."""
    import plotly.graph_objects as go

    xs, ys, cs, labels = [], [], [], []
    pieces = {int(k): v for k, v in trace.tokens.items()}
    for i, s in enumerate(trace.steps):
        for r, pos, tok, conf, *_ in s.commits:
            if r == row:
                xs.append(pos - trace.prompt_length)
                ys.append(i + 1)
                cs.append(conf)
                labels.append(token_text(pieces.get(tok, str(tok))))
        for r, pos, tok in s.forced:
            if r == row:
                xs.append(pos - trace.prompt_length)
                ys.append(i + 1)
                cs.append(None)
                labels.append(token_text(pieces.get(tok, str(tok))) + " (by hand)")
    fig = go.Figure(go.Scatter(
        x=xs, y=ys, mode="markers", text=labels,
        marker=dict(color=[c if c is not None else 0 for c in cs], colorscale=CONFIDENCE_SCALE, cmin=0, cmax=1,
                    size=10, colorbar=dict(title="confidence"), line=dict(width=1, color="#495057")),
        hovertemplate="position %{x}<br>step %{y}<br>%{text}<extra></extra>"))
    for b in range(0, trace.gen_length + 1, trace.block_length):
        fig.add_vline(x=b - 0.5, line=dict(color="#8a8fa3", dash="dash", width=1))
    fig.update_layout(title=title, xaxis_title="position (dashed lines: blocks)",
                      yaxis_title="step", template="plotly_white", height=360, margin=dict(l=55, r=20, t=50, b=50),
                      font=dict(size=14))
    fig.update_yaxes(autorange="reversed")
    return fig


def confidence_figure(trace: Trace, row: int = 0, title: str = "Confidence of each commit"):
    """Confidence of the tokens committed at each step (one dot per token in the canvas's greens, mean as a
    line)."""
    import plotly.graph_objects as go

    xs, ys, means = [], [], []
    for i, s in enumerate(trace.steps):
        vals = [c for r, _p, _t, c, *_ in s.commits if r == row and c is not None]
        xs += [i + 1] * len(vals)
        ys += vals
        means.append(sum(vals) / len(vals) if vals else None)
    fig = go.Figure([
        go.Scatter(x=xs, y=ys, mode="markers", name="committed token",
                   marker=dict(size=8, color=ys, colorscale=CONFIDENCE_SCALE, cmin=0, cmax=1,
                               line=dict(width=1, color="#495057"))),
        go.Scatter(x=list(range(1, len(means) + 1)), y=means, mode="lines", name="mean per step",
                   line=dict(color="#e8590c")),
    ])
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="probability of the committed token",
                      yaxis_range=[0, 1.05], template="plotly_white", height=360, font=dict(size=14),
                      margin=dict(l=55, r=20, t=50, b=50),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1))
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
                  history: dict[int, list[str]] | None = None, pinned: set[int] | None = None,
                  picked: int | None = None, show_prompt: bool = True) -> str:
    """HTML for the canvas right after a live step: ``confidences`` (position -> confidence of its commit)
    is updated with this step's commits; hand-committed tokens waiting for the next step are shown too.
    ``pinned``: absolute positions pinned before the run (:func:`pinned_positions`)."""
    tokens = record.x_after[row].tolist()
    committed = note_commits(record, confidences, row)
    forced = {pos for r, pos, _t in record.forced if r == row}
    for r, pos, tok in record.forced:
        if r == row:
            tokens[pos] = tok
    guesses = {p: t for p, t in enumerate(record.predicted[row].tolist()) if t >= 0 and tokens[p] == record.mask_id}
    return render_canvas(tokens, record.prompt_length, record.block_length, record.mask_id, pieces, confidences,
                         set(committed), forced, eos_ids, guesses, interactive, history, pinned, picked,
                         show_prompt=show_prompt)


def pinned_positions(constraints: dict[int, int] | None, prompt_length: int) -> set[int]:
    """Canvas positions of pins given as generation positions (``parse_constraints``)."""
    return {prompt_length + pos for pos in (constraints or {})}


def commit_order_panels(results, height: int = 380, titles: list[str] | None = None):
    """One commit-order panel per compared setting, side by side (``results`` from ``compare_settings``), each
    titled (``titles``, default each result's name: keep them short, the panels are narrow) with its axes
    named."""
    from plotly.subplots import make_subplots

    titles = titles or [r.name for r in results]
    fig = make_subplots(rows=1, cols=len(results), subplot_titles=titles, shared_yaxes=True,
                        horizontal_spacing=0.04 if len(results) > 1 else 0.2)
    for i, r in enumerate(results, 1):
        for trace in commit_order_figure(r.trace).data:
            trace.marker.showscale = i == len(results)
            fig.add_trace(trace, row=1, col=i)
        fig.update_xaxes(title_text="position", row=1, col=i)
    fig.update_yaxes(autorange="reversed", title_text="step", row=1, col=1)
    fig.update_annotations(font_size=14)  # the subplot titles
    fig.update_layout(template="plotly_white", height=height, showlegend=False, font=dict(size=13),
                      margin=dict(l=55, r=20, t=60, b=50))
    return fig
