"""Left-to-right sampling for the causal baseline (the autoregressive twin in the reversal-curse experiment)."""
from __future__ import annotations

import torch

from ..model.adapters import logits_of
from .sampling import as_prompt_batch
from .update import sample_tokens


def model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


@torch.no_grad()
def generate_autoregressive(
    model,
    prompt,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    eos_token_id: int | None = None,
    *,
    attention_mask: torch.Tensor | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.LongTensor:
    """Left-to-right sampling for the causal baseline; rows that emitted ``eos_token_id`` keep emitting it."""
    device = model_device(model)
    x = as_prompt_batch(prompt, device)
    if x.shape[1] == 0:
        raise ValueError("an autoregressive model needs a non-empty prompt (start it with end-of-text)")
    if max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}")
    context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if context is not None and x.shape[1] + max_new_tokens > context:
        raise ValueError(f"prompt ({x.shape[1]} tokens) plus {max_new_tokens} new tokens exceeds the context "
                         f"of {context}")
    if generator is None and seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    done = torch.zeros(x.shape[0], dtype=torch.bool, device=device)
    for _ in range(max_new_tokens):
        out = model(x) if attention_mask is None else model(x, attention_mask=attention_mask)
        logits = logits_of(out)[:, -1].float()
        token = sample_tokens(logits, temperature, generator)
        if eos_token_id is not None:
            token = torch.where(done, torch.full_like(token, eos_token_id), token)
            done |= token == eos_token_id
        x = torch.cat([x, token[:, None]], 1)
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(x.shape[0], 1)], 1)
        if eos_token_id is not None and bool(done.all()):
            break
    return x
