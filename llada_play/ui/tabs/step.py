"""The Step by step tab: pause after every step, look at the model's candidates, commit a token by hand, send
one back to the mask, or fork the run and finish both branches side by side."""
from __future__ import annotations

from functools import partial

import gradio as gr
import torch

from ...diffusion.losses import mc_log_likelihood
from ...model.text import decode_generation, stop_token_ids
from ..errors import Refusal, shown_in_page
from ..live import Stepper
from ..registry import ModelRegistry
from ..viz import CANVAS_LEGEND, STEP_EXPLANATION, PieceCache, record_canvas, token_text, trace_step_html
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


def step_view(stepper: Stepper, note: str = "", picked: int | None = None) -> tuple:
    """(state, status, canvas, text) for the stepper's current situation; ``picked``: the clicked cell, framed."""
    tokenizer = stepper.tokenizer
    eos = stop_token_ids(tokenizer)
    if stepper.done is not None:
        trace = stepper.done.trace
        n = len(trace.steps)
        text = decode_generation(tokenizer, stepper.done.output[0], trace.prompt_length)
        return stepper, f"Finished after {n} steps. {note}", trace_step_html(trace, n, eos_ids=eos), text
    record = stepper.last
    html = record_canvas(record, PieceCache(tokenizer), stepper.confidences, eos_ids=eos, interactive=True,
                         pinned=stepper.pinned, picked=picked)
    config = stepper.config
    status = (f"Paused after step {record.step + 1} of {config.steps}, block {record.block + 1} of "
              f"{config.num_blocks}. {note}")
    return stepper, status, html, ""


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
        raise Refusal("press Start first")
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
    """(candidates, canvas): the candidates at a clicked masked cell as radio choices (token id values), and the
    canvas with that cell framed; a committed cell can only be sent back to the mask."""
    if stepper is None or not str(position).strip().isdigit() or stepper.done is not None:
        return gr.update(choices=[], value=None), gr.update()
    record = stepper.last
    pos = int(position)
    if record is None or not record.prompt_length <= pos < record.x_after.shape[1]:
        return gr.update(choices=[], value=None, label="Pick a cell of the generation"), gr.update()
    canvas = step_view(stepper, picked=pos)[2]
    if record.x_after[0, pos] != record.mask_id:
        return gr.update(choices=[], value=None, label=f"Position {position} is committed: send it back to the "
                                                       "mask, or pick a masked cell"), canvas
    with shown_in_page():
        candidates = stepper.candidates(pos)
    choices = [(f"{token_label(stepper.tokenizer, t)}  ({p:.2f})", t) for t, p in candidates]
    return gr.update(choices=choices, value=None, label=f"Candidates at position {position}"), canvas


def cleared_pick() -> tuple:
    """No cell picked: the candidates of an earlier step are gone, the typed text too."""
    return gr.update(choices=[], value=None, label="Candidates at the picked position (probability)"), "", ""


def chosen_tokens(stepper: Stepper, position: str, chosen: int | None, typed: str) -> list[int]:
    """The picked candidate, or every token of the typed text (from the clicked cell on), for the clicked
    cell; each of those cells must be masked and in the canvas."""
    if not str(position).strip().isdigit():
        raise Refusal("click a masked cell first")
    if typed and typed.strip():
        ids = stepper.tokenizer(typed, add_special_tokens=False).input_ids
        if not ids:
            raise Refusal(f"{typed!r} gives no token")
        record, start = stepper.last, int(position)
        if record is not None:
            cells = record.x_after[0, start:start + len(ids)].tolist()
            taken = [start + i for i, t in enumerate(cells) if t != record.mask_id]
            if len(cells) < len(ids) or taken:
                where = (f"position {taken[0]} is committed" if taken else "the canvas ends first")
                raise Refusal(f"{typed!r} is {len(ids)} tokens, for positions {start} to {start + len(ids) - 1}, but "
                              f"{where}: pick another cell or type less")
        return ids
    if chosen is None:
        raise Refusal("pick a candidate or type a token")
    return [int(chosen)]


def chosen_token(stepper: Stepper, position: str, chosen: int | None, typed: str) -> int:
    """The picked candidate, or the typed text when it is one token (a fork changes one cell)."""
    tokens = chosen_tokens(stepper, position, chosen, typed)
    if len(tokens) > 1:
        raise Refusal(f"{typed!r} is {len(tokens)} tokens; a fork changes one cell: type one token or pick a "
                      "candidate")
    return tokens[0]


def commit(stepper: Stepper | None, position: str, chosen: int | None, typed: str) -> tuple:
    """Commit the picked candidate, or every token of the typed text from the clicked cell on."""
    stepper = started(stepper)
    tokens = chosen_tokens(stepper, position, chosen, typed)
    with shown_in_page():
        for offset, token in enumerate(tokens):
            stepper.force(int(position) + offset, token)
    words = "".join(stepper.tokenizer.decode([t]) for t in tokens)
    where = f"position {position}" if len(tokens) == 1 else f"positions {position} to {int(position) + len(tokens) - 1}"
    return step_view(stepper, f"Committed {token_text(words)!r} at {where} by hand ({len(tokens)} "
                              f"token{'s' if len(tokens) > 1 else ''}).")


def send_back(stepper: Stepper | None, position: str) -> tuple:
    """Un-commit the clicked cell: its token goes back to the mask and the sampler fills it again."""
    stepper = started(stepper)
    if not str(position).strip().isdigit():
        raise Refusal("click a committed cell of the current block first")
    with shown_in_page():
        stepper.remask(int(position))
    return step_view(stepper, f"Position {position} goes back to the mask at the next step.")


def fork(stepper: Stepper | None, position: str, chosen: int | None, typed: str) -> tuple:
    """A second branch of the paused run with the chosen token committed at the clicked cell; this branch
    goes on as it is. Returns the main branch's view, then the fork's."""
    stepper = started(stepper)
    token = chosen_token(stepper, position, chosen, typed)
    with shown_in_page():
        branch = stepper.fork()
        branch.force(int(position), token)
    label = token_label(stepper.tokenizer, token)
    return (*step_view(stepper, "Forked: the second branch has the other choice."),
            *step_view(branch, f"Fork: {label!r} committed at position {position}."))


def branch_score(registry: ModelRegistry, key: str, stepper: Stepper) -> str:
    """The finished branch's text and its likelihood under the model (the Monte-Carlo bound)."""
    model, _ = registry.get(key)
    done = stepper.done
    prompt_length = done.trace.prompt_length
    bound = mc_log_likelihood(model, done.output[0, :prompt_length], done.output[0, prompt_length:],
                              done.trace.mask_id, num_samples=32, generator=torch.Generator().manual_seed(0))
    tokens = done.output.shape[1] - prompt_length
    return f"log p(text | prompt) >= {bound:.1f} nats ({bound / tokens:.2f} a token, Monte-Carlo bound, 32 samples)"


def finish_both(registry: ModelRegistry, key: str, stepper: Stepper | None, branch: Stepper | None) -> tuple:
    """Both branches run to the end, each with its likelihood, so that the choice's effect can be read."""
    stepper = started(stepper)
    if branch is None:
        raise Refusal("fork the run first: pick a cell and a candidate, then Fork")
    with shown_in_page():
        stepper.finish()
        branch.finish()
        scores = branch_score(registry, key, stepper), branch_score(registry, key, branch)
    return (*step_view(stepper, f"Main branch: {scores[0]}."), *step_view(branch, f"Fork: {scores[1]}."))


def step_tab(registry: ModelRegistry, model_key: gr.State, prompt: Inputs) -> None:
    """Build the tab and wire it; runs use the Denoise tab's prompt and sampler controls."""
    with gr.Tab("Step by step"):
        gr.Markdown("Pause after every step (uses the prompt and parameters of the Denoise tab). Click a masked "
                    "cell to see the model's top candidates there at this step, commit one by hand (or type any "
                    "text: its tokens fill the cells from the picked one on), then go on: the hand-made commit flows "
                    "through the sampler's steering hook and into the trace. Click a committed cell of the current block to send it back to the mask: "
                    "the sampler writes it again.")
        stepper = gr.State(None)
        with gr.Row():
            start_button = gr.Button("Start", variant="primary")
            next_button = gr.Button("Next step")
            finish_button = gr.Button("Run to the end")
            stop_button = gr.Button("Stop")
        position = gr.Textbox(elem_id=PICK_ID, label="position", container=False)
        with gr.Row():
            candidates = gr.Radio([], label="Candidates at the picked position (probability)", scale=3)
            typed = gr.Textbox(label="...or any text (its tokens fill the cells from the picked one on)", scale=2,
                               min_width=200)
            with gr.Column(scale=1, min_width=200):
                commit_button = gr.Button("Commit by hand")
                fork_button = gr.Button("Fork with this candidate")
                send_back_button = gr.Button("Send back to the mask")
        gr.Markdown("**Fork**: pick a masked cell and a candidate, then *Fork*: a second branch of the paused run "
                    "gets that token, this one goes on as it is. *Run both to the end* finishes them and gives "
                    "each its likelihood under the model, so that you can read what the one choice changed.")
        fork_state = gr.State(None)
        both_button = gr.Button("Run both to the end")
        gr.Markdown(STEP_EXPLANATION)
        gr.HTML(CANVAS_LEGEND)
        with gr.Row():  # the two branches side by side; on a narrow page the fork goes under the main one
            with gr.Column(min_width=420):
                status = gr.Markdown("")
                canvas = gr.HTML()
                text = gr.Textbox(label="Text", lines=3)
            with gr.Column(min_width=420):
                fork_status = gr.Markdown("")
                fork_canvas = gr.HTML()
                fork_text = gr.Textbox(label="The fork's text", lines=3)
    outputs = [stepper, status, canvas, text]
    fork_outputs = [fork_state, fork_status, fork_canvas, fork_text]
    pick_outputs = [candidates, typed, position]  # cleared once the canvas moves on: no stale candidates
    events = [
        start_button.click(*by_name(partial(start, registry), [model_key], prompt, [stepper]), outputs,
                           api_name="step_start"),
        next_button.click(next_step, [stepper], outputs, api_name="step_next"),
        finish_button.click(finish, [stepper], outputs, api_name="step_finish"),
        stop_button.click(stop, [stepper], outputs, api_name="step_stop"),
        commit_button.click(commit, [stepper, position, candidates, typed], outputs, api_name="step_commit"),
        send_back_button.click(send_back, [stepper, position], outputs, api_name="step_send_back"),
        fork_button.click(fork, [stepper, position, candidates, typed], outputs + fork_outputs,
                          api_name="step_fork"),
        both_button.click(partial(finish_both, registry), [model_key, stepper, fork_state], outputs + fork_outputs,
                          api_name="step_finish_both"),
    ]
    for event in events:
        event.success(cleared_pick, None, pick_outputs, api_name=False, show_progress="hidden")
    position.change(pick, [stepper, position], [candidates, canvas], api_name=False)
