"""The Denoise tab: a prompt, the sampler's controls, and the canvas filling in live at a pace a person can
follow; then the recorded run to scrub and play back, to download (trace, standalone HTML replay, PNG), to
share as a link, or a trace opened from a file."""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gradio as gr
import torch

from ...diffusion.sampler_config import SamplerConfig
from ...diffusion.trace import Trace
from ...experiments.compare import forward_passes
from ...model.text import (decode_generation, decode_partial, encode_prompt, parse_constraints, parse_forbidden,
                           stop_token_ids)
from ..controls import Inputs, by_name, config_from_controls, revision_controls, sampler_controls
from ..errors import Refusal, shown_in_page
from ..live import GenerationDone, frame_interval, paced, stream
from ..registry import ModelRegistry
from ..replay import replay_page
from ..serving import LOCAL, ServingPolicy
from ..share import field_of, link_query, values_from_query
from ..viz import (CANVAS_LEGEND, MASK_GLYPH, STEP_EXPLANATION, PieceCache, commit_order_figure, confidence_figure,
                   note_commits, note_revisions, pinned_positions, record_canvas, trace_status, trace_step_html,
                   trace_text)

DEFAULT_PROMPT = "Romeo.\n"
# Seconds between two drawn steps of a live run: 64 steps then take about 6.4 s, slow enough to follow the
# canvas filling in (at 0 the default run goes from click to "Done:" in 1.1 s on the 2-core CPU, RESULTS.md,
# before anyone sees it); 0 draws as fast as the page can.
DEFAULT_PACE = 0.1
INTRO = ("Write a prompt and press **Denoise**: the model fills a canvas of masks in the steps you choose, and "
         "you watch every step. Afterwards, scrub or play the run back, download it (the trace, an HTML replay "
         "that opens offline, a PNG) or copy a link that gives everyone the same run.")
SECOND_THOUGHTS = (
    "**Second thoughts** (off at first): a *remask* schedule sends committed tokens back to the mask and fills "
    "them again, each step about eta of the block's committed tokens, so a word written early can still "
    "change; an *edit threshold* replaces a committed token when the model now prefers another one with at "
    "least that probability. Revised cells are outlined in blue; hover for their history. The shipped models "
    "were trained only to fill masks, so their edits are a guess at what they never learnt.")
CANVAS_ID = "lp-denoise-canvas"
SAVE_PNG_JS = f"() => lpSavePng(document.querySelector('#{CANVAS_ID} .lp-canvas'), 'llada-play-canvas.png')"
# The page's address with the run's query (the server knows the query, the browser its own address)
LINK_JS = ("(query) => query ? window.location.origin + window.location.pathname + '?' + query : ''")
RUNS_KEPT = 200  # downloadable run files kept on the server (the oldest are removed)


@dataclass(frozen=True)
class PreparedRun:
    model: torch.nn.Module
    tokenizer: object
    ids: torch.LongTensor
    config: SamplerConfig
    constraints: dict[int, int] | None
    forbid: list[int] | None
    logits_hooks: list

    @property
    def pinned(self) -> set[int]:
        return pinned_positions(self.constraints, self.ids.shape[1])


def prepare_run(registry: ModelRegistry, key: str, values: dict) -> PreparedRun:
    """The model, prompt ids, config, pinned and forbidden tokens of the Denoise tab's inputs (by name, see
    :func:`prompt_inputs`), with the app's logits hooks; raises ValueError."""
    model, tokenizer = registry.get(key)
    ids = encode_prompt(tokenizer, values["prompt"], chat=values["chat"])
    config = config_from_controls(values)
    constraints = parse_constraints(tokenizer, values["pins"], config.gen_length) or None
    forbid = parse_forbidden(tokenizer, values.get("forbid", "")) or None
    return PreparedRun(model, tokenizer, ids, config, constraints, forbid, list(registry.logits_hooks))


def pace_of(values: dict) -> float:
    """The pause between drawn steps (seconds, 0 to 5) of the page's pace control; ValueError otherwise."""
    pace = values.get("pace", 0) or 0
    try:
        pace = float(pace)
    except (TypeError, ValueError):
        raise ValueError(f"the pause between steps must be a number of seconds, not {pace!r}") from None
    if not 0 <= pace <= 5:
        raise ValueError(f"the pause between steps must be between 0 and 5 seconds, not {pace:g}")
    return pace


def frames_at_pace(steps, pace: float, interval):
    """The stream's items as frames: with a ``pace`` a viewer can follow (at least the server's redraw budget
    ``interval()``), every step alone with that pause after it; else grouped at the server's pace
    (:func:`paced`)."""
    if not pace or pace < interval():
        yield from paced(steps, interval)
        return
    for item in steps:
        yield [item]
        if not isinstance(item, GenerationDone):
            time.sleep(pace)


def denoise_in_page(registry: ModelRegistry, key: str, values: dict):
    """Stream (trace, status, canvas, text, scrub, commit order, confidence, trace file, replay file) as the run
    goes, then the end.

    The run shares its forward passes with the other sessions' runs (the same tokens as alone); the page is
    redrawn at the chosen pace, or at its own when that is faster than a crowded server redraws (:func:`paced`,
    :func:`frame_interval`): every step is still recorded for the scrub slider."""
    with shown_in_page():
        run = prepare_run(registry, key, values)
        pace = pace_of(values)
        pieces, eos = PieceCache(run.tokenizer), stop_token_ids(run.tokenizer)
        hidden = gr.update(visible=False)
        confidences: dict[int, float] = {}
        history: dict[int, list[str]] = {}
        counts = RunCounts()
        steps = stream(run.model, run.ids, run.config, run.tokenizer, constraints=run.constraints,
                       forbid=run.forbid, logits_hooks=run.logits_hooks, sampler=registry.sampler(key))
        for frame in frames_at_pace(steps, pace, lambda: frame_interval(registry.denoising()[0])):
            *skipped, item = frame
            for record in skipped:
                if not isinstance(record, GenerationDone):
                    counts.add(record)
                    note_revisions(record, history, pieces)
                    note_commits(record, confidences)
            if isinstance(item, GenerationDone):
                yield from finished_view(run, item, eos, counts)
                return
            counts.add(item)
            note_revisions(item, history, pieces)
            html = record_canvas(item, pieces, confidences, eos_ids=eos, history=history, pinned=run.pinned)
            text = decode_partial(run.tokenizer, item.x_after[0], item.prompt_length, item.mask_id, MASK_GLYPH)
            yield (None, step_status(item, run.config, counts), html, text, hidden, None, None, hidden, hidden)


class RunCounts:
    """What a run has done so far: masks committed, tokens sent back to the mask, tokens edited."""

    def __init__(self):
        self.committed = self.remasked = self.edited = 0

    def add(self, record) -> None:
        self.committed += int(record.committed[0].sum()) if record.committed is not None else 0
        self.remasked += sum(r == 0 for r, *_ in record.remasked)
        self.edited += sum(r == 0 for r, *_ in record.edits)

    def __str__(self) -> str:
        text = f"{self.committed} masks committed"
        if self.remasked or self.edited:
            text += f", {self.remasked} tokens remasked, {self.edited} edited"
        return text


def step_status(record, config: SamplerConfig, counts: RunCounts) -> str:
    """'Step 12 of 64, block 1 of 2: ...' for the live status line."""
    return (f"Step {record.step + 1} of {config.steps}, block {record.block + 1} of {config.num_blocks}: "
            f"{counts}")


def done_status(steps: int, config: SamplerConfig, counts: RunCounts | None = None) -> str:
    """The status of a finished run: steps taken (of the steps asked for, when it ended early) and forward
    passes (two a step with classifier-free guidance)."""
    taken = f"{steps} steps" if steps == config.steps else f"{steps} steps (of up to {config.steps}: it ended early)"
    status = f"Done: {taken}, {forward_passes(steps, config.cfg_scale)} forward passes."
    if counts is not None and (counts.remasked or counts.edited):
        status += f" {counts.remasked} tokens remasked, {counts.edited} edited on the way."
    return status


def run_files(trace: Trace, eos: set[int], title: str) -> tuple[str, str]:
    """(trace JSON, HTML replay) of a finished run, written where the page can offer them for download."""
    root = Path(tempfile.gettempdir()) / "llada-play-runs"
    root.mkdir(exist_ok=True)
    for old in sorted(root.iterdir(), key=lambda p: p.stat().st_mtime)[:-RUNS_KEPT]:
        for f in old.iterdir():
            f.unlink(missing_ok=True)
        old.rmdir()
    folder = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=root))
    seed = (trace.config or {}).get("seed", 0)
    trace_path = folder / f"llada-play-trace-seed{seed}.json"
    trace.to_json(trace_path)
    replay_path = folder / f"llada-play-replay-seed{seed}.html"
    replay_path.write_text(replay_page(trace, eos, title), encoding="utf-8")
    return str(trace_path), str(replay_path)


def finished_view(run: PreparedRun, done: GenerationDone, eos: set[int], counts: RunCounts | None = None):
    """The end in two updates: the final canvas and text at once, then the recorded trace (for the slider), the
    charts and the files to download, which take the server and the browser longer to draw."""
    trace = done.trace
    n = len(trace.steps)
    text = decode_generation(run.tokenizer, done.output[0], run.ids.shape[1])
    status = done_status(n, run.config, counts)
    html = trace_step_html(trace, n, eos_ids=eos)
    yield gr.update(), status, html, text, gr.update(visible=False), gr.update(), gr.update(), gr.update(), gr.update()
    trace_path, replay_path = run_files(trace, eos, f"llada-play: {text[:60].strip() or 'a run'}")
    yield (trace.to_dict(), status, html, text, gr.update(visible=True, maximum=n, value=n),
           commit_order_figure(trace), confidence_figure(trace), gr.update(value=trace_path, visible=True),
           gr.update(value=replay_path, visible=True))


def eos_of(registry: ModelRegistry, key: str, trace: Trace) -> set[int]:
    """The end-of-text ids to mark in a trace: the run's own when it recorded them, else the model's."""
    recorded = (trace.config or {}).get("eos_token_ids")
    if recorded:
        return set(recorded)
    _, tokenizer = registry.get(key)
    return stop_token_ids(tokenizer)


def show_step(registry: ModelRegistry, key: str, trace: dict | None, step: float) -> tuple:
    """(canvas, text, status) of the recorded run after ``step`` steps (the scrub slider)."""
    if not trace:
        return "", "", ""
    with shown_in_page():
        recorded = Trace.from_dict(trace)
        eos = eos_of(registry, key, recorded)
    step = int(step)
    return (trace_step_html(recorded, step, eos_ids=eos), trace_text(recorded, step, eos_ids=eos),
            trace_status(recorded, step))


def play(registry: ModelRegistry, key: str, trace: dict | None, step: float, pace: float):
    """Stream (canvas, text, status, scrub) from the scrubbed step to the end at ``pace`` seconds a step (from
    the start when the slider is at the end); Pause cancels it."""
    if not trace:
        raise Refusal("denoise or open a trace first")
    with shown_in_page():
        recorded = Trace.from_dict(trace)
        eos = eos_of(registry, key, recorded)
        pace = pace_of({"pace": pace})
    n = len(recorded.steps)
    start = 0 if int(step) >= n else int(step)
    for i in range(start, n + 1):
        yield (trace_step_html(recorded, i, eos_ids=eos), trace_text(recorded, i, eos_ids=eos),
               trace_status(recorded, i), gr.update(value=i))
        if i < n:
            time.sleep(max(pace, 0.05))


def open_trace(registry: ModelRegistry, key: str, file, policy: ServingPolicy = LOCAL) -> tuple:
    """(trace, status, canvas, text, scrub, commit order, confidence, trace file, replay file) of a trace file
    opened from disk, shown at its last step; a file that is not one is refused in one line."""
    if file is None:
        raise Refusal("choose a trace file (.json) to open")
    path = Path(file if isinstance(file, str) else file.name)
    size = path.stat().st_size
    if size > policy.max_upload_bytes:
        raise Refusal(f"{path.name} is {size / 2**20:.1f} MB; a trace opened here is at most "
                       f"{policy.max_upload_bytes / 2**20:.0f} MB")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise Refusal(f"{path.name} is not a trace: it is not UTF-8 text") from None
    with shown_in_page():
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path.name} is not a trace: not JSON ({err.msg})") from None
        trace = Trace.from_dict(data)
        if len(trace.initial) != 1:
            raise ValueError(f"{path.name} holds {len(trace.initial)} rows; the page replays one")
        if not trace.steps:
            raise ValueError(f"{path.name} has no steps to replay")
        eos = eos_of(registry, key, trace)
    n = len(trace.steps)
    status = f"Opened {path.name}: {n} steps ({trace.gen_length} tokens in blocks of {trace.block_length}). " \
             "Scrub or press Play."
    return (trace.to_dict(), status, trace_step_html(trace, n, eos_ids=eos), trace_text(trace, n, eos_ids=eos),
            gr.update(visible=True, maximum=n, value=n), commit_order_figure(trace), confidence_figure(trace),
            gr.update(visible=False), gr.update(visible=False))


def prompt_inputs() -> tuple[Inputs, gr.Button]:
    """The prompt and sampler controls that every sampling tab uses, by name: ``prompt``, ``chat``, ``pins``,
    the sampler's fields, ``forbid``, the revision settings, ``pace`` (the newest last, so that API clients
    written before them keep their positions)."""
    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(label="Prompt", value=DEFAULT_PROMPT, lines=3)
            chat = gr.Checkbox(label="Chat template (instruct models)", value=False)
            pins = gr.Textbox(label="Pinned words (infilling): position: word, ...", value="",
                              placeholder="e.g. 0: Romeo, 20: love",
                              info="Words fixed before the run (framed purple); the model writes around them.")
            forbid = gr.Textbox(label="Never write (words of one token each): word, ...", value="",
                                placeholder="e.g. thee, thou", info="Their tokens get zero probability.")
            pace = gr.Slider(0, 2, value=DEFAULT_PACE, step=0.05, label="Pace (seconds a step)",
                             info="Slows the drawing so you can follow it (0 = as fast as possible); also the "
                                  "speed of Play.")
            run = gr.Button("Denoise", variant="primary")
        with gr.Column(scale=3):
            sampler = sampler_controls()
            revision = revision_controls()
            gr.Markdown(SECOND_THOUGHTS)
    return Inputs(prompt=prompt, chat=chat, pins=pins, **sampler, forbid=forbid, **revision, pace=pace), run


def restore_link(registry: ModelRegistry, policy: ServingPolicy, fields: dict, request: gr.Request):
    """(model key or no change, model info, every control's value, status, whether to run) of the page's URL
    query: a shared link restores its model, prompt and settings and runs them; a page without a query is left
    as it is. What a link gets wrong is named in the status, the rest restored."""
    params = dict(request.query_params) if request is not None else {}
    keep = [gr.update()] * (2 + len(fields))
    if not params:
        return *keep, gr.update(), False
    model, values, problems = values_from_query(params, fields)
    key_updates = [gr.update(), gr.update()]
    if model is not None:
        try:
            policy.allow_model(model, registry.choices())
            registry.get(model)
            key_updates = [model, registry.describe(model)]
        except (ValueError, gr.Error) as err:
            problems.append(f"the link's model could not be loaded ({err}); the page's model is used")
    controls = [values[name] if name in values else gr.update() for name in fields]
    if problems:
        return *key_updates, *controls, "The link was restored in part: " + "; ".join(problems) + ".", False
    return *key_updates, *controls, "Restored from the link: the same model, prompt, settings and seed.", True


def denoise_tab(registry: ModelRegistry, model_key: gr.State, policy: ServingPolicy = LOCAL,
                model_info: gr.Markdown | None = None, demo: gr.Blocks | None = None) -> Inputs:
    """Build the tab and wire it; returns its inputs for the tabs that reuse them. Up to
    ``policy.denoise_sessions`` runs go at once: they share forward passes, so more at once is faster overall.
    ``demo`` and ``model_info``: the page and its model description; a shared link opened on the page restores
    its run there (:func:`restore_link`) and runs it."""
    with gr.Tab("Denoise"):
        gr.Markdown(INTRO)
        inputs, run = prompt_inputs()
        status = gr.Markdown("")
        gr.Markdown(STEP_EXPLANATION)
        gr.HTML(CANVAS_LEGEND)
        canvas = gr.HTML(label="Canvas", elem_id=CANVAS_ID)
        with gr.Row(equal_height=True):
            play_button = gr.Button("▶ Play", scale=0, min_width=110)
            pause_button = gr.Button("❚❚ Pause", scale=0, min_width=110)
            scrub = gr.Slider(0, 1, value=0, step=1, label="Step (scrub the recorded run)", visible=False, scale=5)
        text = gr.Textbox(label="Text (▒ = a masked position)", lines=4)
        with gr.Row():
            trace_file = gr.File(label="Trace (JSON: open it here or in a notebook)", visible=False,
                                 elem_id="lp-trace-file")
            replay_file = gr.File(label="HTML replay (opens offline)", visible=False, elem_id="lp-replay-file")
        with gr.Row():
            png_button = gr.Button("Save the canvas as PNG")
            open_button = gr.UploadButton("Open a trace (.json)", file_types=[".json"], elem_id="lp-open-trace")
            link_button = gr.Button("Copy a link to this run")
        link = gr.Textbox(label="Link: the same model, prompt, settings and seed for whoever opens it",
                          buttons=["copy"], visible=False, elem_id="lp-link")
        with gr.Row():
            order_plot = gr.Plot(label="Commit order")
            confidence_plot = gr.Plot(label="Confidence")
    trace = gr.State(None)
    outputs = [trace, status, canvas, text, scrub, order_plot, confidence_plot, trace_file, replay_file]
    handler, components = by_name(partial(denoise_in_page, registry), [model_key], inputs)
    run.click(handler, components, outputs, api_name="denoise", concurrency_limit=policy.denoise_sessions)
    scrub.input(partial(show_step, registry), [model_key, trace, scrub], [canvas, text, status],
                show_progress="hidden", api_name=False)
    playing = play_button.click(partial(play, registry), [model_key, trace, scrub, inputs["pace"]],
                                [canvas, text, status, scrub], show_progress="hidden", api_name="play")
    pause_button.click(None, None, None, cancels=[playing])
    png_button.click(None, None, None, js=SAVE_PNG_JS)
    open_button.upload(partial(open_trace, registry, policy=policy), [model_key, open_button], outputs,
                       api_name="open_trace")
    fields = {name: field_of(component) for name, component in inputs.items()}

    def query(key, values):
        return link_query(key, values, fields)

    link_button.click(*by_name(query, [model_key], inputs), link, api_name=False).then(
        None, link, link, js=LINK_JS).then(lambda: gr.update(visible=True), None, link, api_name=False)
    if demo is not None and model_info is not None:  # a shared link: restore it, then run it
        linked = gr.State(False)

        def restore(request: gr.Request):
            return restore_link(registry, policy, fields, request)

        demo.load(restore, None, [model_key, model_info, *inputs.components(), status, linked], api_name=False).then(
            *by_name(partial(run_if_linked, registry, len(outputs)), [linked, model_key], inputs), outputs,
            api_name=False,
            concurrency_limit=policy.denoise_sessions)
    return inputs


def run_if_linked(registry: ModelRegistry, outputs: int, linked: bool, key: str, values: dict):
    """The linked run, when the page was opened from a link that restored in full; no change otherwise (one
    update that changes none of the ``outputs``: a stream that yields nothing would clear every one)."""
    if linked:
        yield from denoise_in_page(registry, key, values)
    else:
        yield tuple(gr.update() for _ in range(outputs))
