"""Sampler settings side by side: the same prompt and seed under several settings, and accuracy against the
number of forward passes on a task with ground truth. Shared by the app's Compare tab and notebook 02."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .evaluation import answer_accuracy
from .sampling import generate
from .text import decode_generation
from .trace import Trace, TraceRecorder


@dataclass
class SamplerSetting:
    """One column of a comparison: a name and keyword arguments for :func:`generate`."""

    name: str
    kwargs: dict = field(default_factory=dict)


@dataclass
class ComparisonResult:
    name: str
    text: str
    forward_passes: int  # model evaluations (a CFG step counts two: conditional and unconditional)
    steps: int
    wall_time_s: float
    trace: Trace


def forward_passes(steps: int, cfg_scale: float) -> int:
    return steps * (2 if cfg_scale and cfg_scale > 0 else 1)


def compare_settings(model, tokenizer, prompt_ids: torch.LongTensor, settings: list[SamplerSetting],
                     seed: int = 0) -> list[ComparisonResult]:
    """Run every setting on the same prompt with the same seed."""
    results = []
    for setting in settings:
        recorder = TraceRecorder(tokenizer, params={"name": setting.name, **setting.kwargs})
        start = time.perf_counter()
        out = generate(model, prompt_ids, seed=seed, hooks=recorder, **setting.kwargs)
        elapsed = time.perf_counter() - start
        trace = recorder.trace()
        n = len(trace.steps)
        results.append(ComparisonResult(setting.name, decode_generation(tokenizer, out[0], prompt_ids.shape[1]),
                                        forward_passes(n, setting.kwargs.get("cfg_scale", 0.0)), n, elapsed, trace))
    return results


def accuracy_by_setting(model, tokenizer, conversations, settings: list[SamplerSetting], seed: int = 0,
                        batch_size: int = 32) -> list[dict]:
    """Exact-match accuracy, forward passes per answer and wall time for each setting on the same prompts."""
    rows = []
    for setting in settings:
        kwargs = dict(setting.kwargs)
        steps_seen: list[int] = []
        counter = lambda record: steps_seen.append(record.step)  # noqa: E731 - a one-line hook
        start = time.perf_counter()
        result = answer_accuracy(model, tokenizer, conversations, batch_size=batch_size, seed=seed,
                                 hooks=counter, **kwargs)
        elapsed = time.perf_counter() - start
        batches = -(-len(conversations) // batch_size)
        steps_per_batch = len(steps_seen) / batches
        rows.append({"setting": setting.name, "accuracy": result["accuracy"], "well_formed": result["well_formed"],
                     "forward_passes": forward_passes(round(steps_per_batch), kwargs.get("cfg_scale", 0.0)),
                     "wall_time_s": elapsed, "n": result["n"]})
    return rows
