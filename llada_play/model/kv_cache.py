"""An approximate block-wise key/value cache for semi-autoregressive denoising (Fast-dLLM, Wu et al., 2025).

A masked-diffusion model attends in both directions, so every position's keys and values depend on the whole
canvas and change whenever any token is committed: an exact cache is impossible. Fast-dLLM's observation is
that, while one block is being denoised, the keys and values *outside* the block barely change. So:

- a **full pass** over the whole canvas stores every layer's keys (after RoPE) and values;
- a **windowed pass** recomputes only the positions ``[start, stop)`` (the current block, or the block and
  everything after it) and lets their queries attend to the stored keys/values everywhere else.

``"prefix"`` caching recomputes the block and the suffix after it (only the committed prefix and the prompt are
reused); ``"dual"`` recomputes the block alone (prefix and the still-masked suffix are reused). The sampler
refreshes the cache with a full pass whenever a block starts, so the error is bounded by one block's steps.
"""
from __future__ import annotations

import torch

CACHE_MODES = ("prefix", "dual")


class BlockKVCache:
    """Keys/values of every layer over the whole canvas, shape (batch, heads, length, head_dim) each.

    The model fills it during a full pass and, during a windowed pass, overwrites the window's slice with
    freshly computed keys/values before attending, so the window always sees itself exactly.
    """

    def __init__(self, num_layers: int):
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers

    @property
    def filled(self) -> bool:
        return self.keys[0] is not None

    @property
    def length(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def update(self, layer: int, key: torch.Tensor, value: torch.Tensor,
               window: tuple[int, int] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this pass's keys/values and return those the queries attend to (the whole canvas)."""
        if window is None:  # a full pass: remember everything
            self.keys[layer], self.values[layer] = key, value
            return key, value
        start, stop = window
        self.keys[layer][:, :, start:stop] = key
        self.values[layer][:, :, start:stop] = value
        return self.keys[layer], self.values[layer]


def cache_window(mode: str, block_start: int, block_end: int, length: int) -> tuple[int, int]:
    """The positions a windowed pass recomputes: the block (``dual``) or the block and its suffix (``prefix``)."""
    if mode == "dual":
        return block_start, block_end
    if mode == "prefix":
        return block_start, length
    raise ValueError(f"unknown cache mode {mode!r}; choose one of {list(CACHE_MODES)} or None")

