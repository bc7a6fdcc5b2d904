"""Training objectives: LLaDA pre-training and SFT losses, the autoregressive loss, and the Monte-Carlo
likelihood bound used for evaluation and ranking."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..model.adapters import as_denoiser, logits_of
from .masking import forward_process, mask_exactly, stratified_mask_counts
from .update import guided_logits


@dataclass
class LossOutput:
    loss: torch.Tensor
    p_mask: torch.Tensor  # per-sequence masking ratio, (batch,)
    num_masked: int
    num_tokens: int


def pretrain_loss(
    model,
    input_ids: torch.LongTensor,
    mask_id: int,
    eps: float = 1e-3,
    random_length_prob: float = 0.01,
    generator: torch.Generator | None = None,
    fixed_mask_ratio: float | None = None,
    rows: slice | None = None,
) -> LossOutput:
    """LLaDA pre-training loss: per sequence t ~ U(0,1), mask with p_mask, cross-entropy on the masked tokens
    weighted by 1/p_mask, summed and divided by batch * length.

    With probability ``random_length_prob`` the whole batch is cut to a length drawn uniformly from
    [1, length], so that the model also sees short sequences. ``fixed_mask_ratio`` replaces the random t by
    one ratio for every sequence (0.15 is BERT's masked-LM setting, without BERT's random/kept replacements):
    the baseline that shows why LLaDA draws t uniformly.

    ``rows`` scores only those rows (one process's shard of a global batch); the noise is still drawn for the
    whole batch, so that the shards of several processes see exactly the masks a single process would.
    """
    b, n = input_ids.shape
    if random_length_prob > 0 and torch.rand((), generator=generator).item() < random_length_prob:
        n = int(torch.randint(1, n + 1, (), generator=generator))
        input_ids = input_ids[:, :n]
    t = None
    if fixed_mask_ratio is not None:
        t, eps = torch.full((b,), float(fixed_mask_ratio), device=input_ids.device), 0.0
    noisy, masked, p_mask = forward_process(input_ids, mask_id, eps=eps, t=t, generator=generator)
    if rows is not None:
        input_ids, noisy, masked, p_mask = input_ids[rows], noisy[rows], masked[rows], p_mask[rows]
        b = input_ids.shape[0]
    logits = logits_of(model(noisy))
    token_loss = F.cross_entropy(logits[masked].float(), input_ids[masked], reduction="none") / p_mask[masked]
    return LossOutput(token_loss.sum() / (b * n), p_mask[:, 0], int(masked.sum()), b * n)


def sft_loss(
    model,
    input_ids: torch.LongTensor,
    prompt_lengths: torch.LongTensor,
    mask_id: int,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    rows: slice | None = None,
) -> LossOutput:
    """LLaDA SFT loss: the prompt is never masked; the response (with its end-of-text padding) is masked as
    in pre-training; each sequence's loss is divided by its response length, then averaged over the batch.
    ``rows``: score one shard of the batch, with the whole batch's noise (see :func:`pretrain_loss`)."""
    b, n = input_ids.shape
    positions = torch.arange(n, device=input_ids.device)[None]
    response = positions >= prompt_lengths.to(input_ids.device)[:, None]
    response_length = response.sum(1, keepdim=True).expand(b, n)
    if (response_length[:, 0] == 0).any():
        raise ValueError("a sequence in the batch has no response tokens (prompt length >= sequence length)")
    noisy, masked, p_mask = forward_process(input_ids, mask_id, eps=eps, maskable=response, generator=generator)
    if rows is not None:
        input_ids, noisy, masked, p_mask = input_ids[rows], noisy[rows], masked[rows], p_mask[rows]
        response, response_length = response[rows], response_length[rows]
        b = input_ids.shape[0]
    logits = logits_of(model(noisy))
    token_loss = F.cross_entropy(logits[masked].float(), input_ids[masked], reduction="none") / p_mask[masked]
    loss = (token_loss / response_length[masked]).sum() / b
    return LossOutput(loss, p_mask[:, 0], int(masked.sum()), int(response.sum()))


def autoregressive_loss(model, input_ids: torch.LongTensor, loss_mask: torch.Tensor | None = None) -> LossOutput:
    """Next-token cross-entropy for the causal baseline (mean over predicted tokens, or over ``loss_mask``)."""
    logits = logits_of(model(input_ids[:, :-1]))
    targets = input_ids[:, 1:]
    token_loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
    if loss_mask is not None:
        weights = loss_mask[:, 1:].flatten().float()
        loss = (token_loss * weights).sum() / weights.sum().clamp(min=1)
        count = int(weights.sum())
    else:
        loss, count = token_loss.mean(), token_loss.numel()
    ones = torch.ones(input_ids.shape[0], device=input_ids.device)
    return LossOutput(loss, ones, count, count)


@torch.no_grad()
def mc_log_likelihood(
    model,
    prompt: torch.LongTensor,
    answer: torch.LongTensor,
    mask_id: int,
    num_samples: int = 128,
    batch_size: int = 16,
    generator: torch.Generator | None = None,
    cfg_scale: float = 0.0,
    stratified: bool = False,
) -> float:
    """Monte-Carlo lower bound on log p(answer | prompt) for a masked diffusion model.

    LLaDA's lower-variance estimator: per sample draw l in {1..L} (L = answer length), mask exactly l answer
    tokens, and weight the cross-entropy on them by L / l. Draws are independent, or with ``stratified``
    spread evenly over {1..L} within each batch (:func:`stratified_mask_counts`), as LLaDA's
    ``get_log_likelihood`` does. ``cfg_scale`` applies classifier-free guidance as in sampling (the
    unconditional pass sees the prompt masked). LLaDA's ``get_log_likelihood(model, prompt, answer, mc_num,
    batch_size, cfg_scale, mask_id)`` is ``mc_log_likelihood(model, prompt, answer, mask_id,
    num_samples=mc_num, batch_size=batch_size, cfg_scale=cfg_scale, stratified=True)``: the same estimator,
    with this project's random stream.
    """

    prompt, answer = prompt.reshape(-1), answer.reshape(-1)
    if answer.numel() == 0:
        raise ValueError("answer is empty: there is nothing to score")
    if num_samples % batch_size:
        raise ValueError(f"num_samples ({num_samples}) must be divisible by batch_size ({batch_size})")
    if cfg_scale < 0 or (cfg_scale > 0 and prompt.numel() == 0):
        raise ValueError(f"cfg_scale must be >= 0 and needs a non-empty prompt, got {cfg_scale}")
    device = answer.device
    seq = torch.cat([prompt.to(device), answer])[None].expand(batch_size, -1)
    length = answer.numel()
    maskable = torch.zeros_like(seq, dtype=torch.bool)
    maskable[:, prompt.numel():] = True
    total = 0.0
    model = as_denoiser(model, mask_id)
    for _ in range(num_samples // batch_size):
        if stratified:
            first = int(torch.randint(1, length + 1, (), generator=generator))
            num_masked = stratified_mask_counts(first, length, batch_size).to(device)
        else:
            num_masked = torch.randint(1, length + 1, (batch_size,), device=device, generator=generator)
        noisy, masked = mask_exactly(seq, num_masked, mask_id, maskable=maskable, generator=generator)
        logits = guided_logits(model, noisy, None, cfg_scale, ~maskable, mask_id)
        token_loss = F.cross_entropy(logits[masked].float(), seq[masked], reduction="none")
        weight = (length / num_masked.float())[:, None].expand_as(masked)[masked]
        total += (token_loss * weight).sum().item()
    return -total / num_samples


@torch.no_grad()
def autoregressive_log_likelihood(model, prompt: torch.LongTensor, answer: torch.LongTensor) -> float:
    """Exact log p(answer | prompt) under a causal model."""
    prompt, answer = prompt.reshape(-1), answer.reshape(-1)
    if prompt.numel() == 0:
        raise ValueError("a causal model needs at least one prompt token (e.g. end-of-text) to score the answer")
    seq = torch.cat([prompt.to(answer.device), answer])[None]
    logits = logits_of(model(seq[:, :-1]))[0, prompt.numel() - 1:]
    return -F.cross_entropy(logits.float(), answer, reduction="sum").item()
