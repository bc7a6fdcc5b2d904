"""The Compare tab: the same prompt and seed under up to four sampler settings, or their accuracy on a task."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import gradio as gr

from ...diffusion.sampler_config import INTERACTIVE, SamplerConfig
from ...experiments.compare import SamplerSetting, accuracy_by_setting, compare_settings
from ...model.text import encode_prompt, stop_token_ids
from ...training.data import load_sft_rows
from ..controls import CACHE_CHOICES, NO_CACHE, STRATEGIES, Inputs, config_from_controls
from ..errors import Refusal, shown_in_page
from ..paths import TASK_FILE
from ..registry import ModelRegistry
from ..model_kinds import INSTRUCT_MODEL
from ..viz import commit_order_panels

# (remasking, steps, block length, threshold, cache, early exit) of each row, every row ticked. Measured with
# compare_settings on the shipped default model (bfloat16), the Denoise tab's defaults ("Romeo.\n", 64 tokens,
# temperature 1, seed 0): rows 1 and 2 take 64 steps = 64 forward passes; row 3, LLaDA's fast recipe (threshold
# 0.9, dual cache, early exit), 62-63 passes (60-61 windowed; 63 on 12-04): this small model is rarely 90% sure of several tokens at
# once, so a threshold saves little here (0.7: 61, 0.5: 62, 0.2: 52, 0.1: 28 with broken names); row 4, half the
# steps with the dual cache, 32 passes (30 windowed) and text as readable as row 1's ("And are so.\n\nBEROWNE.\n\n
# church.\nNay.\nThere is my lord you.\n\nSECOND LORD.\nWhy, I'll say, ..."). On the task (Accuracy, the
# arithmetic model, 32 tokens in blocks of 8) the threshold row is the fast one: 4 passes a batch against 32.
ROW_DEFAULTS = [("low_confidence", INTERACTIVE.steps, INTERACTIVE.block_length, 0.0, NO_CACHE, False),
                ("random", INTERACTIVE.steps, INTERACTIVE.block_length, 0.0, NO_CACHE, False),
                ("low_confidence", INTERACTIVE.steps, INTERACTIVE.block_length, 0.9, "dual", True),
                ("low_confidence", INTERACTIVE.steps // 2, INTERACTIVE.block_length, 0.0, "dual", True)]
ROW_WIDTH = 7  # components per row: the tick box, then the six settings above
# Second thoughts (diffusion/revision.py) per row, as named presets; their dropdowns come after every row's
# other components, so that API clients written before them keep their positions
SECOND_THOUGHTS = {"off": {}, "remask cap, eta 0.05": dict(remask="cap", remask_eta=0.05),
                   "remask conf, eta 0.1": dict(remask="conf", remask_eta=0.1),
                   "remask loop, eta 0.2": dict(remask="loop", remask_eta=0.2),
                   "edit at p >= 0.9": dict(edit_threshold=0.9, edit_steps=2)}
TASK_ROWS = 40
TASK_GEN_LENGTH, TASK_BLOCK_LENGTH = 32, 8
# The model the accuracy runs on: the task's sums need the arithmetic model (the Shakespeare model scores 0%)
SESSION_MODEL = "the session's model (Model tab)"
TASK_MODEL = INSTRUCT_MODEL
TASK_MODELS = [TASK_MODEL, SESSION_MODEL]
HEADERS = ["setting", "forward passes (windowed)", "wall time (s)", "text", "revised (remasked / edited)",
           "steps taken"]
PASSES_NOTE = ("A **step** commits one or more tokens; a **forward pass** is one run of the model (a step costs one, "
               "two with guidance). A threshold or early exit can end before the steps asked for (\"up to\"); "
               "*windowed* passes (KV cache) read only the current block, so they cost less.")
# One sentence of help under each control of the first setting (the other settings have the same controls)
HELP = {"use": "Run this setting.",
        "remasking": "Which guesses to commit first: the most probable, the biggest lead, random...",
        "steps": "Steps in all; with a threshold unused (up to one step a token).",
        "block_length": "Blocks are filled left to right, each in steps ÷ blocks steps.",
        "threshold": "Commit every guess at least this probable in one step; 0 = the fixed schedule.",
        "cache": "Reuse the keys and values of settled tokens: windowed passes over the block only.",
        "early_exit": "Stop when the rest of the canvas is end-of-text.",
        "second_thoughts": "Send committed tokens back (remask) or replace doubted ones (edit)."}
CSS = """
.lp-compare-setting {padding: 6px 8px !important; margin-bottom: 8px;}
.lp-compare-setting .lp-compare-use label > span {white-space: nowrap; overflow: visible; font-weight: 600;}
.lp-compare-table table {table-layout: fixed; width: 100% !important;}
.lp-compare-table td, .lp-compare-table th {white-space: pre-wrap !important; overflow-wrap: anywhere;
                                            word-break: break-word;}
"""


@dataclass(frozen=True)
class SettingRow:
    """A ticked row of the tab, numbered from 1 as on the page."""

    number: int
    remasking: str
    steps: int
    block_length: int
    threshold: float
    cache: str
    eos_early_exit: bool
    second_thoughts: str = "off"

    def label(self, gen_length: int | None = None, steps: int | None = None, block_length: int | None = None) -> str:
        """The row's full name for a run of ``gen_length`` tokens (``steps``, ``block_length``: what the run uses
        in place of the row's); "up to" where a threshold or early exit can end the run sooner."""
        steps, block = steps or self.steps, block_length or self.block_length
        if self.threshold:  # the steps box is unused: at least one token a step
            most = f"up to {int(gen_length)} steps" if gen_length else "up to one step a token"
            schedule = f"{most} (thr {self.threshold})"
        else:
            schedule = f"up to {steps} steps" if self.eos_early_exit else f"{steps} steps"
        return (f"{self.number}: {self.remasking}, {schedule}, block {block}"
                + (f", cache {self.cache}" if self.cache != NO_CACHE else "")
                + (", early exit" if self.eos_early_exit else "")
                + (f", {self.second_thoughts}" if self.second_thoughts != "off" else ""))

    @property
    def short(self) -> str:
        """The panel title: the number and the remasking (the table has the full name)."""
        return f"{self.number}: {self.remasking}"

    def config(self, gen_length: float, temperature: float, eos_token_ids: list[int], steps: int | None = None,
               block_length: int | None = None) -> SamplerConfig:
        """This row's settings for ``gen_length`` tokens (``steps``, ``block_length``: in place of the row's)."""
        return config_from_controls(dict(
            gen_length=gen_length, steps=steps or self.steps, block_length=block_length or self.block_length,
            temperature=temperature, remasking=self.remasking, threshold=self.threshold, cache=self.cache,
            eos_early_exit=self.eos_early_exit, **SECOND_THOUGHTS[self.second_thoughts])).replace(
                eos_token_ids=eos_token_ids)


def ticked_rows(values: tuple) -> list[SettingRow]:
    """The ticked rows of the flat list of every row's component values (then each row's second thoughts)."""
    count = len(ROW_DEFAULTS)
    flat, thoughts = values[:count * ROW_WIDTH], list(values[count * ROW_WIDTH:]) + ["off"] * count
    rows = [flat[i:i + ROW_WIDTH] for i in range(0, len(flat), ROW_WIDTH)]
    for preset in thoughts[:count]:
        if (preset or "off") not in SECOND_THOUGHTS:
            raise Refusal(f"unknown second-thoughts setting {preset!r}; choose one of {list(SECOND_THOUGHTS)}")
    chosen = [SettingRow(number, strategy, int(steps), int(block), threshold, cache, bool(early), thought or "off")
              for number, ((use, strategy, steps, block, threshold, cache, early), thought)
              in enumerate(zip(rows, thoughts), 1) if use]
    if not chosen:
        raise Refusal("tick at least one setting")
    return chosen


def setting_values(values: tuple) -> tuple[tuple, tuple]:
    """(every row's values and second thoughts, what follows them: the newer inputs)."""
    count = len(ROW_DEFAULTS) * (ROW_WIDTH + 1)
    return values[:count], values[count:]


def compare(registry: ModelRegistry, key: str, prompt: str, chat: bool, gen_length: float, temperature: float,
            seed: float | None, *values) -> tuple:
    """(results table, commit-order panels) of every ticked setting on the prompt: each row named with the
    steps it runs (after the sampler's clamping to the tokens), the steps it took and its forward passes."""
    with shown_in_page():
        model, tokenizer = registry.get(key)
        ids = encode_prompt(tokenizer, prompt, chat=chat)
        eos = sorted(stop_token_ids(tokenizer))
        rows = ticked_rows(setting_values(values)[0])
        configs = [row.config(gen_length, temperature, eos) for row in rows]
        settings = [SamplerSetting(row.label(config.gen_length, config.steps, config.block_length), config)
                    for row, config in zip(rows, configs)]
        results = compare_settings(model, tokenizer, ids, settings, seed=int(seed or 0))
    table = [[r.name, f"{r.forward_passes} ({r.windowed_passes})", round(r.wall_time_s, 2), r.text,
              f"{r.remasked} / {r.edited}", r.steps] for r in results]
    return table, commit_order_panels(results, titles=[row.short for row in rows])


def task_steps(steps: int) -> int:
    """A row's steps for the task's length: the same steps per token, in whole steps per block."""
    blocks = TASK_GEN_LENGTH // TASK_BLOCK_LENGTH
    return max(blocks, min(TASK_GEN_LENGTH, steps) // blocks * blocks)


def task_model(registry: ModelRegistry, key: str, choice: str | None) -> str:
    """The key of the model the task runs on: the shipped arithmetic model (the default), or the session's."""
    if choice in (None, "", TASK_MODEL):
        return TASK_MODEL if TASK_MODEL in registry.choices() else key
    if choice == SESSION_MODEL:
        return key
    raise Refusal(f"unknown model for the task {choice!r}; choose one of {TASK_MODELS}")


def task_accuracy(registry: ModelRegistry, key: str, temperature: float, seed: float | None,
                  *values) -> Iterator[tuple]:
    """Stream (results table, no plot) as each ticked setting answers the first prompts of the task file: the
    finished rows, then a line saying which setting is answering. After the settings' values comes the model
    to use (:data:`TASK_MODELS`; the arithmetic model when left out)."""
    settings_in, newer = setting_values(values)
    with shown_in_page():
        rows = ticked_rows(settings_in)
        model_key = task_model(registry, key, newer[0] if newer else None)
        model, tokenizer = registry.get(model_key)
        conversations = load_sft_rows(TASK_FILE)[:TASK_ROWS]
        eos = sorted(stop_token_ids(tokenizer))
        # short answers in an app-typical length, so that the cache and early exit matter
        configs = [row.config(TASK_GEN_LENGTH, temperature, eos, task_steps(row.steps), TASK_BLOCK_LENGTH)
                   for row in rows]
        settings = [SamplerSetting(row.label(TASK_GEN_LENGTH, config.steps, TASK_BLOCK_LENGTH), config)
                    for row, config in zip(rows, configs)]
        table: list[list] = []
        for i, setting in enumerate(settings):
            yield [*table, [f"{setting.name}: answering {len(conversations)} prompts ({i + 1} of {len(settings)})...",
                            "", "", "", "", ""]], None
            (r,) = accuracy_by_setting(model, tokenizer, conversations, [setting], seed=int(seed or 0))
            table.append([r["setting"], f"{r['forward_passes']} ({r['windowed_passes']})", round(r["wall_time_s"], 2),
                          f"accuracy {r['accuracy']:.0%}, well-formed {r['well_formed']:.0%}, "
                          f"{r['tokens_per_s']:.0f} tokens/s", "(not counted for the task)", "—"])
    yield table, None


def setting_row(number: int, strategy: str, steps: int, block: int, threshold: float, cache: str,
                early: bool) -> list[gr.components.Component]:
    """One setting's controls; the first row's carry a sentence of help each (the others repeat them)."""
    def info(name: str) -> str | None:
        return HELP[name] if number == 1 else None

    with gr.Group(elem_classes=["lp-compare-setting"]):
        with gr.Row(equal_height=True):
            return [gr.Checkbox(value=True, label=f"Setting {number}", min_width=110, scale=0,
                                elem_classes=["lp-compare-use"], info=info("use")),
                    gr.Dropdown(STRATEGIES, value=strategy, label="Remasking", min_width=170, info=info("remasking")),
                    gr.Slider(1, 256, value=steps, step=1, label="Steps", min_width=170, info=info("steps")),
                    gr.Slider(4, 256, value=block, step=4, label="Block length", min_width=170,
                              info=info("block_length")),
                    gr.Slider(0, 1, value=threshold, step=0.05, label="Threshold (0 = off)", min_width=170,
                              info=info("threshold")),
                    gr.Dropdown(CACHE_CHOICES, value=cache, label="KV cache", min_width=110, info=info("cache")),
                    gr.Checkbox(value=early, label="Early exit on end-of-text", min_width=130,
                                info=info("early_exit"))]


def compare_tab(registry: ModelRegistry, model_key: gr.State, prompt: Inputs) -> None:
    """Build the tab and wire it; it uses the Denoise tab's prompt, length, temperature and seed."""
    with gr.Tab("Compare"):
        gr.Markdown("The same prompt and seed under up to four sampler settings (the prompt, length, temperature "
                    "and seed of the Denoise tab), side by side: what each wrote, how many forward passes it "
                    "cost and in which order it committed the tokens. Or their accuracy on the arithmetic task. "
                    "Setting 4 runs half the steps with the cache: on the default prompt it costs half the "
                    "passes of setting 1.\n\n" + PASSES_NOTE)
        settings = [c for number, row in enumerate(ROW_DEFAULTS, 1) for c in setting_row(number, *row)]
        with gr.Row():
            settings += [gr.Dropdown(list(SECOND_THOUGHTS), value="off", label=f"Setting {number}: second thoughts",
                                     min_width=180, info=HELP["second_thoughts"] if number == 1 else None)
                         for number in range(1, len(ROW_DEFAULTS) + 1)]
        with gr.Row(equal_height=True):
            run = gr.Button("Compare on the prompt", variant="primary")
            task = gr.Button(f"Accuracy on {TASK_FILE.name} (first {TASK_ROWS} prompts, {TASK_GEN_LENGTH} tokens "
                             f"in blocks of {TASK_BLOCK_LENGTH})")
            model_choice = gr.Dropdown(TASK_MODELS, value=TASK_MODEL, label="Model for the accuracy",
                                       info="The sums need the arithmetic model: the Shakespeare model scores 0%.",
                                       min_width=300)
        table = gr.Dataframe(headers=HEADERS, label="Results", wrap=True, elem_classes=["lp-compare-table"],
                             column_widths=["22%", "11%", "8%", "37%", "12%", "10%"])
        plots = gr.Plot(label="Commit order of each setting")
    run.click(partial(compare, registry),
              [model_key, *(prompt[name] for name in ("prompt", "chat", "gen_length", "temperature", "seed")),
               *settings], [table, plots], api_name="compare", concurrency_limit=2)
    task.click(partial(task_accuracy, registry),
               [model_key, prompt["temperature"], prompt["seed"], *settings, model_choice], [table, plots],
               api_name="task_accuracy", concurrency_limit=1, show_progress="minimal")
