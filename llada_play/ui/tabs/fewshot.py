"""The In-context learning tab: a fresh mapping (drawn, or typed) shown in k examples, one question about it, and
the shipped pair answering: the diffusion model filling the answer's slot live (in place, between the examples,
when they come after the question), its autoregressive twin left to right, and what each would rank first."""
from __future__ import annotations

import html
import json
import random
import time
from collections.abc import Iterator
from functools import partial

import gradio as gr
import torch

from ...diffusion.sampler_config import SamplerConfig
from ...experiments.icl import answer_of, encode, generated_answers, label_id, slot_log_probs
from ...experiments.icl_data import (LABELS, FewShotPrompt, FewShotTask, draw_prompt, own_prompt,
                                     parse_examples)
from ...model.checkpoint import SHIPPED_MODELS
from ...model.text import tokenize
from ..errors import Refusal, shown_in_page
from ..live import GenerationDone, stream
from ..paths import ICL_RESULTS
from ..registry import ModelRegistry
from ..viz import CELL_CSS, PieceCache, confidence_color, record_canvas

DIFFUSION_NAME = "Few-shot, diffusion (seed 1)"
TWIN_NAME = "Few-shot, autoregressive twin (seed 1)"
MAX_SHOTS = 16  # what the shipped pair was trained on (data/icl/README.md); longer prompts leave its context
CONTEXT = 160  # the pair's training window, in tokens
MAX_CHARACTERS = 2_000  # 16 of the longest example lines are under 400; a served page takes no more
MAX_PAUSE = 2.0  # seconds between steps, the slider's end (a value past it from the API is cut to it)
VARIANTS = {"invented words (fresh)": "fresh", "real words, their own colour (agreeing)": "agreeing",
            "real words, colours flipped (flipped)": "flipped"}
LAYOUTS = {"examples, then the question": "before", "the question, then the examples": "after"}


def shipped_results() -> dict | None:
    """The shipped run's results (data/icl/results.json), None where absent."""
    return json.loads(ICL_RESULTS.read_text()) if ICL_RESULTS.exists() else None


def measured_note(results: dict | None) -> str:
    """The shipped pair's 8-shot ranking accuracy on fresh prompts, before and after the question."""
    if not results:
        return ""
    summary, parts = results["summary"], []
    for key, where in (("before/fresh/8", "examples before the question"),
                       ("after/fresh/8", "examples after the question")):
        said = [f"{name} **{summary[kind][key]['ranking']['mean']:.0%}**" for kind, name in
                (("diffusion", "diffusion"), ("autoregressive", "twin")) if kind in summary]
        parts.append(f"{where}: " + ", ".join(said))
    n = results["config"]["eval_prompts"]
    seeds = len(results["config"]["seeds"])
    return (f"Measured on {n} held-out prompts at 8 shots ({seeds} training seed{'s, mean' if seeds > 1 else ''}; chance "
            f"{results['chance']:.0%}), ranking the prompt's labels: " + "; ".join(parts) + " (data/icl/README.md).")


def draw(shots: float, variant: str, seed: float | None = None) -> tuple[str, str, str]:
    """(examples text, question key, note) of a fresh prompt of the task the pair was scored on."""
    seed = random.randrange(1_000_000) if seed is None else int(seed)
    with shown_in_page():
        if not isinstance(shots, (int, float)) or not 0 <= shots <= MAX_SHOTS:
            raise ValueError(f"examples must be between 0 and {MAX_SHOTS}, got {shots!r}")
        if variant not in VARIANTS:
            raise ValueError(f"words must be one of: {'; '.join(VARIANTS)}")
        task = FewShotTask(int(shots), variant=VARIANTS[variant])
    prompt = draw_prompt(task, random.Random(f"app-{seed}"))
    lines = "\n".join(prompt.line(k, v) for k, v in prompt.examples)
    return lines, prompt.key, f"A fresh mapping (seed {seed}): {len(prompt.examples)} examples, one question."


def _prompt(examples_text: str, key: str, layout: str, tokenizer) -> FewShotPrompt:
    if not isinstance(examples_text or "", str) or not isinstance(key or "", str):
        raise ValueError("the examples and the key must be text")
    if len(examples_text or "") > MAX_CHARACTERS or len(key or "") > 100:
        raise ValueError(f"the examples may be {MAX_CHARACTERS:,} characters and the key 100; these are "
                         f"{len(examples_text or ''):,} and {len(key or ''):,}")
    if layout not in LAYOUTS:
        raise ValueError(f"order must be one of: {'; '.join(LAYOUTS)}")
    examples, fmt = parse_examples(examples_text or "")
    if len(examples) > MAX_SHOTS:
        raise ValueError(f"{len(examples)} examples: the pair was trained on at most {MAX_SHOTS}; remove some")
    prompt = own_prompt(examples, key or "", LAYOUTS[layout], fmt)  # the first line's separator
    tokenize(tokenizer, prompt.before_answer() + prompt.after_answer(), "the prompt")  # what it cannot spell
    before, after = encode(tokenizer, prompt)
    if len(before) + 1 + len(after) > CONTEXT:
        raise ValueError(f"this prompt is {len(before) + 1 + len(after)} tokens, more than the {CONTEXT} the pair "
                         "was trained on: use fewer or shorter examples")
    for label in prompt.labels:
        try:
            label_id(tokenizer, label)  # one token each
        except ValueError as err:
            raise ValueError(f"{err}; the pair knows the labels {', '.join(LABELS)}") from None
    return prompt


def _models(registry: ModelRegistry):
    missing = [name for name in (DIFFUSION_NAME, TWIN_NAME) if name not in SHIPPED_MODELS]
    if missing:
        raise Refusal(f"the few-shot pair is not here ({', '.join(missing)}): train it with `python -m "
                       "llada_play.experiments.icl_experiment` and see data/icl/README.md")
    return registry.get(DIFFUSION_NAME), registry.get(TWIN_NAME)


def label_bars(prompt: FewShotPrompt, rows: dict[str, torch.Tensor], tokenizer) -> str:
    """A table of each model's probability of every label of the prompt (renormalised over those labels), the
    examples' answer marked."""
    ids = [label_id(tokenizer, label) for label in prompt.labels]
    head = "".join(f"<th>{html.escape(name)}</th>" for name in rows)
    body = []
    for i, label in enumerate(prompt.labels):
        cells = []
        for row in rows.values():
            p = torch.softmax(row[ids], -1)[i].item()
            cells.append(f'<td><div class="lp-bar" style="width:{p * 100:.0f}%;background:{confidence_color(p)}">'
                         f'</div><span class="lp-bar-n">{p:.0%}</span></td>')
        mark = " ✓" if label == prompt.answer else ""
        body.append(f"<tr><th>{html.escape(label)}{mark}</th>{''.join(cells)}</tr>")
    return (f'<table class="lp-bars"><tr><th>label</th>{head}</tr>{"".join(body)}</table>'
            "<p class='lp-small'>Each model's probability of each label in the answer's slot, among the prompt's "
            "labels; ✓ the label the examples give the asked key.</p>")


def _twin_answer(model, tokenizer, prompt: FewShotPrompt) -> tuple[str, str]:
    """(the twin's greedy answer, the text it saw): left to right, from what precedes the slot only."""
    answer = generated_answers(model, tokenizer, [prompt])[0]
    return answer, prompt.before_answer()


def _verdict(name: str, answer: str, prompt: FewShotPrompt) -> str:
    if not prompt.answer:
        return f"**{name}:** {answer or '(nothing)'}"
    return f"**{name}:** {answer or '(nothing)'} " + ("✓" if answer == prompt.answer else f"✗ (the examples say "
                                                                                          f"{prompt.answer})")


def ask(registry: ModelRegistry, examples_text: str, key: str, layout: str, delay: float) -> Iterator[tuple]:
    """Stream the diffusion model's steps on the answer's slot, then both models' answers and label bars."""
    with shown_in_page():
        (model, tokenizer), (twin, twin_tokenizer) = _models(registry)
        prompt = _prompt(examples_text, key, layout, tokenizer)
        before, after = encode(tokenizer, prompt)
        slot = 1 if after else 2  # in place: the label alone; at the end: the label and the end of its line
        config = SamplerConfig(steps=slot, gen_length=slot + len(after), block_length=slot + len(after))
        pins = {slot + i: t for i, t in enumerate(after)} if after else None
        pieces, confidences = PieceCache(tokenizer), {}
        eos = {tokenizer.eos_token_id}
        canvas, answer = "", ""
        for item in stream(model, torch.tensor([before]), config, tokenizer, record_trace=False, constraints=pins):
            if isinstance(item, GenerationDone):
                answer = answer_of(tokenizer, item.output[0, len(before):len(before) + slot].tolist())
                break
            canvas = record_canvas(item, pieces, confidences, eos_ids=eos)
            yield canvas, "", "Denoising the answer's slot...", ""
            if isinstance(delay, (int, float)) and delay > 0:
                time.sleep(min(delay, MAX_PAUSE))
        twin_answer, seen = _twin_answer(twin, twin_tokenizer, prompt)
        twin_html = (f'<div class="lp-canvas"><span class="lp-prompt">{html.escape(seen)}</span>'
                     f'<span class="lp-tok lp-new">{html.escape(" " + twin_answer)}</span></div>')
        rows = {"diffusion": slot_log_probs(model, tokenizer, [prompt])[0],
                "twin": slot_log_probs(twin, twin_tokenizer, [prompt])[0]}
        status = _verdict("Diffusion", answer, prompt) + "  " + _verdict("Twin", twin_answer, prompt)
        if prompt.layout == "after":
            status += ("  The twin reads left to right: it saw the question only, never the examples after it.")
        if not prompt.answer:
            status += "  (The examples give this key no single label: any answer is a guess.)"
    yield canvas, CELL_CSS + twin_html, status, label_bars(prompt, rows, tokenizer)


# The bars' table fits its column: at 800 px the column is about 390 px wide (checked in Chromium).
CSS = (".lp-bars {border-collapse: collapse; font-size: 1.05rem; width: 100%; max-width: 560px; table-layout: fixed} "
       ".lp-bars th, .lp-bars td {padding: 4px 8px; text-align: left; white-space: nowrap} .lp-bars th:first-child "
       "{width: 30%} .lp-bar {height: 1.1em; display: inline-block; vertical-align: middle; margin-right: 6px; "
       "border: 1px solid #7a7a7a; max-width: calc(100% - 3.5em)} .lp-small {font-size: 0.9rem}")


def fewshot_tab(registry: ModelRegistry) -> None:
    results = shipped_results()
    with gr.Tab("In-context learning"):
        gr.Markdown(
            "**Learning from the prompt alone.** Every prompt maps a few invented words to colours at random: a "
            "mapping neither model has seen, so the only way to answer the question is to read the examples. Both "
            "models were trained from scratch on such prompts (the same documents, in the same order, for the same "
            "steps): the diffusion model fills the masked answer where it stands, its autoregressive twin writes "
            "after what it has read. Put the examples **after** the question and the twin cannot see them; the "
            "diffusion model can. In the diffusion canvas, grey cells are masks with the model's current guess; "
            "green cells are committed, darker when surer. At this budget the twin learnt to read the examples and "
            "the diffusion model did not: it answers a word's usual colour (try *real words, colours flipped*), "
            "see notebook 03b.\n\n" + measured_note(results))
        lines, key0, note0 = draw(8, "invented words (fresh)", seed=0)
        with gr.Row():
            with gr.Column(scale=1):
                shots = gr.Slider(0, MAX_SHOTS, value=8, step=1, label="Examples (k)")
                variant = gr.Dropdown(list(VARIANTS), value="invented words (fresh)", label="Words")
                new_button = gr.Button("Draw a fresh mapping")
                examples = gr.Textbox(value=lines, lines=10, max_lines=MAX_SHOTS + 2,
                                      label="Examples, one a line (key -> label); edit them freely")
                key = gr.Textbox(value=key0, label="Question: the label of which key?")
                note = gr.Markdown(note0)
                layout = gr.Radio(list(LAYOUTS), value="examples, then the question", label="Order")
                delay = gr.Slider(0, MAX_PAUSE, value=0.6, step=0.1, label="Pause between steps (s)")
                ask_button = gr.Button("Ask both models", variant="primary")
            with gr.Column(scale=2):
                status = gr.Markdown("")
                gr.Markdown("**Diffusion model** (fills the slot in place)")
                canvas = gr.HTML()
                gr.Markdown("**Autoregressive twin** (left to right)")
                twin_view = gr.HTML()
                bars = gr.HTML()
    new_button.click(lambda k, v: draw(k, v), [shots, variant], [examples, key, note], api_name="icl_draw")
    ask_button.click(partial(ask, registry), [examples, key, layout, delay], [canvas, twin_view, status, bars],
                     api_name="icl_ask")
