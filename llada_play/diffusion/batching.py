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
from .masking import tokens_to_commit
from .remasking import get_scorer, token_probability
from .sampling import (_rank_within_rows, check_token_ids, end_rows_after_eos_block, guided_logits, sample_tokens,
                       validate_sampler_args)


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


@torch.no_grad()
def generate_many(
    model,
    prompts: Sequence,
    batch_size: int = 32,
    steps: int = 128,
    gen_length: int = 128,
    block_length: int = 128,
    temperature: float = 0.0,
    cfg_scale: float = 0.0,
    remasking: str = "low_confidence",
    mask_id: int | None = None,
    *,
    threshold: float | None = None,
    eos_token_ids: Sequence[int] | None = None,
    forbid_eos: bool = False,
    eos_early_exit: bool = False,
    seed: int | None = None,
    cache: str | None = None,
) -> list[torch.LongTensor]:
    """Denoise ``gen_length`` tokens after each of ``prompts`` (token id sequences of any lengths) with at most
    ``batch_size`` rows in the model at once; returns, in the order of ``prompts``, each prompt + its
    generation (1-D, no padding). The sampler options mean what they mean in :func:`sampling.generate`."""
    model = as_denoiser(model, mask_id)
    if cache not in (None, "none"):
        raise ValueError(f"generate_many does not take the block KV cache (cache={cache!r}): its windowed pass "
                         "recomputes one window for the whole batch, and here rows are in different blocks; "
                         "use generate with fixed batches for the cache")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device, mask_id = model.device, model.mask_id
    prompts = _as_prompt_list(prompts, device)
    if not prompts:
        return []
    for i, prompt in enumerate(prompts):
        check_token_ids(prompt, model.vocab_size, what=f"prompt {i}")
    if remasking == "threshold":
        remasking, threshold = "low_confidence", 0.9 if threshold is None else threshold
    scorer = get_scorer(remasking)
    longest = max(len(p) for p in prompts)
    steps = validate_sampler_args(steps, gen_length, block_length, temperature, cfg_scale, threshold, longest,
                                  model.context_length)
    if cfg_scale > 0 and min(len(p) for p in prompts) == 0:
        raise ValueError("classifier-free guidance (cfg_scale > 0) needs non-empty prompts")
    if (forbid_eos or eos_early_exit) and not eos_token_ids:
        eos_token_ids = list(model.eos_token_ids)
        if not eos_token_ids:
            raise ValueError("forbid_eos/eos_early_exit need eos_token_ids (the model config has no eos_token_id)")
    eos_ids = torch.tensor(list(eos_token_ids or []), dtype=torch.long, device=device)
    generator = None if seed is None else torch.Generator(device=device).manual_seed(seed)

    # One canvas width for all: prompts left-padded to the longest, so every row's generation starts at `longest`.
    length, num_blocks = longest + gen_length, gen_length // block_length
    steps_per_block = steps // num_blocks
    padded = len({len(p) for p in prompts}) > 1  # without padding, no attention mask (as generate alone)
    slots = min(batch_size, len(prompts))
    x = torch.full((slots, length), mask_id, dtype=torch.long, device=device)
    attention = torch.ones(slots, length, dtype=torch.long, device=device)
    prompt_index = torch.zeros(slots, length, dtype=torch.bool, device=device)
    owner = [-1] * slots  # which prompt a slot holds (-1: none left to give it)
    block = torch.zeros(slots, dtype=torch.long, device=device)
    block_step = torch.zeros(slots, dtype=torch.long, device=device)
    queue = iter(range(len(prompts)))
    results: list[torch.LongTensor | None] = [None] * len(prompts)

    def load(slot: int) -> None:
        owner[slot] = next(queue, -1)
        if owner[slot] < 0:
            return
        p = prompts[owner[slot]]
        pad = longest - len(p)
        x[slot] = mask_id
        x[slot, pad:longest] = p
        attention[slot] = 1
        attention[slot, :pad] = 0
        prompt_index[slot] = False
        prompt_index[slot, pad:longest] = True
        block[slot] = block_step[slot] = 0

    for slot in range(slots):
        load(slot)
    offsets = torch.arange(block_length, device=device)
    while any(o >= 0 for o in owner):
        active = torch.tensor([s for s, o in enumerate(owner) if o >= 0], device=device)
        xa = x[active]
        logits = guided_logits(model, xa, attention[active] if padded else None, cfg_scale, prompt_index[active],
                               mask_id)
        # each row's current block, gathered into (rows, block_length) so that one step serves all blocks
        starts = longest + block[active] * block_length
        cols = starts[:, None] + offsets
        block_x = xa.gather(1, cols)
        block_logits = logits.gather(1, cols[..., None].expand(-1, -1, logits.shape[-1])).float()
        del logits
        block_logits[..., mask_id] = float("-inf")  # committing the mask token would never end the block
        if forbid_eos:
            block_logits[..., eos_ids] = float("-inf")
        block_masked = block_x == mask_id
        rows, where = block_masked.nonzero(as_tuple=True)
        candidate_logits = block_logits[rows, where]
        predicted = sample_tokens(candidate_logits, temperature, generator)
        score_table = torch.full(block_masked.shape, float("-inf"), device=device)
        score_table[rows, where] = scorer(candidate_logits, predicted, generator).float()
        rank = _rank_within_rows(score_table)
        if threshold is None:
            steps_left = (steps_per_block - block_step[active]).clamp(min=1)
            commit = (rank < tokens_to_commit(block_masked.sum(1), steps_left)[:, None]) & block_masked
        else:
            confident = torch.zeros_like(block_masked)
            confident[rows, where] = token_probability(candidate_logits, predicted) >= threshold
            commit = (confident | (rank == 0)) & block_masked
        proposal = block_x.clone()
        proposal[rows, where] = predicted
        xa.scatter_(1, cols, torch.where(commit, proposal, block_x))
        if eos_early_exit:
            end_rows_after_eos_block(xa, starts, starts + block_length, eos_ids, mask_id)
        x[active] = xa
        block_step[active] += 1
        block_done = ~(xa.gather(1, cols) == mask_id).any(1)
        for slot in active[block_done].tolist():
            _next_open_block(x, slot, block, block_step, longest, block_length, num_blocks, mask_id)
            if int(block[slot]) == num_blocks:  # finished: hand the slot to the next prompt
                results[owner[slot]] = x[slot, longest - len(prompts[owner[slot]]):].clone()
                load(slot)
    return results


def _next_open_block(x, slot, block, block_step, longest, block_length, num_blocks, mask_id) -> None:
    """Move a slot past its complete blocks (as ``generate`` skips a filled block without a forward pass)."""
    block_step[slot] = 0
    while int(block[slot]) < num_blocks:
        start = longest + int(block[slot]) * block_length
        if bool((x[slot, start:start + block_length] == mask_id).any()):
            return
        block[slot] += 1
