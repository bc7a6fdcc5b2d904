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
draws from the same distribution, not the same draws. The block KV cache is refused: its windowed pass
recomputes one window for the whole batch, and here rows are in different blocks.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..model.adapters import as_denoiser
from .sampler_config import SamplerConfig
from .update import (block_logits, check_against_model, check_token_ids, end_rows_after_eos_block, guided_logits,
                     propose, resolve_rules)


def _as_prompt_list(prompts, device) -> list[torch.LongTensor]:
    rows = []
    for i, p in enumerate(prompts):
        p = torch.as_tensor(p, dtype=torch.long, device=device)
        if p.dim() == 2 and p.shape[0] == 1:
            p = p[0]
        if p.dim() != 1:
            raise ValueError(f"prompt {i} must be a sequence of token ids (shape (length,)), got shape "
                             f"{tuple(p.shape)}")
        rows.append(p)
    return rows


class _Slots:
    """The batch: ``slots`` rows of one canvas, each holding a prompt (left-padded to the longest), its own
    block and its step within the block; a finished row hands its slot to the next queued prompt."""

    def __init__(self, prompts: list[torch.LongTensor], slots: int, config: SamplerConfig, mask_id: int, device):
        self.prompts, self.config, self.mask_id = prompts, config, mask_id
        self.longest = max(len(p) for p in prompts)
        length = self.longest + config.gen_length
        self.x = torch.full((slots, length), mask_id, dtype=torch.long, device=device)
        self.attention = torch.ones(slots, length, dtype=torch.long, device=device)
        self.prompt_index = torch.zeros(slots, length, dtype=torch.bool, device=device)
        self.owner = [-1] * slots  # which prompt a slot holds (-1: none left to give it)
        self.block = torch.zeros(slots, dtype=torch.long, device=device)
        self.block_step = torch.zeros(slots, dtype=torch.long, device=device)
        self.queue = iter(range(len(prompts)))
        self.results: list[torch.LongTensor | None] = [None] * len(prompts)
        for slot in range(slots):
            self.load(slot)

    def active(self) -> torch.LongTensor:
        return torch.tensor([s for s, o in enumerate(self.owner) if o >= 0], device=self.x.device)

    def load(self, slot: int) -> None:
        self.owner[slot] = next(self.queue, -1)
        if self.owner[slot] < 0:
            return
        p = self.prompts[self.owner[slot]]
        pad = self.longest - len(p)
        self.x[slot] = self.mask_id
        self.x[slot, pad:self.longest] = p
        self.attention[slot] = 1
        self.attention[slot, :pad] = 0
        self.prompt_index[slot] = False
        self.prompt_index[slot, pad:self.longest] = True
        self.block[slot] = self.block_step[slot] = 0

    def advance(self, slot: int) -> None:
        """Move a slot past its complete blocks (as ``generate`` skips a filled block without a forward pass);
        a finished slot hands over to the next prompt."""
        config, longest = self.config, self.longest
        self.block_step[slot] = 0
        while int(self.block[slot]) < config.num_blocks:
            start = longest + int(self.block[slot]) * config.block_length
            if bool((self.x[slot, start:start + config.block_length] == self.mask_id).any()):
                return
            self.block[slot] += 1
        self.results[self.owner[slot]] = self.x[slot, longest - len(self.prompts[self.owner[slot]]):].clone()
        self.load(slot)


@torch.no_grad()
def generate_many(model, prompts: Sequence, batch_size: int = 32, config: SamplerConfig | None = None, *,
                  mask_id: int | None = None, **options) -> list[torch.LongTensor]:
    """Denoise ``config.gen_length`` tokens after each of ``prompts`` (token id sequences of any lengths) with at
    most ``batch_size`` rows in the model at once; returns, in the order of ``prompts``, each prompt + its
    generation (1-D, no padding). ``options`` build the :class:`SamplerConfig` when ``config`` is not given."""
    config = config or SamplerConfig(**options)
    model = as_denoiser(model, mask_id)
    if config.cache:
        raise ValueError(f"generate_many does not take the block KV cache (cache={config.cache!r}): its windowed "
                         "pass recomputes one window for the whole batch, and here rows are in different blocks; "
                         "use generate with fixed batches for the cache")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    prompts = _as_prompt_list(prompts, model.device)
    if not prompts:
        return []
    for i, prompt in enumerate(prompts):
        check_token_ids(prompt, model.vocab_size, what=f"prompt {i}")
    check_against_model(config, model, max(map(len, prompts)), min(map(len, prompts)))
    rules = resolve_rules(config, model)
    generator = None if config.seed is None else torch.Generator(device=model.device).manual_seed(config.seed)
    slots = _Slots(prompts, min(batch_size, len(prompts)), config, model.mask_id, model.device)
    padded = len({len(p) for p in prompts}) > 1  # without padding, no attention mask (as generate alone)
    offsets = torch.arange(config.block_length, device=model.device)
    while any(o >= 0 for o in slots.owner):
        active = slots.active()
        xa = slots.x[active]
        logits = guided_logits(model, xa, slots.attention[active] if padded else None, config.cfg_scale,
                               slots.prompt_index[active], model.mask_id)
        # each row's current block, gathered into (rows, block_length) so that one step serves all blocks
        starts = slots.longest + slots.block[active] * config.block_length
        cols = starts[:, None] + offsets
        block_x = xa.gather(1, cols)
        candidates = block_logits(logits.gather(1, cols[..., None].expand(-1, -1, logits.shape[-1])), rules)
        del logits
        steps_left = (config.steps_per_block - slots.block_step[active]).clamp(min=1)
        update = propose(block_x, candidates, steps_left, rules, generator, starts, xa.shape[1])
        xa.scatter_(1, cols, torch.where(update.commit, update.proposal, block_x))
        if config.eos_early_exit:
            end_rows_after_eos_block(xa, starts, starts + config.block_length, rules.eos_ids, model.mask_id)
        slots.x[active] = xa
        slots.block_step[active] += 1
        for slot in active[~(xa.gather(1, cols) == model.mask_id).any(1)].tolist():
            slots.advance(slot)
    return slots.results
