"""The reverse process: semi-autoregressive, block-by-block denoising of a masked continuation.

``denoise(model, prompt, config)`` is the run as an iterator: it yields a :class:`StepRecord` after every step
and waits. Between two ``next()`` calls the run is paused; the consumer may steer it through the record
(``record.force``/``forbid``/``stop``), which takes effect when it asks for the next step, or simply stop
iterating (abandon it). ``generate()`` runs it to the end, calling step hooks on every record. The update rule
itself lives in :mod:`update`, shared with continuous batching.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

import torch

from ..model.adapters import Denoiser, as_denoiser
from ..model.kv_cache import cache_window
from .hooks import LogitsContext, StepRecord, call_logits_hooks
from .remasking import token_probability
from .sampler_config import SamplerConfig
from .update import (BlockStep, block_logits, check_against_model, check_token_ids, end_rows_after_eos_block,
                     guided_logits, propose, resolve_rules)


def as_hook_list(hooks) -> list[Callable]:
    if hooks is None:
        return []
    return [hooks] if callable(hooks) else list(hooks)


def as_prompt_batch(prompt, device) -> torch.LongTensor:
    """A prompt as a (batch, length) LongTensor on ``device``; a 1-D prompt is a batch of one."""
    if prompt is None:
        raise ValueError("prompt is required (a LongTensor of token ids, shape (batch, length) or (length,))")
    prompt = torch.as_tensor(prompt, dtype=torch.long, device=device)
    if prompt.dim() == 1:
        prompt = prompt[None]
    if prompt.dim() != 2:
        raise ValueError(f"prompt must have shape (batch, length) or (length,), got {tuple(prompt.shape)}")
    return prompt


class _Forward:
    """The model's logits over the canvas at each step: computed on the rows that still have masks, and, when
    the config asks for the block KV cache, by a full pass at a block's first step (and every
    ``cache_refresh_every`` steps) and windowed passes over the block in between."""

    def __init__(self, model: Denoiser, attention_mask, prompt_index, config: SamplerConfig):
        self.model, self.attention_mask, self.prompt_index, self.config = model, attention_mask, prompt_index, config
        self.cache = model.new_block_cache() if config.cache else None
        self.rows = self.window = self.canvas_logits = None
        self.stale = True

    def start_block(self, start: int, end: int, length: int) -> None:
        if self.cache is not None:
            self.window, self.stale = cache_window(self.config.cache, start, end, length), True

    def forced(self, positions: Iterable[int]) -> None:
        """Tokens committed from outside the window make the cache stale: its keys there came from a mask."""
        if self.window and any(not self.window[0] <= pos < self.window[1] for pos in positions):
            self.stale = True

    def __call__(self, x: torch.LongTensor, block_step: int) -> torch.Tensor:
        every = self.config.cache_refresh_every
        if self.cache is None or self.stale or (every and block_step % every == 0):
            # rows leave the batch only at full passes, so that the cache's rows always match it
            if x.shape[0] > 1:
                busy = (x == self.model.mask_id).any(1)
                self.rows = None if bool(busy.all()) else busy.nonzero().flatten()
            logits, self.stale = self._pass(x, None), False
            if self.cache is None:
                return logits  # not kept: the next pass can then reuse its memory instead of faulting in new pages
            self.canvas_logits = logits
        else:
            start, stop = self.window
            self.canvas_logits[:, start:stop] = self._pass(x, self.window)
        return self.canvas_logits

    def _pass(self, x, window) -> torch.Tensor:
        """Logits for every row, computing only ``self.rows`` (None: all); finished rows get zeros, never read."""
        rows, mask = self.rows, self.attention_mask
        args = (self.config.cfg_scale, self.model.mask_id, self.cache, window)
        if rows is None:
            return guided_logits(self.model, x, mask, args[0], self.prompt_index, *args[1:])
        logits = guided_logits(self.model, x[rows], None if mask is None else mask[rows], args[0],
                               self.prompt_index[rows], *args[1:])
        full = logits.new_zeros((x.shape[0],) + logits.shape[1:])
        full[rows] = logits
        return full


class Denoising:
    """One run of the reverse process, as an iterator of :class:`StepRecord` (see :func:`denoise`)."""

    def __init__(self, model, prompt, config: SamplerConfig, *, attention_mask=None,
                 constraints: Mapping[int, int] | None = None, generator: torch.Generator | None = None,
                 logits_hooks=None, mask_id: int | None = None, observe: bool = True):
        self.model = model = as_denoiser(model, mask_id)  # ids -> aligned logits, whatever the family
        self.config, self.observe, self.logits_hooks = config, observe, as_hook_list(logits_hooks)
        prompt = as_prompt_batch(prompt, model.device)
        check_token_ids(prompt, model.vocab_size)
        batch, self.prompt_length = prompt.shape
        check_against_model(config, model, self.prompt_length, self.prompt_length)
        self.rules = resolve_rules(config, model)
        if generator is None and config.seed is not None:
            generator = torch.Generator(device=model.device).manual_seed(config.seed)
        self.generator, self.vocab_size = generator, model.vocab_size
        self.x = torch.full((batch, self.prompt_length + config.gen_length), model.mask_id, dtype=torch.long,
                            device=model.device)
        self.x[:, :self.prompt_length] = prompt
        self._place_constraints({} if constraints is None else constraints)
        attention_mask = self._full_attention_mask(attention_mask, prompt)
        prompt_index = torch.zeros_like(self.x, dtype=torch.bool)
        prompt_index[:, :self.prompt_length] = True
        if attention_mask is not None:
            prompt_index &= attention_mask.bool()
        self._forward = _Forward(model, attention_mask, prompt_index, config)
        self._forbidden: list[tuple[int, int, int]] = []
        self._steps = self._run()

    def __iter__(self) -> Iterator[StepRecord]:
        return self

    def __next__(self) -> StepRecord:
        with torch.no_grad():
            return next(self._steps)

    @property
    def output(self) -> torch.LongTensor:
        """The canvas, prompt + generation (batch, P + G): final once the iterator is exhausted."""
        return self.x

    def finish(self) -> torch.LongTensor:
        """Run the remaining steps; returns :attr:`output`."""
        for _ in self:
            pass
        return self.x

    def close(self) -> None:
        """Abandon the run: masked positions stay masked in :attr:`output`."""
        self._steps.close()

    def _run(self) -> Iterator[StepRecord]:
        x, config, mask_id = self.x, self.config, self.model.mask_id
        step = 0
        for block in range(config.num_blocks):
            start = self.prompt_length + block * config.block_length
            end = start + config.block_length
            self._forward.start_block(start, end, x.shape[1])
            starts, block_step = torch.full((x.shape[0],), start), 0
            while bool((x[:, start:end] == mask_id).any()):
                x_before = x.clone() if self.observe or self.logits_hooks else None
                logits = self._logits(x, x_before, block, step, block_step, start, end)
                candidates = self._forbid(block_logits(logits[:, start:end], self.rules), start, end)
                update = propose(x[:, start:end], candidates, max(config.steps_per_block - block_step, 1), self.rules,
                                 self.generator, starts, x.shape[1])
                x[:, start:end] = torch.where(update.commit, update.proposal, x[:, start:end])
                filled = end_rows_after_eos_block(x, start, end, self.rules.eos_ids, mask_id) \
                    if config.eos_early_exit else None
                record = self._record(block, step, block_step, start, end, x_before, logits, update, filled)
                del logits, candidates, update  # freed before the next forward pass, so that the allocator reuses the memory
                yield record
                self._steer(record)
                if record.stopped:
                    return
                step += 1
                block_step += 1

    def _logits(self, x, x_before, block, step, block_step, start, end) -> torch.Tensor:
        logits = self._forward(x, block_step)
        if self.vocab_size is None:  # models that do not say: learnt from the first step's logits
            self.vocab_size = logits.shape[-1]
            if self.model.mask_id >= self.vocab_size:
                raise ValueError(f"mask id {self.model.mask_id} is missing from the model's vocabulary of "
                                 f"{self.vocab_size}")
        if self.logits_hooks:
            context = LogitsContext(block, step, block_step, x, x_before == self.model.mask_id, start, end)
            logits = call_logits_hooks(self.logits_hooks, context, logits)
        return logits

    def _forbid(self, logits, start, end) -> torch.Tensor:
        for row, pos, token in self._forbidden:
            if start <= pos < end:
                logits[row, pos - start, token] = float("-inf")
        return logits

    def _record(self, block, step, block_step, start, end, x_before, logits, update: BlockStep, filled) -> StepRecord:
        config = self.config
        record = StepRecord(block=block, step=step, block_step=block_step, prompt_length=self.prompt_length,
                            gen_length=config.gen_length, block_length=config.block_length,
                            mask_id=self.model.mask_id, block_start=start, block_end=end, x_before=x_before,
                            x_after=self.x.clone() if self.observe else self.x)
        if self.observe:
            for name, value in step_predictions(logits, x_before == self.model.mask_id, update, start,
                                                config.topk, filled).items():
                setattr(record, name, value)
        return record

    def _steer(self, record: StepRecord) -> None:
        for row, pos, token in record.forced:
            if not (0 <= row < self.x.shape[0] and self.prompt_length <= pos < self.x.shape[1]):
                raise ValueError(f"cannot force a token at row {row}, position {pos}: outside the generation")
            if self.x[row, pos] != self.model.mask_id:
                raise ValueError(f"cannot force a token at row {row}, position {pos}: already committed")
            if self.vocab_size is not None and not 0 <= token < self.vocab_size:
                raise ValueError(f"forced token {token} is outside the vocabulary of {self.vocab_size}")
            self.x[row, pos] = token
        self._forward.forced(pos for _, pos, _ in record.forced)
        self._forbidden.extend(record._forbidden)

    def _place_constraints(self, constraints: Mapping[int, int] | torch.Tensor) -> None:
        """Pin tokens at positions counted from the start of the generation (infilling): {position: token} for
        every row, or a (batch, gen_length) tensor of token ids per row with -1 where nothing is pinned."""
        generation = self.x[:, self.prompt_length:]
        if isinstance(constraints, torch.Tensor):
            pins = constraints.to(self.x.device, torch.long)
            if pins.shape != generation.shape:
                raise ValueError(f"constraints tensor shape {tuple(pins.shape)} differs from the generation's "
                                 f"{tuple(generation.shape)} (batch, gen_length)")
            if self.vocab_size is not None and bool((pins >= self.vocab_size).any()):
                raise ValueError(f"constraint token {int(pins.max())} is outside the vocabulary")
            generation.copy_(torch.where(pins >= 0, pins, generation))
            return
        pins = pinned_tokens(constraints, self.config.gen_length, self.vocab_size, self.x.device)
        generation.copy_(torch.where(pins >= 0, pins, generation))

    def _full_attention_mask(self, attention_mask, prompt) -> torch.Tensor | None:
        if attention_mask is None:
            return None
        attention_mask = torch.as_tensor(attention_mask, device=prompt.device)
        if attention_mask.shape != prompt.shape:
            raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} differs from the prompt's "
                             f"{tuple(prompt.shape)}")
        return torch.cat([attention_mask.long(), attention_mask.new_ones(prompt.shape[0], self.config.gen_length).long()], 1)


def pinned_tokens(constraints: Mapping[int, int], gen_length: int, vocab_size: int | None,
                  device=None) -> torch.LongTensor:
    """{position in the generation: token id} as a (gen_length,) row of ids, -1 where nothing is pinned;
    ValueError for a position outside the generation or a token outside the vocabulary."""
    pins = torch.full((gen_length,), -1, dtype=torch.long, device=device)
    for pos, token in constraints.items():
        if not 0 <= pos < gen_length:
            raise ValueError(f"constraint position {pos} is outside the generation [0, {gen_length})")
        if vocab_size is not None and not 0 <= token < vocab_size:
            raise ValueError(f"constraint token {token} at position {pos} is outside the vocabulary")
        pins[pos] = token
    return pins


def denoise(model, prompt, config: SamplerConfig | None = None, *, attention_mask: torch.Tensor | None = None,
            constraints: Mapping[int, int] | None = None, generator: torch.Generator | None = None,
            logits_hooks: Callable | Iterable[Callable] | None = None, mask_id: int | None = None,
            observe: bool = True) -> Denoising:
    """Start denoising ``config.gen_length`` masked tokens after ``prompt`` ((batch, P) or (P,) token ids).

    Iterate the result to run it: each ``next()`` does one step and yields its :class:`StepRecord`; the canvas
    is ``run.output``. ``attention_mask``: (batch, P), 0 on left padding. ``constraints``: {position in the
    generation: token id} pinned before the first step (infilling), or a (batch, gen_length) tensor of per-row pins
    with -1 where nothing is pinned. ``generator``: randomness (else
    ``config.seed``). ``logits_hooks``: called with a :class:`LogitsContext` and the logits before tokens are
    chosen. ``observe=False`` leaves the records without predictions (``x_after`` is then the live canvas), the
    fast path when nobody reads them. Parameters are validated here, before the first step.
    """
    return Denoising(model, prompt, config or SamplerConfig(), attention_mask=attention_mask, constraints=constraints,
                     generator=generator, logits_hooks=logits_hooks, mask_id=mask_id, observe=observe)


@torch.no_grad()
def generate(model, prompt, attention_mask: torch.Tensor | None = None, steps: int = 128, gen_length: int = 128,
             block_length: int = 128, temperature: float = 0.0, cfg_scale: float = 0.0,
             remasking: str = "low_confidence", mask_id: int | None = None, logits_eos_inf: bool = False,
             confidence_eos_eot_inf: bool = False, *, constraints: Mapping[int, int] | None = None,
             generator: torch.Generator | None = None, hooks: Callable | Iterable[Callable] | None = None,
             logits_hooks: Callable | Iterable[Callable] | None = None, **options) -> torch.LongTensor:
    """Denoise ``gen_length`` masked tokens after ``prompt``; returns prompt + generation, shape (batch, P + G).

    The positional parameters are those of LLaDA's ``generate.py`` in its order, so its call
    ``generate(model, input_ids, attention_mask, steps=..., ...)`` works unchanged; ``mask_id`` defaults to the
    model's own, ``logits_eos_inf`` is ``forbid_eos``. ``options`` are the other :class:`SamplerConfig` fields
    (``threshold``, ``eos_token_ids``, ``seed``, ``cache``...), so ``generate(model, ids, **config.to_dict())``
    runs a config. ``hooks`` are called with every :class:`StepRecord` and may stop or steer the run; the other
    keywords mean what they mean in :func:`denoise`.
    """
    options["forbid_eos"] = options.get("forbid_eos", False) or logits_eos_inf
    config = SamplerConfig(steps=steps, gen_length=gen_length, block_length=block_length, temperature=temperature,
                           cfg_scale=cfg_scale, remasking=remasking, confidence_eos_eot_inf=confidence_eos_eot_inf,
                           **options)
    hooks = as_hook_list(hooks)
    run = denoise(model, prompt, config, attention_mask=attention_mask, constraints=constraints, generator=generator,
                  logits_hooks=logits_hooks, mask_id=mask_id, observe=bool(hooks))
    for record in run:
        for hook in hooks:
            hook(record)
    return run.output


def step_predictions(logits, mask_index, update: BlockStep, start: int | torch.Tensor, topk: int,
                     filled=None) -> dict:
    """What a record holds besides the sequence: predictions and confidences at every masked position, not only
    in the current block, so that a viewer can show what the model thinks of the whole canvas. ``start``: where
    the block begins, for all rows or per row (a LongTensor, rows in different blocks)."""
    batch, length = mask_index.shape
    device = mask_index.device
    rows = update.rows
    committed = torch.zeros_like(mask_index)
    c_rows, c_cols = update.commit.nonzero(as_tuple=True)
    per_row = isinstance(start, torch.Tensor)
    committed[c_rows, c_cols + (start[c_rows] if per_row else start)] = True
    cols = update.cols + (start[rows] if per_row else start)  # the candidates' canvas positions
    if filled is not None:
        committed |= filled
    m_rows, m_cols = mask_index.nonzero(as_tuple=True)
    masked_logits = logits[m_rows, m_cols].float()
    # one pass for the argmax and its probability: p(argmax) = exp(max - logsumexp)
    best, best_ids = masked_logits.max(-1)
    predicted = torch.full(mask_index.shape, -1, dtype=torch.long, device=device)
    predicted[m_rows, m_cols] = best_ids
    confidence = torch.full(mask_index.shape, float("nan"), device=device)
    confidence[m_rows, m_cols] = (best - masked_logits.logsumexp(-1)).exp()
    # Inside the block, report the token the sampler actually proposed (sampled when temperature > 0).
    proposed = update.proposal[rows, update.cols]
    predicted[rows, cols] = proposed
    confidence[rows, cols] = token_probability(update.logits, proposed)
    scores = torch.full(mask_index.shape, float("nan"), device=device)
    scores[rows, cols] = update.scores[rows, update.cols]
    fields = dict(committed=committed, predicted=predicted, confidence=confidence, scores=scores)
    if topk:
        best = masked_logits.softmax(-1).topk(topk, dim=-1)
        fields["topk_ids"] = torch.full((batch, length, topk), -1, dtype=torch.long, device=device)
        fields["topk_probs"] = torch.zeros((batch, length, topk), device=device)
        fields["topk_ids"][m_rows, m_cols], fields["topk_probs"][m_rows, m_cols] = best.indices, best.values
    return fields
