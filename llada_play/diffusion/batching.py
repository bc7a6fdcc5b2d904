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
recomputes one window for the whole batch, and here rows are in different blocks.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..model.adapters import Denoiser, as_denoiser
from .hooks import StepRecord
from .sampler_config import SamplerConfig
from .update import (RowGenerators, block_logits, check_against_model, check_token_ids, end_rows_after_eos_block,
                     guided_logits, propose, resolve_rules)


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


@dataclass
class BatchRow:
    """One request in a :class:`ContinuousBatch`: a prompt, and what its run of its own would have."""

    prompt: torch.LongTensor  # (length,)
    generator: torch.Generator | None = None  # its own randomness (None: the batch's shared generator)
    pins: torch.LongTensor | None = None  # (gen_length,) token ids pinned before the first step, -1 elsewhere
    on_step: Callable[[StepRecord], None] | None = None  # gets the row's record (batch of one) after every step
    steps: int = 0  # steps taken so far
    output: torch.LongTensor | None = None  # prompt + generation once finished
    stopped: bool = False  # a hook called record.stop(): finished early, masked positions stay masked


class ContinuousBatch:
    """A canvas of ``slots`` rows, each holding one request (its prompt left-padded to ``longest``) in its own
    block and step within the block; :meth:`step` does one denoising step for every busy row, and a finished row
    frees its slot for :meth:`add`.

    Each row gets what ``denoise`` gives it alone: its own schedule, pins, step records (a batch of one, so
    that viewers and traces take them unchanged) and, with its own generator, its own random draws.
    """

    def __init__(self, model: Denoiser, config: SamplerConfig, slots: int, longest: int,
                 generator: torch.Generator | None = None, padded: bool = False):
        self.model, self.config, self.longest, self.padded = model, config, longest, padded
        self.rules = resolve_rules(config, model)
        self.generator = generator
        device, length, mask_id = model.device, longest + config.gen_length, model.mask_id
        self.x = torch.full((slots, length), mask_id, dtype=torch.long, device=device)
        self.attention = torch.ones(slots, length, dtype=torch.long, device=device)
        self.prompt_index = torch.zeros(slots, length, dtype=torch.bool, device=device)
        self.rows: list[BatchRow | None] = [None] * slots
        self.block = torch.zeros(slots, dtype=torch.long, device=device)
        self.block_step = torch.zeros(slots, dtype=torch.long, device=device)
        self.offsets = torch.arange(config.block_length, device=device)

    @property
    def busy(self) -> int:
        return sum(row is not None for row in self.rows)

    @property
    def free(self) -> int:
        return len(self.rows) - self.busy

    def add(self, row: BatchRow) -> BatchRow | None:
        """Put a request into a free slot; returns it at once when it has nothing to denoise (pins fill it)."""
        slot = self.rows.index(None)
        pad = self.longest - len(row.prompt)
        self.rows[slot] = row
        self.x[slot] = self.model.mask_id
        self.x[slot, pad:self.longest] = row.prompt
        if row.pins is not None:
            self.x[slot, self.longest:] = torch.where(row.pins >= 0, row.pins, self.x[slot, self.longest:])
        self.attention[slot] = 1
        self.attention[slot, :pad] = 0
        self.prompt_index[slot] = False
        self.prompt_index[slot, pad:self.longest] = True
        self.block[slot] = self.block_step[slot] = 0
        return self._advance(slot, new_block=False)

    def remove(self, row: BatchRow) -> None:
        """Drop a request (cancelled, abandoned): its slot is free at once."""
        if row in self.rows:
            self.rows[self.rows.index(row)] = None

    def _advance(self, slot: int, new_block: bool = True) -> BatchRow | None:
        """Move a slot past its complete blocks (as ``denoise`` skips a filled block without a forward pass);
        returns its row, with its output, when it is finished (its slot is then free)."""
        config, row = self.config, self.rows[slot]
        if new_block:
            self.block_step[slot] = 0
        while int(self.block[slot]) < config.num_blocks:
            start = self.longest + int(self.block[slot]) * config.block_length
            if bool((self.x[slot, start:start + config.block_length] == self.model.mask_id).any()):
                return None
            self.block[slot] += 1
            self.block_step[slot] = 0
        return self._finish(slot)

    def _finish(self, slot: int) -> BatchRow:
        row = self.rows[slot]
        row.output = self.x[slot, self.longest - len(row.prompt):].clone()
        self.rows[slot] = None
        return row

    def step(self) -> list[BatchRow]:
        """One denoising step for every busy row; returns the rows that finished (their slots are free)."""
        active = torch.tensor([s for s, row in enumerate(self.rows) if row is not None], device=self.x.device)
        if not len(active):
            return []
        config, model = self.config, self.model
        xa = self.x[active]
        x_before = xa.clone() if self._observed(active) else None
        logits = guided_logits(model, xa, self.attention[active] if self.padded else None, config.cfg_scale,
                               self.prompt_index[active], model.mask_id)
        # each row's current block, gathered into (rows, block_length) so that one step serves all blocks
        starts = self.longest + self.block[active] * config.block_length
        cols = starts[:, None] + self.offsets
        block_x = xa.gather(1, cols)
        rules = self.rules
        # indexing by (row, column) pairs: gather/scatter over an index expanded to the vocabulary took 5x longer
        rows = torch.arange(len(active), device=xa.device)[:, None]
        candidates = block_logits(logits[rows, cols], rules)
        steps_left = (config.steps_per_block - self.block_step[active]).clamp(min=1)
        generator = self.generator if all(self.rows[s].generator is None for s in active.tolist()) else \
            RowGenerators(self.rows[s].generator for s in active.tolist())
        update = propose(block_x, candidates, steps_left, rules, generator, starts, xa.shape[1])
        xa.scatter_(1, cols, torch.where(update.commit, update.proposal, block_x))
        filled = end_rows_after_eos_block(xa, starts, starts + config.block_length, rules.eos_ids, model.mask_id) \
            if config.eos_early_exit else None
        self.x[active] = xa
        if x_before is not None:  # records show the block's logits as edited for the step, as denoise's do
            logits[rows, cols] = candidates.to(logits.dtype)
            self._report(active, x_before, logits, update, starts, filled)
        del logits
        self.block_step[active] += 1
        finished = []
        for i, slot in enumerate(active.tolist()):
            row = self.rows[slot]
            row.steps += 1
            if row.stopped:
                finished.append(self._finish(slot))
            elif not bool((self.x[slot, cols[i]] == model.mask_id).any()):  # its block is complete
                done = self._advance(slot)
                if done is not None:
                    finished.append(done)
        return finished

    def _observed(self, active: torch.Tensor) -> bool:
        return any(self.rows[s].on_step is not None for s in active.tolist())

    def _report(self, active, x_before, logits, update, starts, filled) -> None:
        """Each watched row's :class:`StepRecord`, as its run alone would make it (a batch of one, its own
        canvas without padding); a hook may stop the row or force tokens on it."""
        from .sampling import step_predictions

        config, mask_id = self.config, self.model.mask_id
        fields = step_predictions(logits, x_before == mask_id, update, starts, config.topk, filled)
        after = self.x[active].clone()
        for i, slot in enumerate(active.tolist()):
            row = self.rows[slot]
            if row.on_step is None:
                continue
            pad = self.longest - len(row.prompt)
            block, start = int(self.block[slot]), int(starts[i]) - pad
            record = StepRecord(block=block, step=row.steps, block_step=int(self.block_step[slot]),
                                prompt_length=len(row.prompt), gen_length=config.gen_length,
                                block_length=config.block_length, mask_id=mask_id, block_start=start,
                                block_end=start + config.block_length, x_before=x_before[i:i + 1, pad:],
                                x_after=after[i:i + 1, pad:],
                                **{k: v[i:i + 1, pad:] for k, v in fields.items()})
            row.on_step(record)
            for _, pos, token in record.forced:
                if self.x[slot, pad + pos] == mask_id:
                    self.x[slot, pad + pos] = token
            row.stopped = row.stopped or record.stopped


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
    generator = None if config.seed is None else torch.Generator(device=model.device).manual_seed(config.seed)
    batch = ContinuousBatch(model, config, min(batch_size, len(prompts)), max(map(len, prompts)), generator,
                            padded=len({len(p) for p in prompts}) > 1)  # no attention mask without padding
    queue = iter(enumerate(prompts))
    results: list[torch.LongTensor | None] = [None] * len(prompts)
    owners: dict[int, int] = {}  # id of a row -> its prompt's index

    def refill() -> None:
        while batch.free:
            index, prompt = next(queue, (None, None))
            if prompt is None:
                return
            row = BatchRow(prompt)
            owners[id(row)] = index
            if batch.add(row) is not None:  # nothing to denoise
                results[owners.pop(id(row))] = row.output

    refill()
    while batch.busy:
        for row in batch.step():
            results[owners.pop(id(row))] = row.output
        refill()
    return results
