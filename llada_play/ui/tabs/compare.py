"""The Compare tab: the same prompt and seed under up to four sampler settings, or their accuracy on a task."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import gradio as gr

from ...diffusion.sampler_config import INTERACTIVE, SamplerConfig
from ...experiments.compare import SamplerSetting, accuracy_by_setting, compare_settings
from ...model.text import encode_prompt, stop_token_ids
from ...training.data import load_sft_rows
from ..controls import CACHE_CHOICES, NO_CACHE, STRATEGIES, Inputs, config_from_controls
from ..errors import shown_in_page
from ..paths import TASK_FILE
from ..registry import ModelRegistry
from ..viz import commit_order_panels

# (remasking, steps, block length, threshold, cache, early exit) of each row; the last is the fast setting:
# threshold decoding with the block cache and early exit
ROW_DEFAULTS = [("low_confidence", INTERACTIVE.steps, INTERACTIVE.block_length, 0.0, NO_CACHE, False),
                ("random", INTERACTIVE.steps, INTERACTIVE.block_length, 0.0, NO_CACHE, False),
                ("margin", INTERACTIVE.steps, INTERACTIVE.block_length, 0.0, NO_CACHE, False),
                ("low_confidence", INTERACTIVE.steps, INTERACTIVE.block_length, 0.9, "dual", True)]
ROW_WIDTH = 7  # components per row: the tick box, then the six settings above
# Second thoughts (diffusion/revision.py) per row, as named presets; their dropdowns come after every row's
# other components, so that API clients written before them keep their positions
SECOND_THOUGHTS = {"off": {}, "remask cap, eta 0.05": dict(remask="cap", remask_eta=0.05),
                   "remask conf, eta 0.1": dict(remask="conf", remask_eta=0.1),
                   "remask loop, eta 0.2": dict(remask="loop", remask_eta=0.2),
                   "edit at p >= 0.9": dict(edit_threshold=0.9, edit_steps=2)}
TASK_ROWS = 40
TASK_GEN_LENGTH, TASK_BLOCK_LENGTH = 32, 8


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

    @property
    def name(self) -> str:
        return (f"{self.number}: {self.remasking}, {self.steps} steps, block {self.block_length}"
                + (f", thr {self.threshold}" if self.threshold else "")
                + (f", cache {self.cache}" if self.cache != NO_CACHE else "")
                + (", early exit" if self.eos_early_exit else "")
                + (f", {self.second_thoughts}" if self.second_thoughts != "off" else ""))

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
            raise gr.Error(f"unknown second-thoughts setting {preset!r}; choose one of {list(SECOND_THOUGHTS)}")
    chosen = [SettingRow(number, strategy, int(steps), int(block), threshold, cache, bool(early), thought or "off")
              for number, ((use, strategy, steps, block, threshold, cache, early), thought)
              in enumerate(zip(rows, thoughts), 1) if use]
    if not chosen:
        raise gr.Error("tick at least one setting")
    return chosen


def compare(registry: ModelRegistry, key: str, prompt: str, chat: bool, gen_length: float, temperature: float,
            seed: float | None, *values) -> tuple:
    """(results table, commit-order panels) of every ticked setting on the prompt."""
    with shown_in_page():
        model, tokenizer = registry.get(key)
        ids = encode_prompt(tokenizer, prompt, chat=chat)
        eos = sorted(stop_token_ids(tokenizer))
        settings = [SamplerSetting(row.name, row.config(gen_length, temperature, eos)) for row in ticked_rows(values)]
        results = compare_settings(model, tokenizer, ids, settings, seed=int(seed or 0))
    table = [[r.name, f"{r.forward_passes} ({r.windowed_passes})", round(r.wall_time_s, 2), r.text,
              f"{r.remasked} / {r.edited}"] for r in results]
    return table, commit_order_panels(results)


def task_steps(steps: int) -> int:
    """A row's steps for the task's length: the same steps per token, in whole steps per block."""
    blocks = TASK_GEN_LENGTH // TASK_BLOCK_LENGTH
    return max(blocks, min(TASK_GEN_LENGTH, steps) // blocks * blocks)


def task_accuracy(registry: ModelRegistry, key: str, temperature: float, seed: float | None, *values) -> tuple:
    """(results table, no plot) of every ticked setting answering the first prompts of the task file."""
    with shown_in_page():
        model, tokenizer = registry.get(key)
        conversations = load_sft_rows(TASK_FILE)[:TASK_ROWS]
        eos = sorted(stop_token_ids(tokenizer))
        # short answers in an app-typical length, so that the cache and early exit matter
        settings = [SamplerSetting(row.name, row.config(TASK_GEN_LENGTH, temperature, eos, task_steps(row.steps),
                                                        TASK_BLOCK_LENGTH)) for row in ticked_rows(values)]
        rows = accuracy_by_setting(model, tokenizer, conversations, settings, seed=int(seed or 0))
    table = [[r["setting"], f"{r['forward_passes']} ({r['windowed_passes']})", round(r["wall_time_s"], 2),
              f"accuracy {r['accuracy']:.0%}, well-formed {r['well_formed']:.0%}, {r['tokens_per_s']:.0f} tokens/s",
              "(not counted for the task)"] for r in rows]
    return table, None


def setting_row(number: int, strategy: str, steps: int, block: int, threshold: float, cache: str,
                early: bool) -> list[gr.components.Component]:
    with gr.Row():
        return [gr.Checkbox(value=number <= 3, label=f"Setting {number}", scale=1),
                gr.Dropdown(STRATEGIES, value=strategy, label="Remasking", scale=2),
                gr.Slider(1, 256, value=steps, step=1, label="Steps", scale=2),
                gr.Slider(4, 256, value=block, step=4, label="Block length", scale=2),
                gr.Slider(0, 1, value=threshold, step=0.05, label="Threshold (0 = off)", scale=2),
                gr.Dropdown(CACHE_CHOICES, value=cache, label="KV cache", scale=1),
                gr.Checkbox(value=early, label="Early exit on end-of-text", scale=1)]


def compare_tab(registry: ModelRegistry, model_key: gr.State, prompt: Inputs) -> None:
    """Build the tab and wire it; it uses the Denoise tab's prompt, length, temperature and seed."""
    with gr.Tab("Compare"):
        gr.Markdown("The same prompt and seed under up to four sampler settings (uses the prompt, length "
                    "and temperature of the Denoise tab).")
        settings = [c for number, row in enumerate(ROW_DEFAULTS, 1) for c in setting_row(number, *row)]
        with gr.Row():
            settings += [gr.Dropdown(list(SECOND_THOUGHTS), value="off", label=f"Setting {number}: second thoughts")
                         for number in range(1, len(ROW_DEFAULTS) + 1)]
        with gr.Row():
            run = gr.Button("Compare on the prompt", variant="primary")
            task = gr.Button(f"Accuracy on {TASK_FILE.name} (first {TASK_ROWS} prompts, {TASK_GEN_LENGTH} tokens "
                             f"in blocks of {TASK_BLOCK_LENGTH})")
        table = gr.Dataframe(headers=["setting", "forward passes (windowed)", "wall time (s)", "text",
                                      "revised (remasked / edited)"],
                             label="Results", wrap=True)
        plots = gr.Plot(label="Commit order of each setting")
    run.click(partial(compare, registry),
              [model_key, *(prompt[name] for name in ("prompt", "chat", "gen_length", "temperature", "seed")),
               *settings], [table, plots], api_name="compare", concurrency_limit=2)
    task.click(partial(task_accuracy, registry), [model_key, prompt["temperature"], prompt["seed"], *settings],
               [table, plots], api_name="task_accuracy", concurrency_limit=1)
