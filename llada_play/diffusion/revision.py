"""Second thoughts: rules that change tokens the sampler already committed, as small functions on the step's
(rows, block) table. The engine (:mod:`engine`) calls them; nothing here runs a model.

- **Remasking (ReMDM, Wang et al. 2025, arXiv:2503.00307)**: a step sends ``r`` committed tokens of the block
  back to the mask and commits ``r`` more masked ones, so the block's count of committed tokens still follows
  the schedule (LLaDA's even split) and the block ends with no mask. ReMDM's per-token probability sigma_t
  becomes a count here: with ``D`` tokens committed before the step and ``m`` still masked, of which the
  schedule commits ``share``, at most ``r_max = min(D, m - share)`` can be sent back (the analogue of ReMDM's
  sigma_max = (1 - alpha_s) / alpha_t, which is 0 at the last step). ``cap``: r = min([eta D], r_max);
  ``rescale``: r = [eta r_max]; ``conf``: as cap, the least probable tokens first (the model's present
  probability of the token it committed); ``loop``: inside a window of the block's steps the schedule commits
  nothing new (the noise level is held, ReMDM's loop phase) and r = min(max(1, [eta D]), m) tokens are sent
  back and refilled each step; outside it, no remasking. [x] rounds at random (up with probability frac(x)),
  so that the count has the mean of ReMDM's per-token coin flips (eta is ReMDM's sigma: small values such as
  0.05 send a token back now and then). Remasked tokens are chosen at random (the run's generator) except
  under ``conf``.
- **Token editing (LLaDA 2.1, arXiv:2602.08676)**: a committed token is replaced when the model's most
  probable token there differs from it and has probability >= ``edit_threshold``. Only a model trained to
  restore corrupted visible tokens makes such predictions on purpose (see ``diffusion/losses.py``).

Only tokens the sampler committed are revised: never the prompt, pinned tokens or tokens forced by hand.
"""
from __future__ import annotations

import torch

from .masking import tokens_to_commit
from .remasking import token_probability
from .sampler_config import SamplerConfig


def loop_steps(config: SamplerConfig) -> range:
    """The block steps of ReMDM's loop phase (empty unless ``remask == "loop"``)."""
    if config.remask != "loop":
        return range(0)
    on, off = config.remask_window
    steps = config.steps_per_block
    if steps < 3:
        return range(0)  # refused by SamplerConfig: no step both follows a commit and precedes the last
    # never a block's first step (nothing committed yet to send back) nor its last (there the block must fill)
    start = min(max(round(on * steps), 1), steps - 2)
    return range(start, min(max(round(off * steps), start + 1), steps - 1))


def ordinary_steps_left(config: SamplerConfig, block_step: int) -> int:
    """Steps left in the block that commit new tokens (the loop phase's steps commit none), at least 1."""
    loop = loop_steps(config)
    left = config.steps_per_block - block_step
    return max(left - sum(1 for s in loop if s >= block_step), 1)


def stochastic_round(amount: torch.Tensor, generator: torch.Generator | None) -> torch.LongTensor:
    """floor(amount) plus one with probability frac(amount): the count of ReMDM's per-token coin flips has
    that mean, where plain rounding would send nothing back at small eta."""
    base = amount.floor()
    draw = torch.rand(amount.shape, device=amount.device, generator=generator)
    return (base + (draw < amount - base).float()).long()


def remask_counts(config: SamplerConfig, block_step: int, decoded: torch.LongTensor, masked: torch.LongTensor,
                  generator: torch.Generator | None = None) -> tuple[torch.LongTensor, torch.LongTensor]:
    """(tokens to commit, tokens to send back) per row for a step of the remasking schedule; ``decoded``:
    tokens the sampler committed in the row's block before the step, ``masked``: its masks. Fractional
    counts are rounded at random (``generator``)."""
    in_loop = block_step in loop_steps(config)
    share = torch.zeros_like(masked) if in_loop else \
        tokens_to_commit(masked, ordinary_steps_left(config, block_step))
    eta = config.remask_eta
    if config.remask == "loop":
        back = torch.zeros_like(masked)
        if in_loop:
            back = torch.minimum(stochastic_round(decoded.float() * eta, generator).clamp(min=1), masked)
        back = torch.minimum(back, decoded)
    else:
        most = torch.minimum(decoded, masked - share)
        basis = most if config.remask == "rescale" else decoded
        back = torch.minimum(stochastic_round(eta * basis.float(), generator), most)
    return share + back, back


def choose_remasked(revisable: torch.Tensor, counts: torch.LongTensor, probability: torch.Tensor | None,
                    generator: torch.Generator | None) -> torch.Tensor:
    """Where to send tokens back (bool, shaped like ``revisable``): ``counts[row]`` of the row's revisable
    positions, the least probable first when ``probability`` is given, else at random."""
    if probability is None:
        keys = torch.rand(revisable.shape, device=revisable.device, generator=generator)
    else:
        keys = 1 - probability.float()
    keys = keys.masked_fill(~revisable, float("-inf"))
    rank = keys.argsort(dim=1, descending=True).argsort(dim=1)
    return (rank < counts[:, None]) & revisable


def token_edits(block_logits: torch.Tensor, block_x: torch.LongTensor, revisable: torch.Tensor,
                threshold: float) -> tuple[torch.Tensor, torch.LongTensor, torch.Tensor]:
    """(where to edit, the new tokens, their probabilities), shaped like ``block_x``: revisable positions whose
    most probable token differs from the one there with probability >= ``threshold``."""
    probs, best = block_logits.float().softmax(-1).max(-1)
    edit = revisable & (best != block_x) & (probs >= threshold)
    return edit, best, probs


def revise_block(new_block: torch.LongTensor, block_x: torch.LongTensor, revisable: torch.Tensor,
                 candidates: torch.Tensor, back: torch.LongTensor | None, config: SamplerConfig, mask_id: int,
                 generators: list[tuple[int, torch.Generator | None]]) -> tuple[torch.Tensor, ...]:
    """Apply the step's remasking and edits to ``new_block`` (the block after this step's commits, edited in
    place); ``block_x``: the block before the step, ``revisable``: the sampler's own commits before it,
    ``candidates``: the step's block logits, ``back``: tokens to send back per row, ``generators``: (rows,
    generator) of each run, for the random choice. Returns (remasked, edited, probability of the edit) tables."""
    remasked = torch.zeros_like(revisable)
    if back is not None and bool(back.any()):
        probability = None
        if config.remask == "conf":
            probability = token_probability(candidates, block_x)
        first = 0
        for rows, generator in generators:  # each run draws its own choice, as alone
            part = slice(first, first + rows)
            remasked[part] = choose_remasked(revisable[part], back[part],
                                             None if probability is None else probability[part], generator)
            first += rows
        new_block[remasked] = mask_id
    edited, probability = torch.zeros_like(revisable), None
    if config.edit_threshold is not None:
        edited, best, probability = token_edits(candidates, block_x, revisable & ~remasked, config.edit_threshold)
        new_block[edited] = best[edited]
    return remasked, edited, probability if probability is not None else torch.zeros(revisable.shape)
