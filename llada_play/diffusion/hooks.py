"""Step hooks: what the sampler tells the outside world at every denoising step, and how the outside world
can answer (stop, force a token, forbid a token).

A step hook is any callable taking a :class:`StepRecord`. A logits hook is any callable taking a
:class:`LogitsContext` and the logits, returning edited logits (or ``None`` to keep them).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class LogitsContext:
    """What a logits hook sees before tokens are chosen at a step."""

    block: int
    step: int
    block_step: int
    x: torch.LongTensor  # the current sequence (batch, length); do not edit in place
    mask_index: torch.Tensor  # where x is still masked
    block_start: int
    block_end: int


@dataclass
class StepRecord:
    """One denoising step, handed to every step hook after the step's tokens were committed.

    Positions are absolute indices into the full sequence (prompt followed by generation).
    Tensors live on the model's device; ``predicted``/``confidence`` hold -1/NaN where nothing was masked.

    With the block KV cache (``generate(cache=...)``) the step's logits come from a windowed pass at every
    step but a block's first: inside the block they are the model's, computed against cached keys/values
    that may be a few steps stale (approximate); with ``cache="dual"``, predictions and confidences at
    masked positions after the block are those of the block's last full pass. Early-exit fills are
    ``committed`` at the step that triggered them.
    """

    block: int  # block index
    step: int  # global step index, counting from 0
    block_step: int  # step index within the block
    prompt_length: int
    gen_length: int
    block_length: int
    mask_id: int
    block_start: int
    block_end: int
    x_after: torch.LongTensor
    # What the step saw and did; None in a run started with observe=False (nobody reads them, so none is made)
    x_before: torch.LongTensor | None = None
    committed: torch.Tensor | None = None  # bool: positions committed at this step
    predicted: torch.LongTensor | None = None  # the predicted token at every position masked before the step
    confidence: torch.Tensor | None = None  # probability of the predicted token there
    scores: torch.Tensor | None = None  # the remasking score at the current block's candidates (NaN elsewhere)
    topk_ids: torch.LongTensor | None = None  # (batch, length, k) alternatives, when asked for
    topk_probs: torch.Tensor | None = None
    # Revisions the step made (diffusion/revision.py): committed tokens sent back to the mask, (row, position,
    # old token); tokens replaced by token editing, (row, position, old token, new token, probability)
    remasked: list[tuple[int, int, int]] = field(default_factory=list)
    edits: list[tuple[int, int, int, int, float]] = field(default_factory=list)
    _forced: list[tuple[int, int, int]] = field(default_factory=list)
    _remask: list[tuple[int, int]] = field(default_factory=list)
    _forbidden: list[tuple[int, int, int]] = field(default_factory=list)
    _stop: bool = False
    _refusal: str | None = None  # why this record cannot steer its run (a run that only streams its records)

    def force(self, position: int, token: int, row: int = 0) -> None:
        """Commit ``token`` at a still-masked ``position`` before the next step (recorded in traces)."""
        self._steerable()
        self._forced.append((row, position, token))

    def forbid(self, position: int, token: int, row: int = 0) -> None:
        """Never let the sampler commit ``token`` at ``position`` from the next step on."""
        self._steerable()
        self._forbidden.append((row, position, token))

    def remask(self, position: int, row: int = 0) -> None:
        """Send a committed token of the current (or a later) block back to the mask before the next step: the
        sampler fills it again (recorded in traces). The prompt and pinned tokens cannot be remasked."""
        self._steerable()
        self._remask.append((row, position))

    @property
    def remask_requests(self) -> list[tuple[int, int]]:
        """(row, position) sent back to the mask by hooks after this step."""
        return list(self._remask)

    def stop(self) -> None:
        """End the run after this step; still-masked positions stay masked in the output."""
        self._steerable()
        self._stop = True

    def _steerable(self) -> None:
        if self._refusal is not None:
            raise ValueError(self._refusal)

    @property
    def forced(self) -> list[tuple[int, int, int]]:
        """(row, position, token) committed by hooks after this step."""
        return list(self._forced)

    @property
    def stopped(self) -> bool:
        return self._stop


def call_logits_hooks(hooks, context: LogitsContext, logits: torch.Tensor) -> torch.Tensor:
    for hook in hooks:
        edited = hook(context, logits)
        if edited is not None:
            logits = edited
    return logits


def forbid_tokens_hook(token_ids, positions=None):
    """A logits hook that keeps ``token_ids`` from being generated (at ``positions``, or anywhere)."""
    token_ids = list(token_ids)

    def hook(context: LogitsContext, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.clone()
        if positions is None:
            logits[..., token_ids] = float("-inf")
        else:
            for pos in positions:
                logits[:, pos, token_ids] = float("-inf")
        return logits

    return hook
