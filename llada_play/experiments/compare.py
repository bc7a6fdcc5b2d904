"""Sampler settings side by side: the same prompt and seed under several settings, and accuracy against the
number of forward passes on a task with ground truth. Shared by the app's Compare tab and notebook 02."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ..diffusion.sampler_config import SamplerConfig
from ..diffusion.sampling import denoise
from ..diffusion.trace import Trace, TraceRecorder
from ..model.text import decode_generation
from ..training.evaluation import answer_accuracy


@dataclass
class SamplerSetting:
    """One column of a comparison: a name and a :class:`SamplerConfig` (a dict of its fields is converted, so
    that a bad setting is refused when it is made). ``refill``: answer with continuous batching."""

    name: str
    config: SamplerConfig | dict = field(default_factory=SamplerConfig)
    refill: bool = False

    def __post_init__(self):
        if isinstance(self.config, dict):
            self.config = SamplerConfig.from_dict(self.config)


@dataclass
class ComparisonResult:
    name: str
    text: str
    forward_passes: int  # model evaluations (a CFG step counts two: conditional and unconditional)
    windowed_passes: int  # how many of them were cheaper block-cache passes over a window
    steps: int
    wall_time_s: float
    trace: Trace

    @property
    def remasked(self) -> int:
        """Committed tokens the run sent back to the mask (ReMDM)."""
        return sum(len(step.remasked) for step in self.trace.steps)

    @property
    def edited(self) -> int:
        """Committed tokens the run replaced (token editing)."""
        return sum(len(step.edits) for step in self.trace.steps)


def forward_passes(steps: int, cfg_scale: float) -> int:
    return steps * (2 if cfg_scale and cfg_scale > 0 else 1)


def compare_settings(model, tokenizer, prompt_ids: torch.LongTensor, settings: list[SamplerSetting],
                     seed: int = 0) -> list[ComparisonResult]:
    """Run every setting on the same prompt with the same seed."""
    results = []
    for setting in settings:
        config = setting.config.replace(seed=seed)
        recorder = TraceRecorder(tokenizer, config=config)
        counter = PassCounter(model) if isinstance(model, torch.nn.Module) else None
        start = time.perf_counter()
        try:
            run = denoise(model, prompt_ids, config)
            for record in run:
                recorder(record)
        finally:
            if counter is not None:
                counter.remove()
        elapsed = time.perf_counter() - start
        out, trace = run.output, recorder.trace()
        n = len(trace.steps)
        cfg = config.cfg_scale
        windowed = forward_passes(counter.windowed, cfg) if counter is not None else 0
        results.append(ComparisonResult(setting.name, decode_generation(tokenizer, out[0], prompt_ids.shape[1]),
                                        forward_passes(n, cfg), windowed, n, elapsed, trace))
    return results


class PassCounter:
    """Counts a module's forward calls, and how many of them were windowed (block-cache) passes.

    A forward pre-hook rather than a step hook, so that counting costs nothing per step."""

    def __init__(self, model):
        self.full = self.windowed = 0
        self._handle = model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs):
        if kwargs.get("window") is not None:
            self.windowed += 1
        else:
            self.full += 1

    def remove(self) -> None:
        self._handle.remove()


def accuracy_by_setting(model, tokenizer, conversations, settings: list[SamplerSetting], seed: int = 0,
                        batch_size: int = 32, return_answers: bool = False) -> list[dict]:
    """Exact-match accuracy, forward passes per batch (all, and how many were windowed block-cache passes), wall
    time and decoded positions per second (gen_length x prompts / wall time) for each setting. A setting with
    ``refill=True`` runs with continuous batching (see ``evaluation.answer_accuracy``)."""
    rows = []
    for setting in settings:
        config = setting.config.replace(seed=seed)
        counter = PassCounter(model)  # answer_accuracy needs parameters, so model is an nn.Module here
        start = time.perf_counter()
        try:
            result = answer_accuracy(model, tokenizer, conversations, config, batch_size=batch_size,
                                     return_answers=return_answers, refill=setting.refill)
        finally:
            counter.remove()
        elapsed = time.perf_counter() - start
        batches = -(-len(conversations) // batch_size)
        calls = counter.full + counter.windowed
        row = {"setting": setting.name, "accuracy": result["accuracy"], "well_formed": result["well_formed"],
               "forward_passes": forward_passes(round(calls / batches), config.cfg_scale),
               "windowed_passes": forward_passes(round(counter.windowed / batches), config.cfg_scale),
               "wall_time_s": elapsed, "tokens_per_s": config.gen_length * len(conversations) / elapsed,
               "n": result["n"]}
        if return_answers:
            row["answers"] = result["answers"]
        rows.append(row)
    return rows


def fast_decoding_settings(steps: int = 32, gen_length: int = 32, block_length: int = 8, threshold: float = 0.9,
                           cache: str = "dual", eos_token_ids=None) -> list[SamplerSetting]:
    """The speed/quality ladder of the fast-decoding benchmark: LLaDA's fixed schedule, threshold decoding,
    the block cache, and threshold + cache + early exit on end-of-text blocks (greedy throughout).
    ``eos_token_ids``: what counts as end-of-text for the early exit (default: the model config's)."""
    base = SamplerConfig(steps=steps, gen_length=gen_length, block_length=block_length,
                         eos_token_ids=sorted(eos_token_ids) if eos_token_ids else None)
    return [SamplerSetting("baseline", base),
            SamplerSetting(f"threshold {threshold}", base.replace(threshold=threshold)),
            SamplerSetting(f"cache {cache}", base.replace(cache=cache)),
            SamplerSetting(f"threshold {threshold} + cache {cache} + early exit",
                           base.replace(threshold=threshold, cache=cache, eos_early_exit=True))]
