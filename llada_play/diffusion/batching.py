"""Continuous batching: answer many prompts with a fixed number of batch slots, putting the next queued prompt
into a slot as soon as its row is finished.

With fixed batches, a row that finishes early (threshold decoding commits a confident block in one step, an
early exit fills the rest with end-of-text) leaves the batch and its slot stays empty until the slowest row of
the batch is done. Here every slot carries its own state (which block, how many steps into it), so rows sit in
different blocks of the same canvas and a freed slot is refilled at once.

What is identical to ``generate`` on each prompt alone: at temperature 0, the tokens, for every option taken
here (fixed schedule or threshold, any remasking strategy, CFG, end-of-text options), because each row keeps
its own schedule, exactly as a batch of one does. Up to floating point: rows of different prompt lengths are
left-padded to the longest prompt, and a padded row's logits match the unpadded ones only to rounding, so a
near tie could flip. At temperature > 0 the samples come from one generator shared by all slots, so they are
draws from the same distribution, not the same draws; rows given their own generator (``BatchRow.generator``,
as the app's requests from different people are) draw exactly what they would alone. The block KV cache is refused: its windowed pass
recomputes one window for the whole batch, and here rows are in different blocks. Logits hooks, pins and
forbidden tokens apply to every prompt, each hook seeing one prompt's canvas as in a run alone.

The step itself is the engine's (:mod:`engine`): this module only queues the prompts and refills the slots.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch

from .engine import DenoisingEngine
from .requests import Forbid, prepare
from .sampler_config import SamplerConfig

REFUSED = {"cache": "generate_many does not take the block KV cache (cache={cache!r}): its windowed pass "
                    "recomputes one window for the whole batch, and here rows are in different blocks; use "
                    "generate with fixed batches for the cache"}


@torch.no_grad()
def generate_many(model, prompts: Sequence, batch_size: int = 32, config: SamplerConfig | None = None, *,
                  mask_id: int | None = None, constraints=None, forbid: Forbid | None = None,
                  logits_hooks: Callable | Iterable[Callable] | None = None, **options) -> list[torch.LongTensor]:
    """Denoise ``config.gen_length`` tokens after each of ``prompts`` (token id sequences of any lengths) with at
    most ``batch_size`` rows in the model at once; returns, in the order of ``prompts``, each prompt + its
    generation (1-D, no padding). ``options`` build the :class:`SamplerConfig` when ``config`` is not given;
    ``constraints``, ``forbid`` and ``logits_hooks`` mean what they mean in ``denoise``, for every prompt."""
    if config is not None and options:
        raise ValueError(f"generate_many takes a config or sampler options, not both (got config and "
                         f"{sorted(options)}): use config.replace(...)")
    config = config or SamplerConfig(**options)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    refused = {name: why.format(cache=config.cache) for name, why in REFUSED.items()}
    prepared = prepare(model, prompts, config, each_prompt_a_run=True, constraints=constraints, forbid=forbid,
                       logits_hooks=logits_hooks, mask_id=mask_id, unsupported=refused)
    runs = prepared.runs
    if not runs:
        return []
    engine = DenoisingEngine(prepared.model, config, prepared.rules, min(batch_size, len(runs)),
                             max(r.prompt_length for r in runs), prepared.generator)
    queue = iter(runs)
    waiting = next(queue, None)
    while waiting is not None or engine.runs:
        while waiting is not None and engine.add(waiting):  # a finished run's slot takes the next prompt
            waiting = next(queue, None)
        for run in engine.step():
            if run.error is not None:
                raise run.error
    return [run.output[0] for run in runs]
