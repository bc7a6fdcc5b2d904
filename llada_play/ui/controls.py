"""The sampler's controls on the page, the one conversion from their values to a :class:`SamplerConfig`, and
handlers that take their inputs by name."""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields

import gradio as gr

from ..diffusion.remasking import REMASKING
from ..diffusion.sampler_config import INTERACTIVE, REMASK_SCHEDULES, SamplerConfig
from ..model.kv_cache import CACHE_MODES

STRATEGIES = sorted(REMASKING)
NO_CACHE = "none"  # what the page shows for cache=None
CACHE_CHOICES = [NO_CACHE, *CACHE_MODES]
NO_REMASK = "off"  # what the page shows for remask=None
REMASK_CHOICES = [NO_REMASK, *REMASK_SCHEDULES]


class Inputs(dict):
    """Components by name, in the order Gradio passes their values (and an API client gives them): a handler
    wired with :func:`by_name` gets one dict of these values keyed by the same names, so adding a control
    touches the place that builds it and the place that reads it, never a list of positions."""

    def components(self) -> list[gr.components.Component]:
        return list(self.values())


def by_name(fn: Callable, before: Sequence[gr.components.Component], inputs: Inputs,
            after: Sequence[gr.components.Component] = ()) -> tuple[Callable, list[gr.components.Component]]:
    """(handler, input components) for ``event(handler, components, ...)``: ``fn`` gets the values of
    ``before`` positionally, then the values of ``inputs`` as one dict by name, then those of ``after``. The
    handler's signature names every value (the API's parameter names); a generator stays a generator, so that
    Gradio streams it."""
    names, n = list(inputs), len(before)

    def split(values: tuple) -> tuple:
        return (*values[:n], dict(zip(names, values[n:n + len(names)])), *values[n + len(names):])

    if inspect.isgeneratorfunction(fn):
        def handler(*values):
            yield from fn(*split(values))
    else:
        def handler(*values):
            return fn(*split(values))
    labels = [f"input_{i}" for i in range(n)] + names + [f"after_{i}" for i in range(len(after))]
    handler.__signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in labels])
    return handler, [*before, *inputs.components(), *after]


CONFIG_FIELDS = {f.name: f for f in fields(SamplerConfig)}


def config_from_controls(values: Mapping[str, object]) -> SamplerConfig:
    """The config of the page's control values, each named after its :class:`SamplerConfig` field (other
    names are not the sampler's and are left out): sliders give floats, a threshold of 0 and the "none" cache
    mean off, an empty seed box means 0. Raises ValueError (the config's own message) on a bad combination."""
    options = {}
    for name, value in values.items():
        if name not in CONFIG_FIELDS:
            continue
        if name in ("threshold", "edit_threshold"):
            value = float(value) if value else None
        elif name == "remask":
            value = None if value in (None, NO_REMASK) else value
        elif name == "cache":
            value = None if value in (None, NO_CACHE) else value
        elif name == "seed":
            value = int(value or 0)
        elif name in ("steps", "gen_length", "block_length", "topk", "cache_refresh_every", "edit_steps"):
            value = int(value)
        elif name in ("temperature", "cfg_scale", "remask_eta"):
            value = float(value)
        elif name in ("forbid_eos", "eos_last", "confidence_eos_eot_inf", "eos_early_exit"):
            value = bool(value)
        options[name] = value
    return SamplerConfig(**options)


# One sentence of help under every sampler control (the same words in the Denoise, Chat and Step tabs)
HELP = {
    "gen_length": "Tokens to write: the canvas starts as this many masks.",
    "steps": "Steps in all; each commits about length ÷ steps tokens.",
    "block_length": "Blocks are filled left to right; length = one block.",
    "temperature": "Randomness of each guess; 0 takes the most likely.",
    "cfg_scale": "Guidance away from the unprompted guess (2 passes a step).",
    "seed": "The same seed and settings give the same run.",
    "remasking": "Which guesses to commit first: low_confidence = most probable, margin = biggest lead over the "
                 "runner-up, entropy = least uncertain, random, left_to_right.",
    "threshold": "Commit every guess at least this probable: a step may commit many, and the run end early.",
    "remask": "ReMDM: send committed tokens back to be written again.",
    "remask_eta": "About eta of the block's committed tokens a step.",
    "edit_threshold": "LLaDA 2.1: replace a token the model now doubts.",
}


def sampler_controls() -> Inputs:
    """Three rows of controls (length, noise, choice of tokens), starting from :data:`INTERACTIVE`, each named
    after the :class:`SamplerConfig` field it sets, each with its one sentence of :data:`HELP`."""
    with gr.Row():
        gen_length = gr.Slider(8, 256, value=INTERACTIVE.gen_length, step=8, label="Generation length",
                               info=HELP["gen_length"])
        steps = gr.Slider(1, 256, value=INTERACTIVE.steps, step=1, label="Steps", info=HELP["steps"])
        block_length = gr.Slider(4, 256, value=INTERACTIVE.block_length, step=4, label="Block length",
                                 info=HELP["block_length"])
    with gr.Row():
        temperature = gr.Slider(0, 2, value=INTERACTIVE.temperature, step=0.05, label="Temperature",
                                info=HELP["temperature"])
        cfg_scale = gr.Slider(0, 5, value=INTERACTIVE.cfg_scale, step=0.25, label="CFG scale", info=HELP["cfg_scale"])
        seed = gr.Number(value=INTERACTIVE.seed, precision=0, label="Seed", info=HELP["seed"])
    with gr.Row():
        remasking = gr.Dropdown(STRATEGIES, value=INTERACTIVE.remasking, label="Remasking", info=HELP["remasking"])
        threshold = gr.Slider(0, 1, value=INTERACTIVE.threshold or 0, step=0.05,
                              label="Confidence threshold (0 = off: fixed tokens per step)", info=HELP["threshold"])
    return Inputs(gen_length=gen_length, steps=steps, block_length=block_length, temperature=temperature,
                  cfg_scale=cfg_scale, remasking=remasking, threshold=threshold, seed=seed)


def revision_controls() -> Inputs:
    """Second thoughts (diffusion/revision.py): ReMDM remasking and token editing, off to start with."""
    with gr.Row():
        remask = gr.Dropdown(REMASK_CHOICES, value=NO_REMASK, label="Second thoughts: remask (ReMDM)",
                             info=HELP["remask"])
        remask_eta = gr.Slider(0, 1, value=0.05, step=0.01, label="Remasking strength (eta)", info=HELP["remask_eta"])
        edit_threshold = gr.Slider(0, 1, value=0, step=0.05, label="Edit threshold (0 = off, LLaDA 2.1)",
                                   info=HELP["edit_threshold"])
    return Inputs(remask=remask, remask_eta=remask_eta, edit_threshold=edit_threshold)
