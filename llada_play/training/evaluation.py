"""Held-out metrics: masked-token loss, the diffusion likelihood bound, the AR loss and a unigram baseline;
per-sequence versions of the bound and the AR loss, for error bars."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..diffusion.losses import autoregressive_loss
from ..diffusion.masking import forward_process
from ..diffusion.sampler_config import SamplerConfig
from ..model.adapters import as_denoiser, logits_of

# Task answers (arithmetic, facts) are a few tokens: one block of 8, one token per step.
SHORT_ANSWERS = SamplerConfig(steps=8, gen_length=8, block_length=8)


@torch.no_grad()
def masked_token_loss(model, batches: list[dict], mask_id: int, eps: float = 1e-3, seed: int = 0,
                      prompt_lengths: bool = False) -> dict:
    """Over fixed batches with t ~ U(0,1) per sequence:

    - ``masked_token_loss``: mean cross-entropy (nats) over masked tokens;
    - ``nelbo_per_token``: the negative ELBO per token, sum over masked tokens of CE / p_mask divided by the
      number of tokens: an upper bound on the model's negative log-likelihood per token.
    """
    g = torch.Generator().manual_seed(seed)
    ce_sum, masked, weighted, tokens = 0.0, 0, 0.0, 0
    device = next(model.parameters()).device
    model = as_denoiser(model, mask_id)
    for batch in batches:
        ids = batch["input_ids"].to(device)
        maskable = None
        if prompt_lengths and "prompt_lengths" in batch:
            maskable = torch.arange(ids.shape[1], device=device)[None] >= batch["prompt_lengths"].to(device)[:, None]
        t = torch.rand(ids.shape[0], generator=g).to(device)
        noisy, where, p_mask = forward_process(ids.cpu(), mask_id, eps=eps, maskable=None if maskable is None
                                               else maskable.cpu(), t=t.cpu(), generator=g)
        noisy, where, p_mask = noisy.to(device), where.to(device), p_mask.to(device)
        logits = logits_of(model(noisy))
        ce = F.cross_entropy(logits[where].float(), ids[where], reduction="none")
        ce_sum += ce.sum().item()
        masked += int(where.sum())
        weighted += (ce / p_mask[where]).sum().item()
        tokens += ids.numel() if maskable is None else int(maskable.sum())
    return {"masked_token_loss": ce_sum / max(masked, 1), "nelbo_per_token": weighted / max(tokens, 1)}


@torch.no_grad()
def autoregressive_eval(model, batches: list[dict]) -> dict:
    """Mean next-token negative log-likelihood (nats per token)."""
    device = next(model.parameters()).device
    losses = [autoregressive_loss(model, b["input_ids"].to(device)).loss.item() for b in batches]
    return {"nll_per_token": sum(losses) / len(losses)}


@torch.no_grad()
def nelbo_per_sequence(model, input_ids: torch.LongTensor, mask_id: int, samples: int = 1, eps: float = 1e-3,
                       context: int = 0, batch_size: int = 16, seed: int = 0) -> torch.Tensor:
    """Monte-Carlo negative ELBO of each row, in nats per scored token: a (rows,) tensor.

    Each of ``samples`` draws takes t ~ U(0, 1), masks every scored token with p_mask = (1 - eps) t + eps
    (:func:`forward_process`) and adds up the masked tokens' cross-entropy / p_mask; the row's estimate is the
    mean over its draws divided by the number of scored tokens. The first ``context`` tokens are never masked
    (they are given), so each estimate is an unbiased estimate of an upper bound on
    -log p(x[context:] | x[:context]) / (L - context). Draws of different rows are independent, so the standard
    error over rows (:func:`mean_and_standard_error`) covers both the text and the Monte-Carlo noise.
    """
    rows, n = input_ids.shape
    if not 0 <= context < n:
        raise ValueError(f"context ({context}) must leave at least one of the {n} tokens to score")
    device = next(model.parameters()).device
    model = as_denoiser(model, mask_id)
    g = torch.Generator().manual_seed(seed)
    repeated = input_ids.repeat_interleave(samples, dim=0)  # row i's draws are rows i*samples .. (i+1)*samples-1
    maskable = (torch.arange(n) >= context)[None].expand(batch_size, n)
    sums = []
    for start in range(0, len(repeated), batch_size):
        ids = repeated[start:start + batch_size]
        noisy, where, p_mask = forward_process(ids, mask_id, eps=eps, maskable=maskable[:len(ids)], generator=g)
        noisy, where, ids = noisy.to(device), where.to(device), ids.to(device)
        ce = F.cross_entropy(logits_of(model(noisy))[where].float(), ids[where], reduction="none")
        weighted = torch.zeros(where.shape, device=device)
        weighted[where] = ce / p_mask.to(device)[where]
        sums.append(weighted.sum(1).cpu())
    return torch.cat(sums).view(rows, samples).mean(1) / (n - context)


@torch.no_grad()
def autoregressive_nll_per_sequence(model, input_ids: torch.LongTensor, batch_size: int = 16) -> torch.Tensor:
    """Exact negative log-likelihood of each row under a causal model, in nats per predicted token: tokens
    1..L-1 given the ones before them (the first token is given). A (rows,) tensor; its mean over rows equals
    :func:`autoregressive_eval` on the same rows (in batches of equal size)."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(input_ids), batch_size):
        ids = input_ids[start:start + batch_size].to(device)
        logits = logits_of(model(ids[:, :-1])).float()
        ce = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
        out.append(ce.view(len(ids), -1).mean(1).cpu())
    return torch.cat(out)


def mean_and_standard_error(values) -> tuple[float, float]:
    """The mean of independent values and its standard error, sample standard deviation / sqrt(n)."""
    values = torch.as_tensor(values, dtype=torch.float64).flatten()
    if len(values) < 2:
        raise ValueError("a standard error needs at least two values")
    return values.mean().item(), (values.std() / len(values) ** 0.5).item()


def nelbo_from_loss_curve(losses: dict[float, float]) -> float:
    """The diffusion NELBO in nats per token from a loss-vs-ratio curve: the 1/t-weighted bound is
    integral_0^1 CE(t) dt, with CE(t) the mean cross-entropy per masked token at ratio t (t L masks, each weighted
    1/t). Trapezoids between the measured ratios, the curve taken flat from 0 to the first one; the ratios must
    end at 1."""
    ratios = sorted(losses)
    if not ratios or ratios[-1] != 1.0 or ratios[0] <= 0:
        raise ValueError(f"the ratios must lie in (0, 1] and end at 1.0, got {ratios}")
    area = ratios[0] * losses[ratios[0]]
    for low, high in zip(ratios, ratios[1:]):
        area += (high - low) * (losses[low] + losses[high]) / 2
    return area


@torch.no_grad()
def loss_by_mask_ratio(model, batches: list[dict], mask_id: int, ratios=(0.1, 0.3, 0.5, 0.7, 0.9, 1.0),
                       seed: int = 0) -> dict[float, float]:
    """Mean masked-token cross-entropy at fixed masking ratios t (the x axis of the 'why variable masking' plot)."""
    device = next(model.parameters()).device
    model = as_denoiser(model, mask_id)
    result = {}
    for ratio in ratios:
        g = torch.Generator().manual_seed(seed)
        ce_sum, count = 0.0, 0
        for batch in batches:
            ids = batch["input_ids"].to(device)
            t = torch.full((ids.shape[0],), float(ratio), device=device)
            noisy, where, _ = forward_process(ids, mask_id, eps=0.0, t=t, generator=g)
            ce = F.cross_entropy(logits_of(model(noisy))[where].float(), ids[where], reduction="sum")
            ce_sum, count = ce_sum + ce.item(), count + int(where.sum())
        result[ratio] = ce_sum / max(count, 1)
    return result


def unigram_cross_entropy(train_tokens: torch.LongTensor, eval_tokens: torch.LongTensor, vocab_size: int) -> float:
    """Cross-entropy (nats per token) of held-out tokens under add-one-smoothed training unigram frequencies:
    the loss of a model that ignores context entirely."""
    counts = torch.bincount(train_tokens, minlength=vocab_size).double() + 1
    log_p = (counts / counts.sum()).log()
    return -log_p[eval_tokens].mean().item()


@torch.no_grad()
def answer_accuracy(model, tokenizer, conversations: list[list[dict]], config: SamplerConfig | None = None,
                    chat: bool = True, batch_size: int = 32, return_answers: bool = False, refill: bool = False) -> dict:
    """Exact-match accuracy of generated answers against the last (assistant) message of each conversation.

    Prompts are batched with left padding; each answer is cut at end-of-turn/end-of-text and stripped.
    Also reports ``well_formed``: the fraction of answers that end properly within ``config.gen_length``.
    ``refill``: continuous batching (:func:`batching.generate_many`, ``batch_size`` slots refilled as rows
    finish) instead of fixed batches; the same answers at temperature 0 (up to rounding), no block cache.
    ``config`` defaults to :data:`SHORT_ANSWERS`.
    """
    from ..diffusion.batching import generate_many
    from ..diffusion.sampling import denoise
    from ..model.text import decode_generation, stop_token_ids, tokenize

    config = config or SHORT_ANSWERS
    device = next(model.parameters()).device
    correct = well_formed = 0
    answers = []
    stops = stop_token_ids(tokenizer)

    def prompt_texts(chunk):
        if chat:
            return [tokenizer.apply_chat_template(c[:-1], add_generation_prompt=True, tokenize=False) for c in chunk]
        return ["".join(m["content"] for m in c[:-1]) for c in chunk]

    def score(rows_and_prompt_lengths, chunk):
        nonlocal correct, well_formed
        for (row, prompt_length), conv in zip(rows_and_prompt_lengths, chunk):
            answer = decode_generation(tokenizer, row, prompt_length).strip()
            correct += answer == conv[-1]["content"].strip()
            well_formed += any(int(t) in stops for t in row[prompt_length:])
            answers.append(answer)

    if refill:
        ids = tokenize(tokenizer, prompt_texts(conversations), "a question").input_ids
        out = generate_many(model, ids, batch_size, config)
        score([(row, len(p)) for row, p in zip(out, ids)], conversations)
    else:
        for start in range(0, len(conversations), batch_size):
            chunk = conversations[start:start + batch_size]
            enc = tokenize(tokenizer, prompt_texts(chunk), "a question", padding=True, return_tensors="pt")
            out = denoise(model, enc.input_ids.to(device), config, attention_mask=enc.attention_mask.to(device),
                          observe=False).finish()
            score([(row, enc.input_ids.shape[1]) for row in out], chunk)
    n = len(conversations)
    result = {"accuracy": correct / n, "well_formed": well_formed / n, "n": n}
    if return_answers:
        result["answers"] = answers
    return result


@torch.no_grad()
def autoregressive_answer_accuracy(model, tokenizer, conversations: list[list[dict]], max_new_tokens: int = 8) -> dict:
    """Exact-match accuracy of greedy left-to-right answers (for the causal twin), one prompt at a time."""
    from ..diffusion.autoregressive import generate_autoregressive
    from ..model.text import decode_generation, stop_token_ids, tokenize

    device = next(model.parameters()).device
    correct = well_formed = 0
    stops = stop_token_ids(tokenizer)
    for conv in conversations:
        text = tokenizer.apply_chat_template(conv[:-1], add_generation_prompt=True, tokenize=False)
        ids = torch.tensor([tokenizer(text, add_special_tokens=False).input_ids], device=device)
        out = generate_autoregressive(model, ids, max_new_tokens, eos_token_ids=[tokenizer.eos_token_id])
        answer = decode_generation(tokenizer, out[0], ids.shape[1]).strip()
        correct += answer == conv[-1]["content"].strip()
        well_formed += any(int(t) in stops for t in out[0, ids.shape[1]:])
    n = len(conversations)
    return {"accuracy": correct / n, "well_formed": well_formed / n, "n": n}
