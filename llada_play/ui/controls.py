"""The sampler's controls on the page, and the one conversion from their values to a :class:`SamplerConfig`."""
from __future__ import annotations

from dataclasses import dataclass, fields

import gradio as gr

from ..diffusion.remasking import REMASKING
from ..diffusion.sampler_config import INTERACTIVE, SamplerConfig
from ..model.kv_cache import CACHE_MODES

STRATEGIES = sorted(REMASKING)
NO_CACHE = "none"  # what the page shows for cache=None
CACHE_CHOICES = [NO_CACHE, *CACHE_MODES]


def config_from_controls(gen_length: float, steps: float, block_length: float,
                         temperature: float = INTERACTIVE.temperature, cfg_scale: float = INTERACTIVE.cfg_scale,
                         remasking: str = INTERACTIVE.remasking, threshold: float | None = 0,
                         seed: float | None = INTERACTIVE.seed, cache: str | None = NO_CACHE,
                         eos_early_exit: bool = False) -> SamplerConfig:
    """The config of the page's control values: sliders give floats, a threshold of 0 and the "none" cache
    mean off, an empty seed box means 0. Raises ValueError (the config's own message) on a bad combination."""
    return SamplerConfig(steps=int(steps), gen_length=int(gen_length), block_length=int(block_length),
                         temperature=float(temperature), cfg_scale=float(cfg_scale), remasking=remasking,
                         threshold=float(threshold) if threshold else None, seed=int(seed or 0),
                         cache=None if cache in (None, NO_CACHE) else cache, eos_early_exit=bool(eos_early_exit))


@dataclass(frozen=True)
class SamplerControls:
    """The Denoise tab's sampler controls, in the order of :func:`config_from_controls`'s parameters."""

    gen_length: gr.Slider
    steps: gr.Slider
    block_length: gr.Slider
    temperature: gr.Slider
    cfg_scale: gr.Slider
    remasking: gr.Dropdown
    threshold: gr.Slider
    seed: gr.Number

    def inputs(self) -> list[gr.components.Component]:
        return [getattr(self, f.name) for f in fields(self)]  # not astuple: it would deep-copy the components


def sampler_controls() -> SamplerControls:
    """Three rows of controls (length, noise, choice of tokens), starting from :data:`INTERACTIVE`."""
    with gr.Row():
        gen_length = gr.Slider(8, 256, value=INTERACTIVE.gen_length, step=8, label="Generation length")
        steps = gr.Slider(1, 256, value=INTERACTIVE.steps, step=1, label="Steps")
        block_length = gr.Slider(4, 256, value=INTERACTIVE.block_length, step=4, label="Block length")
    with gr.Row():
        temperature = gr.Slider(0, 2, value=INTERACTIVE.temperature, step=0.05, label="Temperature")
        cfg_scale = gr.Slider(0, 5, value=INTERACTIVE.cfg_scale, step=0.25, label="CFG scale")
        seed = gr.Number(value=INTERACTIVE.seed, precision=0, label="Seed")
    with gr.Row():
        remasking = gr.Dropdown(STRATEGIES, value=INTERACTIVE.remasking, label="Remasking")
        threshold = gr.Slider(0, 1, value=INTERACTIVE.threshold or 0, step=0.05,
                              label="Confidence threshold (0 = off: fixed tokens per step)")
    return SamplerControls(gen_length, steps, block_length, temperature, cfg_scale, remasking, threshold, seed)
