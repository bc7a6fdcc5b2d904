"""Left-to-right sampling for the causal baseline (the autoregressive twin in the reversal-curse experiment)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..model.adapters import logits_of
from .requests import as_prompt_batch
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
    eos_token_ids: Sequence[int] | None = None,
    *,
    attention_mask: torch.Tensor | None = None,
    constraints: torch.Tensor | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    step_hook: Callable[[int, torch.Tensor, torch.LongTensor], None] | None = None,
) -> torch.LongTensor:
    """Left-to-right sampling for the causal baseline. A row that emitted one of ``eos_token_ids`` (the name the
    diffusion sampler's :class:`SamplerConfig` uses) keeps emitting it; the run ends when every row has.
    ``constraints``: (batch, max_new_tokens) token ids taken instead of sampling where >= 0 (-1: sampled), the
    left-to-right counterpart of the diffusion sampler's pinned tokens. ``step_hook(i, probs, tokens)`` sees
    every new token: its index, the (batch, vocab) next-token distribution it came from, and the tokens taken."""
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
    if constraints is not None and tuple(constraints.shape) != (x.shape[0], max_new_tokens):
        raise ValueError(f"constraints must have shape (batch, max_new_tokens) = ({x.shape[0]}, {max_new_tokens}), "
                         f"got {tuple(constraints.shape)}")
    if generator is None and seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    eos_ids = torch.tensor(list(eos_token_ids or []), dtype=torch.long, device=device)
    done = torch.zeros(x.shape[0], dtype=torch.bool, device=device)
    last = torch.zeros(x.shape[0], dtype=torch.long, device=device)  # what a finished row repeats
    for i in range(max_new_tokens):
        out = model(x) if attention_mask is None else model(x, attention_mask=attention_mask)
        logits = logits_of(out)[:, -1].float()
        token = sample_tokens(logits, temperature, generator)
        if constraints is not None:
            pinned = constraints[:, i].to(token.device)
            token = torch.where(pinned >= 0, pinned, token)
        if eos_ids.numel():
            token = torch.where(done, last, token)
            last = torch.where(done, last, token)
            done |= torch.isin(token, eos_ids)
        if step_hook is not None:
            step_hook(i, torch.softmax(logits, -1), token)
        x = torch.cat([x, token[:, None]], 1)
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(x.shape[0], 1)], 1)
        if eos_ids.numel() and bool(done.all()):
            break
    return x
