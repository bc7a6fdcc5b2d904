"""The reverse process's update rule, as small functions on tensors, called by the step engine (:mod:`engine`)
for every row of its table, each row in its own block:

    logits -> block_logits (forbidden tokens out) -> predict -> score -> choose_commits -> commit

A step sees the current block of every row as a (rows, block_length) table; ``starts`` says where each row's
block begins on the canvas (ties under LLaDA's ``confidence_eos_eot_inf`` are broken by canvas position).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model.adapters import Denoiser
from .masking import tokens_to_commit
from .remasking import Scorer, get_scorer, token_probability
from .sampler_config import SamplerConfig


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


def sample_tokens(logits: torch.Tensor, temperature: float, generator: torch.Generator | None,
                  top_k: int | None = None, top_p: float | None = None) -> torch.LongTensor:
    """Greedy at temperature 0, else Gumbel-max in float64 (low precision Gumbel noise skews sampling), among
    the ``top_k`` most probable tokens and the nucleus of mass ``top_p`` when given."""
    # max(-1).indices rather than argmax(-1): the same ties (first index), about 3x faster on CPU here
    if temperature == 0:
        return logits.max(-1).indices
    if top_k is not None or top_p is not None:
        logits = truncated(logits.float(), top_k, top_p)
    uniform = torch.rand(logits.shape, dtype=torch.float64, device=logits.device, generator=generator)
    # argmax(logits + T * Gumbel) == argmax(logits / T + Gumbel), computed in log space so nothing overflows.
    return (logits.double() - temperature * torch.log(-torch.log(uniform))).max(-1).indices


def truncated(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """The logits with every token outside the top ``top_k`` and outside the nucleus of mass ``top_p`` (the
    fewest most probable tokens whose probabilities reach it; always the most probable one) set to -inf. The
    nucleus is taken of the model's distribution (temperature 1), as transformers' top-p does after scaling."""
    drop = torch.zeros_like(logits, dtype=torch.bool)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        drop |= logits < kth
    if top_p is not None:
        ordered, order = logits.sort(-1, descending=True)
        probs = ordered.softmax(-1)
        before = probs.cumsum(-1) - probs  # the mass of the tokens ranked above each one
        drop |= torch.zeros_like(drop).scatter(-1, order, before >= top_p)
    return logits.masked_fill(drop, float("-inf"))


@dataclass
class SamplingRules:
    """A :class:`SamplerConfig` resolved against a model: the ids and the scorer the update rule needs."""

    config: SamplerConfig
    mask_id: int
    scorer: Scorer
    eos_ids: torch.LongTensor  # end-of-text: never generated under forbid_eos, ends a row under eos_early_exit
    last_ids: torch.LongTensor  # committed last under eos_last (end-of-turn too for confidence_eos_eot_inf)


def resolve_rules(config: SamplerConfig, model: Denoiser) -> SamplingRules:
    eos = list(config.eos_token_ids or [])
    if not eos and (config.forbid_eos or config.eos_last or config.confidence_eos_eot_inf or config.eos_early_exit):
        eos = list(model.eos_token_ids)
        if not eos:
            raise ValueError("forbid_eos/eos_last/eos_early_exit need eos_token_ids (the model config has no "
                             "eos_token_id)")
    device = model.device
    eos_ids = torch.tensor(eos, dtype=torch.long, device=device)
    last = sorted(set(eos) | set(model.end_of_turn_ids)) if config.confidence_eos_eot_inf else eos
    return SamplingRules(config, model.mask_id, get_scorer(config.remasking), eos_ids,
                         torch.tensor(last, dtype=torch.long, device=device))


def block_logits(logits: torch.Tensor, rules: SamplingRules) -> torch.Tensor:
    """The current block's logits in float32 with what may never be committed at -inf: the mask token (it would
    never end the block) and, under ``forbid_eos``, end-of-text. May edit ``logits`` in place."""
    logits = logits.float()
    logits[..., rules.mask_id] = float("-inf")
    if rules.config.forbid_eos:
        logits[..., rules.eos_ids] = float("-inf")
    return logits


@dataclass
class BlockStep:
    """One step's proposal for the current block of every row, shape (rows, block_length) unless noted."""

    masked: torch.Tensor  # bool: the candidates (still masked)
    rows: torch.LongTensor  # (n,) candidate coordinates in the table
    cols: torch.LongTensor
    logits: torch.Tensor  # (n, vocab) the candidates' logits
    proposal: torch.LongTensor  # the block with the predicted token at every candidate
    scores: torch.Tensor  # remasking scores, -inf off the candidates
    commit: torch.Tensor  # bool: what this step commits


def predict(candidate_logits: torch.Tensor, rules: SamplingRules, generator) -> torch.LongTensor:
    config = rules.config
    return sample_tokens(candidate_logits, config.temperature, generator, config.top_k, config.top_p)


def score(candidate_logits: torch.Tensor, predicted: torch.LongTensor, rules: SamplingRules,
          generator) -> torch.Tensor:
    """The remasking scores of the candidates; end-of-text (and turn) pushed last under ``eos_last``."""
    config, scored = rules.config, candidate_logits
    if config.confidence_eos_eot_inf:  # LLaDA scores without end-of-text/turn: their mass goes to the rest
        scored = candidate_logits.clone()
        scored[:, rules.last_ids] = float("-inf")
    scores = rules.scorer(scored, predicted, generator).float()
    if (config.eos_last or config.confidence_eos_eot_inf) and rules.last_ids.numel():
        scores = scores - 1e6 * torch.isin(predicted, rules.last_ids)
    return scores


def rank_within_rows(scores: torch.Tensor) -> torch.LongTensor:
    """0 for the highest score of each row, 1 for the next..."""
    return scores.argsort(dim=1, descending=True).argsort(dim=1)


def top_scores(block_scores: torch.Tensor, counts: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    """Where each row's ``counts[row]`` highest block scores are (bool, shaped like ``block_scores``).

    Chosen with ``torch.topk`` over a row as long as the canvas (-inf outside the block), as LLaDA's
    ``generate.py`` does, so that equal scores (e.g. confidence 0) are broken the same way."""
    width = block_scores.shape[1]
    chosen = torch.zeros_like(block_scores, dtype=torch.bool)
    for row, (count, start) in enumerate(zip(counts.tolist(), starts.tolist())):
        if count:
            canvas = block_scores.new_full((length,), float("-inf"))
            canvas[start:start + width] = block_scores[row]
            picked = canvas.topk(count).indices - start
            chosen[row, picked[(picked >= 0) & (picked < width)]] = True
    return chosen


def choose_commits(step: BlockStep, steps_left: int | torch.Tensor, rules: SamplingRules, starts: torch.Tensor,
                   length: int, counts: torch.LongTensor | None = None) -> torch.Tensor:
    """Which candidates to commit: the top ceil(masked / steps left) by score (LLaDA's even split), or, with a
    threshold, every candidate at least that confident and always the best one; ``counts``: how many per row
    instead (a remasking schedule's, :mod:`revision`)."""
    config, masked = rules.config, step.masked
    if counts is not None:
        return top_share(step, counts, rules, starts, length)
    if config.threshold is not None:
        confident = torch.zeros_like(masked)
        confident[step.rows, step.cols] = token_probability(step.logits, step.proposal[step.rows, step.cols]) \
            >= config.threshold
        return (confident | (rank_within_rows(step.scores) == 0)) & masked
    if config.entropy_bound is not None:
        return within_entropy_bound(step, config.entropy_bound)
    return top_share(step, tokens_to_commit(masked.sum(1), steps_left), rules, starts, length)


def top_share(step: BlockStep, share: torch.LongTensor, rules: SamplingRules, starts: torch.Tensor,
              length: int) -> torch.Tensor:
    """The ``share[row]`` best-scored candidates of each row."""
    if rules.config.confidence_eos_eot_inf:  # many scores tied at LLaDA's 0: break the ties as LLaDA does
        return top_scores(step.scores, share, starts, length) & step.masked
    return (rank_within_rows(step.scores) < share[:, None]) & step.masked


def within_entropy_bound(step: BlockStep, bound: float) -> torch.Tensor:
    """EB-sampler's rule: in each row, the longest run of candidates in score order whose entropies add up to
    at most ``bound`` plus the largest among them (so the first is always taken)."""
    entropy = torch.zeros(step.masked.shape, device=step.masked.device)
    entropy[step.rows, step.cols] = torch.special.entr(step.logits.float().softmax(-1)).sum(-1)
    order = step.scores.argsort(dim=1, descending=True)  # candidates first: the others score -inf
    ranked = entropy.gather(1, order)
    fits = (ranked.cumsum(1) - ranked.cummax(1).values <= bound) & step.masked.gather(1, order)
    count = fits.long().cumprod(1).sum(1).clamp(min=1)
    return (rank_within_rows(step.scores) < count[:, None]) & step.masked


class GeneratorChunks(list):
    """(rows, generator) for consecutive runs of the step's table: each run then draws its random numbers exactly
    as it would in a run of its own with that generator (requests from different users batched together each
    keep their seed)."""


def predict_and_score(candidate_logits: torch.Tensor, rows: torch.LongTensor, table_rows: int,
                      rules: SamplingRules, generator) -> tuple[torch.LongTensor, torch.Tensor]:
    """The predicted token and remasking score of every candidate (candidates in row-major order)."""
    if not isinstance(generator, GeneratorChunks):
        predicted = predict(candidate_logits, rules, generator)
        return predicted, score(candidate_logits, predicted, rules, generator)
    per_row = torch.bincount(rows, minlength=table_rows).tolist()
    counts, first = [], 0
    for n, _ in generator:
        counts.append(sum(per_row[first:first + n]))
        first += n
    parts = [(chunk, g) for chunk, (_, g), n in zip(candidate_logits.split(counts), generator, counts) if n]
    if not parts:
        return candidate_logits.new_zeros(0, dtype=torch.long), candidate_logits.new_zeros(0)
    predicted = [predict(chunk, rules, g) for chunk, g in parts]
    scores = [score(chunk, p, rules, g) for (chunk, g), p in zip(parts, predicted)]
    return torch.cat(predicted), torch.cat(scores)


def propose(block_x: torch.LongTensor, logits: torch.Tensor, steps_left: int | torch.Tensor, rules: SamplingRules,
            generator, starts: torch.Tensor, length: int, counts: torch.LongTensor | None = None) -> BlockStep:
    """The whole update for one step: predict every candidate, score it, choose what to commit.

    ``block_x``: (rows, width) current blocks; ``logits``: their :func:`block_logits`; ``generator``: one for
    the whole table, or :class:`GeneratorChunks`."""
    masked = block_x == rules.mask_id
    rows, cols = masked.nonzero(as_tuple=True)
    candidate_logits = logits[rows, cols]
    predicted, candidate_scores = predict_and_score(candidate_logits, rows, block_x.shape[0], rules, generator)
    scores = torch.full(masked.shape, float("-inf"), device=block_x.device)
    scores[rows, cols] = candidate_scores
    proposal = block_x.clone()
    proposal[rows, cols] = predicted
    step = BlockStep(masked, rows, cols, candidate_logits, proposal, scores, commit=masked)
    step.commit = choose_commits(step, steps_left, rules, starts, length, counts)
    return step


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
