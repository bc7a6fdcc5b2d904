"""The Denoise tab: a prompt, the sampler's controls, and the canvas filling in live; then a scrubbable trace."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import gradio as gr
import torch

from ...diffusion.sampler_config import SamplerConfig
from ...diffusion.trace import Trace
from ...experiments.compare import forward_passes
from ...model.text import (decode_generation, decode_partial, encode_prompt, parse_constraints, parse_forbidden,
                           stop_token_ids)
from ..controls import Inputs, by_name, config_from_controls, revision_controls, sampler_controls
from ..errors import shown_in_page
from ..live import GenerationDone, frame_interval, paced, stream
from ..registry import ModelRegistry
from ..serving import LOCAL, ServingPolicy
from ..viz import (CANVAS_LEGEND, PieceCache, commit_order_figure, confidence_figure, note_commits, note_revisions,
                   record_canvas, trace_step_html)

DEFAULT_PROMPT = "Romeo.\n"
SECOND_THOUGHTS = (
    "**Second thoughts** (off at first): a *remask* schedule sends committed tokens back to the mask and fills "
    "them again, each step about eta of the block's committed tokens, so a word written early can still "
    "change; an *edit threshold* replaces a committed token when the model now prefers another one with at "
    "least that probability. Revised cells are outlined in blue; hover for their history. The shipped models "
    "were trained only to fill masks, so their edits are a guess at what they never learnt.")


@dataclass(frozen=True)
class PreparedRun:
    model: torch.nn.Module
    tokenizer: object
    ids: torch.LongTensor
    config: SamplerConfig
    constraints: dict[int, int] | None
    forbid: list[int] | None
    logits_hooks: list


def prepare_run(registry: ModelRegistry, key: str, values: dict) -> PreparedRun:
    """The model, prompt ids, config, pinned and forbidden tokens of the Denoise tab's inputs (by name, see
    :func:`prompt_inputs`), with the app's logits hooks; raises ValueError."""
    model, tokenizer = registry.get(key)
    ids = encode_prompt(tokenizer, values["prompt"], chat=values["chat"])
    config = config_from_controls(values)
    constraints = parse_constraints(tokenizer, values["pins"], config.gen_length) or None
    forbid = parse_forbidden(tokenizer, values.get("forbid", "")) or None
    return PreparedRun(model, tokenizer, ids, config, constraints, forbid, list(registry.logits_hooks))


def denoise_in_page(registry: ModelRegistry, key: str, values: dict):
    """Stream (trace, status, canvas, text, scrub, commit order, confidence) as the run goes, then the end.

    The run shares its forward passes with the other sessions' runs (the same tokens as alone); the page is
    redrawn at its own pace, slower when many canvases stream at once (:func:`paced`, :func:`frame_interval`):
    every step is still recorded for the scrub slider."""
    with shown_in_page():
        run = prepare_run(registry, key, values)
        pieces, eos = PieceCache(run.tokenizer), stop_token_ids(run.tokenizer)
        hidden = gr.update(visible=False)
        confidences: dict[int, float] = {}
        history: dict[int, list[str]] = {}
        counts = RunCounts()
        steps = stream(run.model, run.ids, run.config, run.tokenizer, constraints=run.constraints,
                       forbid=run.forbid, logits_hooks=run.logits_hooks, sampler=registry.sampler(key))
        for frame in paced(steps, lambda: frame_interval(registry.denoising()[0])):
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
            html = record_canvas(item, pieces, confidences, eos_ids=eos, history=history)
            text = decode_partial(run.tokenizer, item.x_after[0], item.prompt_length, item.mask_id)
            yield None, step_status(item, run.config, counts), html, text, hidden, None, None


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


def finished_view(run: PreparedRun, done: GenerationDone, eos: set[int], counts: RunCounts | None = None):
    """The end in two updates: the final canvas and text at once, then the recorded trace (for the slider) and
    the charts, which take the server and the browser longer to draw."""
    trace = done.trace
    n = len(trace.steps)
    text = decode_generation(run.tokenizer, done.output[0], run.ids.shape[1])
    status = f"Done: {n} steps, {forward_passes(n, run.config.cfg_scale)} forward passes."
    if counts is not None and (counts.remasked or counts.edited):
        status += f" {counts.remasked} tokens remasked, {counts.edited} edited on the way."
    html = trace_step_html(trace, n, eos_ids=eos)
    yield gr.update(), status, html, text, gr.update(visible=False), gr.update(), gr.update()
    yield (trace.to_dict(), status, html, text, gr.update(visible=True, maximum=n, value=n),
           commit_order_figure(trace), confidence_figure(trace))


def show_step(registry: ModelRegistry, key: str, trace: dict | None, step: float) -> str:
    """The recorded run's canvas after ``step`` steps (the scrub slider)."""
    if not trace:
        return ""
    _, tokenizer = registry.get(key)
    return trace_step_html(Trace.from_dict(trace), int(step), eos_ids=stop_token_ids(tokenizer))


def prompt_inputs() -> tuple[Inputs, gr.Button]:
    """The prompt and sampler controls that every sampling tab uses, by name: ``prompt``, ``chat``, ``pins``,
    the sampler's fields, ``forbid``, the revision settings (the newest last, so that API clients written
    before them keep their positions)."""
    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(label="Prompt", value=DEFAULT_PROMPT, lines=3)
            chat = gr.Checkbox(label="Chat template (instruct models)", value=False)
            pins = gr.Textbox(label="Pinned words (infilling): position: word, ...", value="",
                              placeholder="e.g. 0: Romeo, 20: love")
            forbid = gr.Textbox(label="Never write (words of one token each): word, ...", value="",
                                placeholder="e.g. thee, thou")
            run = gr.Button("Denoise", variant="primary")
        with gr.Column(scale=3):
            sampler = sampler_controls()
            revision = revision_controls()
            gr.Markdown(SECOND_THOUGHTS)
    return Inputs(prompt=prompt, chat=chat, pins=pins, **sampler, forbid=forbid, **revision), run


def denoise_tab(registry: ModelRegistry, model_key: gr.State, policy: ServingPolicy = LOCAL) -> Inputs:
    """Build the tab and wire it; returns its inputs for the tabs that reuse them. Up to
    ``policy.denoise_sessions`` runs go at once: they share forward passes, so more at once is faster overall."""
    with gr.Tab("Denoise"):
        inputs, run = prompt_inputs()
        status = gr.Markdown("")
        gr.HTML(CANVAS_LEGEND)
        canvas = gr.HTML(label="Canvas")
        text = gr.Textbox(label="Text", lines=4)
        scrub = gr.Slider(0, 1, value=0, step=1, label="Step (scrub the recorded run)", visible=False)
        with gr.Row():
            order_plot = gr.Plot(label="Commit order")
            confidence_plot = gr.Plot(label="Confidence")
    trace = gr.State(None)
    run.click(*by_name(partial(denoise_in_page, registry), [model_key], inputs),
              [trace, status, canvas, text, scrub, order_plot, confidence_plot], api_name="denoise",
              concurrency_limit=policy.denoise_sessions)
    scrub.change(partial(show_step, registry), [model_key, trace, scrub], canvas, show_progress="hidden",
                 api_name=False)
    return inputs
