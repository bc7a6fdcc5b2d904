"""The reverse process: semi-autoregressive, block-by-block denoising of a masked continuation.

Parameters and semantics follow LLaDA's published ``generate()``; everything past ``mask_id`` is this
project's own keyword options (hooks, thresholds, end-of-text handling, constraints, seeding).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch

from ..model.adapters import Denoiser, as_denoiser, logits_of, resolve_mask_id  # noqa: F401  (re-exported)
from .hooks import LogitsContext, StepRecord, call_logits_hooks, call_step_hooks
from ..model.kv_cache import CACHE_MODES, cache_window
from .masking import tokens_to_commit
from .remasking import get_scorer, token_probability


def model_device(model) -> torch.device:
    if isinstance(model, Denoiser):
        return model.device
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def _config_value(model, name: str):
    return getattr(getattr(model, "config", None), name, None)


def _as_batch(prompt, device) -> torch.LongTensor:
    if prompt is None:
        raise ValueError("prompt is required (a LongTensor of token ids, shape (batch, length) or (length,))")
    prompt = torch.as_tensor(prompt, dtype=torch.long, device=device)
    if prompt.dim() == 1:
        prompt = prompt[None]
    if prompt.dim() != 2:
        raise ValueError(f"prompt must have shape (batch, length) or (length,), got {tuple(prompt.shape)}")
    return prompt


def _as_list(hooks) -> list[Callable]:
    if hooks is None:
        return []
    if callable(hooks):
        return [hooks]
    return list(hooks)


def sample_tokens(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.LongTensor:
    """Greedy at temperature 0, else Gumbel-max in float64 (low precision Gumbel noise skews sampling)."""
    # max(-1).indices rather than argmax(-1): the same ties (first index), about 3x faster on CPU here
    if temperature == 0:
        return logits.max(-1).indices
    uniform = torch.rand(logits.shape, dtype=torch.float64, device=logits.device, generator=generator)
    # argmax(logits + T * Gumbel) == argmax(logits / T + Gumbel), computed in log space so nothing overflows.
    return (logits.double() - temperature * torch.log(-torch.log(uniform))).max(-1).indices


def classifier_free_guidance(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """LLaDA's guidance: uncond + (scale + 1) * (cond - uncond); scale 0 gives the conditional logits."""
    if scale == 0:
        return cond  # exactly, not up to rounding
    return uncond + (scale + 1.0) * (cond - uncond)


def guided_logits(model, x, attention_mask, cfg_scale, prompt_index, mask_id, block_cache=None,
                  window=None) -> torch.Tensor:
    """The denoiser's logits for ``x``; with ``cfg_scale`` > 0, classifier-free guided against a second pass
    that sees the prompt (``prompt_index``) masked."""
    if cfg_scale > 0:
        uncond = x.masked_fill(prompt_index, mask_id)  # the unconditional pass sees the prompt masked
        both = torch.cat([x, uncond])
        mask = None if attention_mask is None else torch.cat([attention_mask, attention_mask])
        cond_logits, uncond_logits = model(both, mask, block_cache, window).chunk(2)
        return classifier_free_guidance(cond_logits, uncond_logits, cfg_scale)
    return model(x, attention_mask, block_cache, window)


def _forward_rows(model, x, attention_mask, cfg_scale, prompt_index, mask_id, rows, block_cache=None,
                  window=None) -> torch.Tensor:
    """Logits for every row, computing only ``rows`` (None: all); finished rows get zeros, never read."""
    if rows is None:
        return guided_logits(model, x, attention_mask, cfg_scale, prompt_index, mask_id, block_cache, window)
    logits = guided_logits(model, x[rows], None if attention_mask is None else attention_mask[rows], cfg_scale,
                           prompt_index[rows], mask_id, block_cache, window)
    full = logits.new_zeros((x.shape[0],) + logits.shape[1:])
    full[rows] = logits
    return full


def unfinished_rows(x: torch.Tensor, mask_id: int) -> torch.LongTensor | None:
    """Indices of the rows that still have a masked position, or None when all do (the common case)."""
    busy = (x == mask_id).any(1)
    return None if bool(busy.all()) else busy.nonzero().flatten()


def end_rows_after_eos_block(x: torch.Tensor, start: int | torch.Tensor, end: int | torch.Tensor,
                             eos_ids: torch.Tensor, mask_id: int) -> torch.Tensor | None:
    """Early exit: a row whose block [start, end) is complete and all end-of-text gets end-of-text (the block's
    last token) at every later masked position. ``start``/``end`` are one block for all rows or one per row
    (LongTensors). Returns where it filled (bool, shaped like x), or None."""
    starts = torch.as_tensor(start, device=x.device).expand(x.shape[0])[:, None]
    ends = torch.as_tensor(end, device=x.device).expand(x.shape[0])[:, None]
    cols = torch.arange(x.shape[1], device=x.device)[None]
    in_block = (cols >= starts) & (cols < ends)
    later_masked = (cols >= ends) & (x == mask_id)
    ending = (torch.isin(x, eos_ids) | ~in_block).all(1) & later_masked.any(1)
    if not bool(ending.any()):
        return None
    filled = later_masked & ending[:, None]
    x[filled] = x.gather(1, ends - 1).expand_as(x)[filled]
    return filled


def validate_sampler_args(steps, gen_length, block_length, temperature, cfg_scale, threshold, prompt_length,
                          context_length, cache=None, cache_refresh_every=None) -> int:
    """Check the sampler's parameters; returns ``steps``, clamped to ``gen_length`` with a warning."""
    for name, value in (("gen_length", gen_length), ("block_length", block_length), ("steps", steps)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if gen_length % block_length:
        raise ValueError(f"gen_length ({gen_length}) must be divisible by block_length ({block_length})")
    num_blocks = gen_length // block_length
    if steps % num_blocks:
        raise ValueError(f"steps ({steps}) must be divisible by the number of blocks "
                         f"(gen_length / block_length = {gen_length} / {block_length} = {num_blocks})")
    if steps > gen_length:
        warnings.warn(f"steps ({steps}) exceeds the {gen_length} tokens to unmask; using steps={gen_length} "
                      "(a step must commit at least one token)", stacklevel=3)
        steps = gen_length
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if cfg_scale < 0:
        raise ValueError(f"cfg_scale must be >= 0, got {cfg_scale}")
    if threshold is not None and not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if cache is not None and cache not in CACHE_MODES:
        raise ValueError(f"cache must be one of {list(CACHE_MODES)} or None, got {cache!r}")
    if cache_refresh_every is not None and (not isinstance(cache_refresh_every, int) or cache_refresh_every <= 0):
        raise ValueError(f"cache_refresh_every must be a positive integer or None, got {cache_refresh_every!r}")
    if context_length is not None and prompt_length + gen_length > context_length:
        raise ValueError(f"prompt ({prompt_length} tokens) plus generation ({gen_length} tokens) is longer than "
                         f"the model's context of {context_length} tokens")
    return steps


def _place_constraints(x, constraints, prompt_length, gen_length, vocab_size):
    """Pin tokens at positions counted from the start of the generation (infilling)."""
    for pos, token in constraints.items():
        if not 0 <= pos < gen_length:
            raise ValueError(f"constraint position {pos} is outside the generation [0, {gen_length})")
        if vocab_size is not None and not 0 <= token < vocab_size:
            raise ValueError(f"constraint token {token} at position {pos} is outside the vocabulary")
        x[:, prompt_length + pos] = token


def top_scores(block_scores: torch.Tensor, counts: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """Where each row's ``counts[row]`` highest block scores are (bool, shaped like ``block_scores``).

    Chosen with ``torch.topk`` over a row as long as the canvas (-inf outside the block), as LLaDA's
    ``generate.py`` does, so that equal scores (e.g. confidence 0) are broken the same way."""
    batch, width = block_scores.shape
    canvas = block_scores.new_full((batch, length), float("-inf"))
    canvas[:, start:start + width] = block_scores
    chosen = torch.zeros_like(canvas, dtype=torch.bool)
    for row, count in enumerate(counts.tolist()):
        if count:
            chosen[row, canvas[row].topk(count).indices] = True
    return chosen[:, start:start + width]


def _rank_within_rows(scores: torch.Tensor) -> torch.LongTensor:
    """0 for the highest score of each row, 1 for the next..."""
    return scores.argsort(dim=1, descending=True).argsort(dim=1)


def check_token_ids(ids: torch.Tensor, vocab_size: int | None, what: str = "prompt") -> None:
    """ValueError naming the first id outside [0, vocab_size) (torch's embedding would fail with an IndexError):
    its row and position for a batch (batch, length), its position for one sequence (length,)."""
    if vocab_size is None or ids.numel() == 0:
        return
    bad = ((ids < 0) | (ids >= vocab_size)).nonzero()
    if len(bad):
        where = tuple(int(i) for i in bad[0])
        place = f"row {where[0]}, position {where[1]}" if ids.dim() == 2 else f"position {where[0]}"
        raise ValueError(f"{what} token id {int(ids[where])} at {place} is outside the model's vocabulary "
                         f"[0, {vocab_size})")


@torch.no_grad()
def generate(
    model,
    prompt,
    attention_mask: torch.Tensor | None = None,
    steps: int = 128,
    gen_length: int = 128,
    block_length: int = 128,
    temperature: float = 0.0,
    cfg_scale: float = 0.0,
    remasking: str = "low_confidence",
    mask_id: int | None = None,
    logits_eos_inf: bool = False,
    confidence_eos_eot_inf: bool = False,
    *,
    threshold: float | None = None,
    eos_token_ids: Sequence[int] | None = None,
    forbid_eos: bool = False,
    eos_last: bool = False,
    constraints: Mapping[int, int] | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    hooks: Callable | Iterable[Callable] | None = None,
    logits_hooks: Callable | Iterable[Callable] | None = None,
    topk: int = 0,
    cache: str | None = None,
    cache_refresh_every: int | None = None,
    eos_early_exit: bool = False,
) -> torch.LongTensor:
    """Denoise ``gen_length`` masked tokens after ``prompt``; returns prompt + generation, shape (batch, P + G).

    The positional parameters are those of LLaDA's ``generate.py`` in its order, so its call
    ``generate(model, input_ids, attention_mask, steps=..., ...)`` works unchanged; ``mask_id`` defaults to
    the model's own (126336 for LLaDA-8B). ``logits_eos_inf`` never generates end-of-text (LLaDA's switch,
    the same as ``forbid_eos``); ``confidence_eos_eot_inf`` commits positions predicted as end-of-text or
    end-of-turn after every other candidate of the step, and scores the others with end-of-text and
    end-of-turn left out of the softmax, as LLaDA does at temperature 0 (it gives them confidence 0).
    LLaDA's code hard-codes 126081/126348 for these; here they come from ``eos_token_ids`` or the model's
    config (``eos_token_id``, ``eot_token_id``).

    The generation is split into blocks of ``block_length`` filled left to right; each block gets
    ``steps / num_blocks`` steps, and each step commits ceil(masked left / steps left) of the block's masked
    positions, ranked by the ``remasking`` scorer (LLaDA's even split, the first steps taking the remainder).
    Positions after the current block are never committed.

    Keyword options:
      attention_mask (also the third positional argument): (batch, P) with 0 on left padding, for batches of
        prompts of different lengths.
      threshold: confidence-threshold parallel decoding: commit every candidate whose predicted-token
        probability is >= threshold (at least the best-scored one per step); ``steps`` is then not used and
        each block runs until it is filled. ``remasking="threshold"`` means low_confidence with 0.9.
      eos_token_ids, forbid_eos, eos_last: never generate end-of-text, or commit it only when nothing else
        is left in the block (works at any temperature).
      constraints: {position in the generation: token id}, pinned before the first step (infilling).
      seed / generator: randomness for Gumbel noise and the random strategy.
      hooks: step hooks, called with a :class:`StepRecord` after every step; they can stop or steer.
      logits_hooks: called with a :class:`LogitsContext` and the logits before tokens are chosen.
      topk: record this many alternatives per masked position in the step records.
      cache: ``"prefix"`` or ``"dual"``: the approximate block KV cache of Fast-dLLM (see ``kv_cache.py``). A
        full pass at the first step of every block refreshes it; the block's later steps recompute only the
        block (``dual``) or the block and what follows (``prefix``). Exact at every refresh step; approximate
        at the others, since bidirectional attention makes the cached keys depend on the tokens committed
        since. Hooks still fire once per step; with ``dual``, predictions/confidences at masked positions
        after the current block are those of the last full pass.
      cache_refresh_every: also refresh the cache every this many steps within a block (1: every step, exact
        and as slow as no cache). A token forced by a hook outside the recomputed window refreshes it too.
      eos_early_exit: once a row's block is complete and all end-of-text, fill the rest of that row with
        end-of-text (recorded as committed at that step) instead of denoising it; rows with nothing left to
        do leave the batch, so the model runs only on unfinished rows.

    ``steps`` above ``gen_length`` is clamped to ``gen_length`` with a warning. A step whose block is already
    filled (by constraints or forced tokens) is skipped, costing no forward pass.
    """
    hooks, logits_hooks = _as_list(hooks), _as_list(logits_hooks)
    model = as_denoiser(model, mask_id)  # ids -> aligned logits, whatever the family
    device = model.device
    prompt = _as_batch(prompt, device)
    batch, prompt_length = prompt.shape
    mask_id, vocab_size = model.mask_id, model.vocab_size
    check_token_ids(prompt, vocab_size)
    forbid_eos = forbid_eos or logits_eos_inf
    eos_last = eos_last or confidence_eos_eot_inf
    if remasking == "threshold":
        remasking, threshold = "low_confidence", 0.9 if threshold is None else threshold
    scorer = get_scorer(remasking)
    cache = None if cache in (None, "none") else cache
    steps = validate_sampler_args(steps, gen_length, block_length, temperature, cfg_scale, threshold,
                                  prompt_length, model.context_length, cache, cache_refresh_every)
    if cache and not model.supports_block_cache:
        model.new_block_cache()  # raises, naming the model and its family
    if prompt_length == 0 and cfg_scale > 0:
        raise ValueError("classifier-free guidance (cfg_scale > 0) needs a non-empty prompt")
    if (forbid_eos or eos_last or eos_early_exit) and not eos_token_ids:
        eos_token_ids = list(model.eos_token_ids)
        if not eos_token_ids:
            raise ValueError("forbid_eos/eos_last/eos_early_exit need eos_token_ids (the model config has no "
                             "eos_token_id)")
    eos_ids = torch.tensor(list(eos_token_ids or []), dtype=torch.long, device=device)
    # what eos_last puts last: end-of-text, and end-of-turn too for LLaDA's confidence_eos_eot_inf
    last_ids = torch.tensor(sorted(set(eos_ids.tolist()) | set(model.end_of_turn_ids)), dtype=torch.long,
                            device=device) if confidence_eos_eot_inf else eos_ids
    if generator is None and seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    if topk and not hooks:
        topk = 0  # nobody would see them

    length = prompt_length + gen_length
    x = torch.full((batch, length), mask_id, dtype=torch.long, device=device)
    x[:, :prompt_length] = prompt
    if attention_mask is not None:
        attention_mask = torch.as_tensor(attention_mask, device=device)
        if attention_mask.shape != prompt.shape:
            raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} differs from the prompt's "
                             f"{tuple(prompt.shape)}")
        attention_mask = torch.cat([attention_mask.long(), attention_mask.new_ones(batch, gen_length).long()], 1)
    if constraints:
        _place_constraints(x, constraints, prompt_length, gen_length, vocab_size)
    prompt_index = torch.zeros_like(x, dtype=torch.bool)
    prompt_index[:, :prompt_length] = True
    if attention_mask is not None:
        prompt_index &= attention_mask.bool()
    forbidden: list[tuple[int, int, int]] = []

    num_blocks = gen_length // block_length
    steps_per_block = steps // num_blocks
    block_cache = model.new_block_cache() if cache else None
    canvas_logits = None  # with the cache: the last full pass's logits, the window's overwritten each step
    busy_rows = None  # the rows the model runs on (None: all); finished rows leave the batch
    step = 0
    for block in range(num_blocks):
        start = prompt_length + block * block_length
        end = start + block_length
        window = cache_window(cache, start, end, length) if cache else None
        block_step = 0
        refresh = True
        while True:
            block_masked = x[:, start:end] == mask_id
            masked_left = block_masked.sum(1)
            if not bool(masked_left.any()):
                break
            mask_index = x == mask_id if (hooks or logits_hooks) else None
            if block_cache is None:
                busy_rows = unfinished_rows(x, mask_id) if batch > 1 else None
                logits = _forward_rows(model, x, attention_mask, cfg_scale, prompt_index, mask_id, busy_rows)
            else:
                if refresh or (cache_refresh_every and block_step % cache_refresh_every == 0):
                    # rows change only here, so that the cache's rows always match the batch
                    busy_rows = unfinished_rows(x, mask_id) if batch > 1 else None
                    canvas_logits = _forward_rows(model, x, attention_mask, cfg_scale, prompt_index, mask_id,
                                                  busy_rows, block_cache)
                    refresh = False
                else:
                    canvas_logits[:, window[0]:window[1]] = _forward_rows(
                        model, x, attention_mask, cfg_scale, prompt_index, mask_id, busy_rows, block_cache, window)
                logits = canvas_logits
            if vocab_size is None:
                vocab_size = logits.shape[-1]
                if mask_id >= vocab_size:
                    raise ValueError(f"mask id {mask_id} is missing from the model's vocabulary of {vocab_size}")
            if logits_hooks:
                context = LogitsContext(block, step, block_step, x, mask_index, start, end)
                logits = call_logits_hooks(logits_hooks, context, logits)
            block_logits = logits[:, start:end].float()
            block_logits[..., mask_id] = float("-inf")  # committing the mask token would never end the block
            if forbid_eos:
                block_logits[..., eos_ids] = float("-inf")
            for row, pos, token in forbidden:
                if start <= pos < end:
                    block_logits[row, pos - start, token] = float("-inf")

            rows, cols = block_masked.nonzero(as_tuple=True)
            candidate_logits = block_logits[rows, cols]
            predicted = sample_tokens(candidate_logits, temperature, generator)
            scored = candidate_logits
            if confidence_eos_eot_inf:  # LLaDA scores without end-of-text/turn: their mass goes to the rest
                scored = candidate_logits.clone()
                scored[:, last_ids] = float("-inf")
            scores = scorer(scored, predicted, generator).float()
            if eos_last and last_ids.numel():
                scores = scores - 1e6 * torch.isin(predicted, last_ids)
            score_table = torch.full(block_masked.shape, float("-inf"), device=device)
            score_table[rows, cols] = scores
            if threshold is None:
                share = tokens_to_commit(masked_left, max(steps_per_block - block_step, 1))
                if confidence_eos_eot_inf:  # many scores tied at LLaDA's 0: break the ties as LLaDA does
                    commit = top_scores(score_table, share, start, length) & block_masked
                else:
                    commit = (_rank_within_rows(score_table) < share[:, None]) & block_masked
            else:
                rank = _rank_within_rows(score_table)
                confidence = token_probability(candidate_logits, predicted)
                confident = torch.zeros_like(block_masked)
                confident[rows, cols] = confidence >= threshold
                commit = (confident | (rank == 0)) & block_masked
            proposal = x[:, start:end].clone()
            proposal[rows, cols] = predicted
            x_before = x.clone() if hooks else None
            x[:, start:end] = torch.where(commit, proposal, x[:, start:end])
            filled = end_rows_after_eos_block(x, start, end, eos_ids, mask_id) if eos_early_exit else None

            if hooks:
                record = StepRecord(
                    block=block, step=step, block_step=block_step, prompt_length=prompt_length,
                    gen_length=gen_length, block_length=block_length, mask_id=mask_id, block_start=start,
                    block_end=end, x_before=x_before, x_after=x.clone(),
                    **_step_predictions(logits, mask_index, commit, proposal, score_table, block_logits, rows, cols,
                                        start, topk, filled))
                call_step_hooks(hooks, record)
                _apply_forced(x, record.forced, mask_id, prompt_length, vocab_size)
                if window and any(not window[0] <= pos < window[1] for _, pos, _ in record.forced):
                    refresh = True  # the cached keys there were computed from a mask
                forbidden.extend(record._forbidden)
                if record.stopped:
                    return x
            # Free this step's logits before the next forward pass, so that the allocator can reuse their
            # memory instead of mapping (and page-faulting) fresh pages for every step.
            del logits, block_logits, candidate_logits
            step += 1
            block_step += 1
    return x


def _step_predictions(logits, mask_index, commit, proposal, score_table, block_logits, rows, cols, start,
                      topk, filled=None) -> dict:
    """What hooks see besides the sequence: predictions and confidences at every masked position, not only
    in the current block, so that a viewer can show what the model thinks of the whole canvas."""
    batch, length = mask_index.shape
    device = mask_index.device
    committed = torch.zeros_like(mask_index)
    committed[:, start:start + commit.shape[1]] = commit
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
    predicted[rows, cols + start] = proposal[rows, cols]
    confidence[rows, cols + start] = token_probability(block_logits[rows, cols], proposal[rows, cols])
    scores = torch.full(mask_index.shape, float("nan"), device=device)
    scores[rows, cols + start] = score_table[rows, cols]
    fields = dict(committed=committed, predicted=predicted, confidence=confidence, scores=scores)
    if topk:
        best = masked_logits.softmax(-1).topk(topk, dim=-1)
        fields["topk_ids"] = torch.full((batch, length, topk), -1, dtype=torch.long, device=device)
        fields["topk_probs"] = torch.zeros((batch, length, topk), device=device)
        fields["topk_ids"][m_rows, m_cols], fields["topk_probs"][m_rows, m_cols] = best.indices, best.values
    return fields


def _apply_forced(x, forced, mask_id, prompt_length, vocab_size) -> None:
    for row, pos, token in forced:
        if not (0 <= row < x.shape[0] and prompt_length <= pos < x.shape[1]):
            raise ValueError(f"cannot force a token at row {row}, position {pos}: outside the generation")
        if x[row, pos] != mask_id:
            raise ValueError(f"cannot force a token at row {row}, position {pos}: already committed")
        if vocab_size is not None and not 0 <= token < vocab_size:
            raise ValueError(f"forced token {token} is outside the vocabulary of {vocab_size}")
        x[row, pos] = token


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
    x = _as_batch(prompt, device)
    if x.shape[1] == 0:
        raise ValueError("an autoregressive model needs a non-empty prompt (start it with end-of-text)")
    if max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}")
    context = _config_value(model, "max_position_embeddings")
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
