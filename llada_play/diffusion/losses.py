"""Training objectives: LLaDA pre-training and SFT losses (optionally with LLaDA 2.1-style token editing: a
share of the visible tokens corrupted and restored), the autoregressive loss, and the Monte-Carlo likelihood
bound used for evaluation and ranking."""
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
    num_corrupted: int = 0  # visible tokens replaced by random ones (token editing; 0 without it)


def replacement_tokens(vocab_size: int, exclude) -> torch.LongTensor:
    """The ids a corrupted token may be replaced by: the vocabulary without ``exclude`` (the mask id and the
    other special ids, which the model should never learn to see as ordinary text)."""
    excluded = {int(i) for i in exclude if i is not None}
    tokens = torch.tensor([i for i in range(vocab_size) if i not in excluded], dtype=torch.long)
    if tokens.numel() < 2:
        raise ValueError(f"token editing needs at least two ordinary ids to draw from, the vocabulary of "
                         f"{vocab_size} without {sorted(excluded)} has {tokens.numel()}")
    return tokens


def corrupt_visible(input_ids: torch.LongTensor, noisy: torch.LongTensor, editable: torch.Tensor,
                    edit_ratio: float, tokens: torch.LongTensor,
                    generator: torch.Generator | None = None) -> tuple[torch.LongTensor, torch.Tensor]:
    """Replace each ``editable`` position of ``noisy`` with probability ``edit_ratio`` by a token drawn
    uniformly from ``tokens`` other than the original one (an ordinary id always differs from what it
    replaces, so a corrupted position is always wrong). Returns the new noisy ids and the corrupted positions.

    The draws (two uniforms per position, for the whole batch whatever is editable) come from ``generator``,
    so a resumed run and every process of a data-parallel run draw the same corruption."""
    b, n = input_ids.shape
    device = input_ids.device
    chosen = torch.rand(b, n, device=device, generator=generator) < edit_ratio
    draw = torch.rand(b, n, device=device, generator=generator)
    tokens = tokens.to(device)
    count = tokens.numel()
    where = torch.full((max(int(input_ids.max()), int(tokens.max())) + 1,), -1, dtype=torch.long, device=device)
    where[tokens] = torch.arange(count, device=device)
    place = where[input_ids]  # the original's index among the replacements, -1 when it is not one of them
    other = (place + 1 + (draw * (count - 1)).long().clamp(max=count - 2)) % count  # any index but its own
    anyone = (draw * count).long().clamp(max=count - 1)
    replaced = tokens[torch.where(place >= 0, other, anyone)]
    corrupted = chosen & editable
    return torch.where(corrupted, replaced, noisy), corrupted


def _edit_tokens(model, mask_id: int, tokens: torch.LongTensor | None) -> torch.LongTensor:
    """The replacement ids: those given, or the model's whole vocabulary without the mask id."""
    if tokens is not None:
        return tokens
    vocab = getattr(model, "vocab_size", None) or getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab is None:
        raise ValueError("token editing needs the replacement ids (edit_tokens=) for a model without a vocab_size")
    return replacement_tokens(vocab, [mask_id])


def _check_edit_ratio(edit_ratio: float) -> None:
    if not 0 <= edit_ratio < 1:
        raise ValueError(f"edit_ratio must be in [0, 1), got {edit_ratio}")


def pretrain_loss(
    model,
    input_ids: torch.LongTensor,
    mask_id: int,
    eps: float = 1e-3,
    random_length_prob: float = 0.01,
    generator: torch.Generator | None = None,
    fixed_mask_ratio: float | None = None,
    rows: slice | None = None,
    edit_ratio: float = 0.0,
    edit_tokens: torch.LongTensor | None = None,
) -> LossOutput:
    """LLaDA pre-training loss: per sequence t ~ U(0,1), mask with p_mask, cross-entropy on the masked tokens
    weighted by 1/p_mask, summed and divided by batch * length.

    With ``edit_ratio`` > 0 (token editing, LLaDA 2.1's token-to-token stream beside mask-to-token), after
    masking each still-visible token is replaced with probability ``edit_ratio`` by a random ordinary token
    (drawn from ``edit_tokens``, by default the vocabulary without the mask id; never the token it replaces),
    and every visible position, corrupted or not, is also trained to give the original token::

        L = 1/(B N) * [ sum_{masked i} CE(x_i | z) / p_mask  +  sum_{visible i} CE(x_i | z) ]

    where z is the sequence after masking and corruption. The visible term weighs each position once, as the
    masked term does in expectation (E[1{masked} / p_mask] = 1), so no further weight is needed (lambda = 1).
    It covers the positions left as they were as well as the corrupted ones: the model then learns the
    posterior of the clean token given what it sees, in which a visible token is right with prior
    probability 1 - edit_ratio, and it predicts a different token only when the context outweighs that prior.
    Restoring the corrupted positions alone would teach it that a visible token is always wrong, and an
    editing sampler would then rewrite correct tokens wherever the context leaves room. With edit_ratio 0 no
    extra noise is drawn and the loss is the plain LLaDA loss, bit for bit.

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
    _check_edit_ratio(edit_ratio)
    noisy, masked, p_mask = forward_process(input_ids, mask_id, eps=eps, t=t, generator=generator)
    visible = corrupted = None
    if edit_ratio > 0:
        visible = ~masked
        noisy, corrupted = corrupt_visible(input_ids, noisy, visible, edit_ratio,
                                           _edit_tokens(model, mask_id, edit_tokens), generator)
    if rows is not None:
        input_ids, noisy, masked, p_mask = input_ids[rows], noisy[rows], masked[rows], p_mask[rows]
        b = input_ids.shape[0]
    logits = logits_of(model(noisy))
    token_loss = F.cross_entropy(logits[masked].float(), input_ids[masked], reduction="none") / p_mask[masked]
    loss = token_loss.sum() / (b * n)
    if visible is None:
        return LossOutput(loss, p_mask[:, 0], int(masked.sum()), b * n)
    if rows is not None:
        visible, corrupted = visible[rows], corrupted[rows]
    restore = F.cross_entropy(logits[visible].float(), input_ids[visible], reduction="none")
    return LossOutput(loss + restore.sum() / (b * n), p_mask[:, 0], int(masked.sum()), b * n, int(corrupted.sum()))


def sft_loss(
    model,
    input_ids: torch.LongTensor,
    prompt_lengths: torch.LongTensor,
    mask_id: int,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    rows: slice | None = None,
    edit_ratio: float = 0.0,
    edit_tokens: torch.LongTensor | None = None,
    pad_id: int | None = None,
) -> LossOutput:
    """LLaDA SFT loss: the prompt is never masked; the response (with its end-of-text padding) is masked as
    in pre-training; each sequence's loss is divided by its response length, then averaged over the batch.
    ``rows``: score one shard of the batch, with the whole batch's noise (see :func:`pretrain_loss`).

    ``edit_ratio`` > 0 adds token editing as in :func:`pretrain_loss`, on the response only and never on its
    padding (with ``pad_id``, the id the rows are right-padded with: every one of the trailing run of
    ``pad_id`` but the first, which ends the answer)::

        L = 1/B * sum_rows 1/|response| * [ sum_{masked i} CE(x_i | z) / p_mask + sum_{editable i} CE(x_i | z) ]

    where the editable positions are the visible response tokens that are not padding, corrupted or not."""
    b, n = input_ids.shape
    positions = torch.arange(n, device=input_ids.device)[None]
    response = positions >= prompt_lengths.to(input_ids.device)[:, None]
    response_length = response.sum(1, keepdim=True).expand(b, n)
    if (response_length[:, 0] == 0).any():
        raise ValueError("a sequence in the batch has no response tokens (prompt length >= sequence length)")
    _check_edit_ratio(edit_ratio)
    noisy, masked, p_mask = forward_process(input_ids, mask_id, eps=eps, maskable=response, generator=generator)
    editable = corrupted = None
    if edit_ratio > 0:
        editable = response & ~masked & ~padding_positions(input_ids, pad_id)
        noisy, corrupted = corrupt_visible(input_ids, noisy, editable, edit_ratio,
                                           _edit_tokens(model, mask_id, edit_tokens), generator)
    if rows is not None:
        input_ids, noisy, masked, p_mask = input_ids[rows], noisy[rows], masked[rows], p_mask[rows]
        response, response_length = response[rows], response_length[rows]
        b = input_ids.shape[0]
    logits = logits_of(model(noisy))
    token_loss = F.cross_entropy(logits[masked].float(), input_ids[masked], reduction="none") / p_mask[masked]
    loss = (token_loss / response_length[masked]).sum() / b
    if editable is None:
        return LossOutput(loss, p_mask[:, 0], int(masked.sum()), int(response.sum()))
    if rows is not None:
        editable, corrupted = editable[rows], corrupted[rows]
    restore = F.cross_entropy(logits[editable].float(), input_ids[editable], reduction="none")
    loss = loss + (restore / response_length[editable]).sum() / b
    return LossOutput(loss, p_mask[:, 0], int(masked.sum()), int(response.sum()), int(corrupted.sum()))


def padding_positions(input_ids: torch.LongTensor, pad_id: int | None) -> torch.Tensor:
    """Right padding: the trailing run of ``pad_id`` in each row, except its first token (an SFT row's own
    end-of-text, which ends the answer and is text like any other). All False without ``pad_id``."""
    if pad_id is None:
        return torch.zeros_like(input_ids, dtype=torch.bool)
    trailing = (input_ids == pad_id).flip(1).long().cumprod(1).flip(1).bool()
    return trailing & torch.cat([torch.zeros_like(trailing[:, :1]), trailing[:, :-1]], 1)


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
