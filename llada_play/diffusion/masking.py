"""The forward (noising) process of masked diffusion and the reverse process's token schedule.

Pure functions on tensors, shared by the losses, the sampler, the app and the notebooks.
"""
from __future__ import annotations

import torch


def mask_probability(t: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """LLaDA's p_mask = (1 - eps) * t + eps: the masking ratio never reaches exactly zero."""
    return (1.0 - eps) * t + eps


def forward_process(
    input_ids: torch.LongTensor,
    mask_id: int,
    eps: float = 1e-3,
    maskable: torch.Tensor | None = None,
    t: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.LongTensor, torch.Tensor, torch.Tensor]:
    """Mask each token independently with probability p_mask(t), t ~ U(0, 1) drawn once per sequence.

    ``maskable`` (bool, same shape) restricts masking, e.g. to the response in SFT. Returns the noisy ids,
    the boolean mask of masked positions and p_mask broadcast to the ids' shape.
    """
    b, n = input_ids.shape
    device = input_ids.device
    if t is None:
        t = torch.rand(b, device=device, generator=generator)
    p_mask = mask_probability(t, eps)[:, None].expand(b, n)
    masked = torch.rand(b, n, device=device, generator=generator) < p_mask
    if maskable is not None:
        masked &= maskable
    noisy = torch.where(masked, torch.full_like(input_ids, mask_id), input_ids)
    return noisy, masked, p_mask


def mask_exactly(
    input_ids: torch.LongTensor,
    num_masked: torch.LongTensor,
    mask_id: int,
    maskable: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.LongTensor, torch.Tensor]:
    """Mask exactly ``num_masked[i]`` maskable positions of row i, chosen uniformly without replacement."""
    b, n = input_ids.shape
    if maskable is None:
        maskable = torch.ones_like(input_ids, dtype=torch.bool)
    keys = torch.rand(b, n, device=input_ids.device, generator=generator)
    keys = keys.masked_fill(~maskable, 2.0)  # never chosen while maskable positions remain
    ranks = keys.argsort(dim=1).argsort(dim=1)
    masked = (ranks < num_masked[:, None]) & maskable
    return input_ids.masked_fill(masked, mask_id), masked


def stratified_mask_counts(first: int, length: int, batch: int) -> torch.LongTensor:
    """LLaDA's stratified draw for likelihood estimation: ``batch`` counts of masked tokens in [1, length],
    spread evenly from ``first`` (drawn uniformly in [1, length]) with a stride of length / batch, wrapping
    around; each count is still uniform over [1, length], but one batch covers the range evenly."""
    counts = torch.round(torch.linspace(float(first), first + (batch - 1) * (length / batch), steps=batch)).long()
    return (counts - 1) % length + 1


def num_transfer_tokens(mask_count: torch.LongTensor, steps: int) -> torch.LongTensor:
    """How many tokens each of ``steps`` steps commits: the masked count split evenly, the first steps
    taking the remainder (LLaDA's schedule). Shape (batch, steps)."""
    mask_count = torch.as_tensor(mask_count).reshape(-1, 1)
    base = mask_count // steps
    remainder = mask_count % steps
    schedule = base.expand(-1, steps).clone()
    schedule += torch.arange(steps, device=mask_count.device)[None] < remainder
    return schedule


def tokens_to_commit(masked_left: torch.LongTensor, steps_left: int) -> torch.LongTensor:
    """This step's share of the block's remaining masked tokens: ceil(masked_left / steps_left).

    Step by step it reproduces :func:`num_transfer_tokens`, and it stays right when a hook forces tokens
    by hand in the middle of a block.
    """
    return (masked_left + steps_left - 1) // steps_left
