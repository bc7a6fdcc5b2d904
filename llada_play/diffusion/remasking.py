"""Remasking strategies: which of the predicted tokens to commit at a denoising step.

A strategy is a scorer: given the logits at the candidate (still masked, current block) positions and the
token predicted there, it returns one score per position; the sampler commits the highest-scoring ones.
Add a strategy by decorating a function with :func:`register_remasking`.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

Scorer = Callable[[torch.Tensor, torch.Tensor, "torch.Generator | None"], torch.Tensor]
REMASKING: dict[str, Scorer] = {}


def register_remasking(name: str):
    """Decorator that makes a scorer available to ``generate(remasking=name)``."""
    def add(fn: Scorer) -> Scorer:
        REMASKING[name] = fn
        return fn
    return add


def get_scorer(name: str) -> Scorer:
    if name not in REMASKING:
        raise ValueError(f"unknown remasking strategy {name!r}; choose one of {sorted(REMASKING)}")
    return REMASKING[name]


def token_probability(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """softmax(logits)[tokens] without materialising the whole softmax."""
    logits = logits.float()
    return (logits.gather(-1, tokens[..., None]).squeeze(-1) - logits.logsumexp(-1)).exp()


@register_remasking("low_confidence")
def low_confidence(logits, tokens, generator=None):
    """LLaDA: keep the tokens the model is most sure of (probability of the predicted token)."""
    return token_probability(logits, tokens)


@register_remasking("random")
def random_order(logits, tokens, generator=None):
    """LLaDA: commit positions in uniformly random order."""
    return torch.rand(tokens.shape, device=tokens.device, generator=generator)


@register_remasking("margin")
def margin(logits, tokens, generator=None):
    """Dream: gap between the two most probable tokens."""
    top2 = logits.float().softmax(-1).topk(2, dim=-1).values
    return top2[..., 0] - top2[..., 1]


@register_remasking("entropy")
def negative_entropy(logits, tokens, generator=None):
    """Dream: the lower the entropy of the predictive distribution, the earlier the commit."""
    # entr(p) = -p log p, and 0 where p is 0 (forbidden tokens), where p * log p would be NaN.
    return -torch.special.entr(logits.float().softmax(-1)).sum(-1)


@register_remasking("left_to_right")
def left_to_right(logits, tokens, generator=None):
    """Autoregressive order inside the block: the leftmost masked position first, whatever the model thinks.
    (Candidates arrive in canvas order, so a falling score is left to right.)"""
    return -torch.arange(len(tokens), dtype=torch.float, device=tokens.device)
