"""The Step by step tab: pause after every step, look at the model's candidates, commit a token by hand."""
from __future__ import annotations

from functools import partial

import gradio as gr

from ...model.text import decode_generation, stop_token_ids
from ..errors import shown_in_page
from ..live import Stepper
from ..registry import ModelRegistry
from ..viz import PieceCache, record_canvas, token_text, trace_step_html
from ..controls import Inputs, by_name
from .denoise import prepare_run

PICK_ID = "lp-pick"
# Clicking a masked cell (see viz.render_canvas) writes its position into a hidden textbox, whose change event
# asks the server for that position's candidates.
HEAD = f"""<script>
function lpPick(pos) {{
  const box = document.querySelector('#{PICK_ID} textarea, #{PICK_ID} input');
  if (!box) return;
  box.value = String(pos);
  box.dispatchEvent(new Event('input', {{bubbles: true}}));
}}
</script>"""
CSS = f"#{PICK_ID} {{display: none !important}}"


def token_label(tokenizer, token: int) -> str:
    return token_text(tokenizer.decode([token]))


def step_view(stepper: Stepper, note: str = "") -> tuple:
    """(state, status, canvas, text) for the stepper's current situation."""
    tokenizer = stepper.tokenizer
    eos = stop_token_ids(tokenizer)
    if stepper.done is not None:
        trace = stepper.done.trace
        n = len(trace.steps)
        text = decode_generation(tokenizer, stepper.done.output[0], trace.prompt_length)
        return stepper, f"Finished after {n} steps. {note}", trace_step_html(trace, n, eos_ids=eos), text
    record = stepper.last
    html = record_canvas(record, PieceCache(tokenizer), stepper.confidences, eos_ids=eos, interactive=True)
    return stepper, f"Paused after step {record.step + 1} (block {record.block + 1}). {note}", html, ""


def start(registry: ModelRegistry, key: str, values: dict, old: Stepper | None) -> tuple:
    """A new run of the Denoise tab's inputs (by name), paused after its first step (the old one, if any, is
    ended)."""
    if old is not None and old.done is None:
        old.stop()
    with shown_in_page():
        run = prepare_run(registry, key, values)
        stepper = Stepper(run.model, run.ids, run.config, run.tokenizer, constraints=run.constraints,
                          forbid=run.forbid, logits_hooks=run.logits_hooks)
        stepper.step()
    return step_view(stepper)


def started(stepper: Stepper | None) -> Stepper:
    if stepper is None:
        raise gr.Error("press Start first")
    return stepper


def next_step(stepper: Stepper | None) -> tuple:
    started(stepper).step()
    return step_view(stepper)


def finish(stepper: Stepper | None) -> tuple:
    started(stepper).finish()
    return step_view(stepper)


def stop(stepper: Stepper | None) -> tuple:
    started(stepper).stop()
    return step_view(stepper, "Stopped by hand: masked cells stay masked.")


def pick(stepper: Stepper | None, position: str):
    """The candidates at a clicked cell, as radio choices (token id values)."""
    if stepper is None or not str(position).strip().isdigit() or stepper.done is not None:
        return gr.update(choices=[], value=None)
    with shown_in_page():
        candidates = stepper.candidates(int(position))
    choices = [(f"{token_label(stepper.tokenizer, t)}  ({p:.2f})", t) for t, p in candidates]
    return gr.update(choices=choices, value=None, label=f"Candidates at position {position}")


def commit(stepper: Stepper | None, position: str, chosen: int | None, typed: str) -> tuple:
    """Commit the picked candidate, or the first token of the typed text, at the clicked cell."""
    stepper = started(stepper)
    tokenizer = stepper.tokenizer
    if not str(position).strip().isdigit():
        raise gr.Error("click a masked cell first")
    if typed and typed.strip():
        ids = tokenizer(typed, add_special_tokens=False).input_ids
        if not ids:
            raise gr.Error(f"{typed!r} gives no token")
        chosen = ids[0]
    if chosen is None:
        raise gr.Error("pick a candidate or type a token")
    with shown_in_page():
        stepper.force(int(position), int(chosen))
    return step_view(stepper, f"Committed {token_label(tokenizer, int(chosen))!r} at position {position} by hand.")


def step_tab(registry: ModelRegistry, model_key: gr.State, prompt: Inputs) -> None:
    """Build the tab and wire it; runs use the Denoise tab's prompt and sampler controls."""
    with gr.Tab("Step by step"):
        gr.Markdown("Pause after every step (uses the prompt and parameters of the Denoise tab). Click a masked "
                    "cell to see the model's top candidates there at this step, commit one by hand (or type any "
                    "token), then go on: the hand-made commit flows through the sampler's steering hook and "
                    "into the trace.")
        stepper = gr.State(None)
        with gr.Row():
            start_button = gr.Button("Start", variant="primary")
            next_button = gr.Button("Next step")
            finish_button = gr.Button("Run to the end")
            stop_button = gr.Button("Stop")
        status = gr.Markdown("")
        canvas = gr.HTML()
        position = gr.Textbox(elem_id=PICK_ID, label="position", container=False)
        with gr.Row():
            candidates = gr.Radio([], label="Candidates at the picked position (probability)", scale=3)
            typed = gr.Textbox(label="...or any text (its first token)", scale=2)
            commit_button = gr.Button("Commit by hand", scale=1)
        text = gr.Textbox(label="Text", lines=3)
    outputs = [stepper, status, canvas, text]
    start_button.click(*by_name(partial(start, registry), [model_key], prompt, [stepper]), outputs,
                       api_name="step_start")
    next_button.click(next_step, [stepper], outputs, api_name="step_next")
    finish_button.click(finish, [stepper], outputs, api_name="step_finish")
    stop_button.click(stop, [stepper], outputs, api_name="step_stop")
    position.change(pick, [stepper, position], candidates, api_name=False)
    commit_button.click(commit, [stepper, position, candidates, typed], outputs, api_name="step_commit")
