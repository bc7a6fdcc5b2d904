"""Scoring for the reversal-curse experiment: generation exact match, ranking against distractors, and
infilling, for a masked diffusion model and its autoregressive twin."""
from __future__ import annotations

import random
import re

import torch

from ..diffusion.losses import autoregressive_log_likelihood, mc_log_likelihood
from ..diffusion.autoregressive import generate_autoregressive
from ..diffusion.sampler_config import SamplerConfig
from ..diffusion.sampling import denoise, generate
from ..model.text import decode_generation


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().strip('"').strip()


def answer_matches(generated: str, answer: str) -> bool:
    """Exact match of the answer span: the generation starts with the answer and the answer ends on a word
    boundary (what follows, if anything, is not a letter or digit)."""
    generated, answer = normalise(generated), normalise(answer)
    if not answer or not generated.startswith(answer):
        return False
    rest = generated[len(answer):]
    return not rest or not rest[0].isalnum()


def _encode(tokenizer, text: str, sentence_start: bool = False) -> list[int]:
    """Token ids of ``text``; with ``sentence_start`` preceded by end-of-text, which is what precedes every
    sentence in packed training data (and gives a causal model a first token to condition on)."""
    ids = tokenizer(text, add_special_tokens=False).input_ids
    return [tokenizer.eos_token_id, *ids] if sentence_start else ids


def question_ids(tokenizer, question: str) -> torch.LongTensor:
    """A question as the experiment asks it: a sentence start (end-of-text), then the text; shape (1, n)."""
    if not question.strip():
        raise ValueError("the question is empty: type the start of a sentence, e.g. 'The one who is ... is called'")
    return torch.tensor([_encode(tokenizer, question.rstrip(), sentence_start=True)])


def answer_config(max_answer_tokens: int = 16, block_length: int = 8) -> SamplerConfig:
    """How answers are sampled: greedy, one token per step, blocks of 8."""
    length = -(-max_answer_tokens // block_length) * block_length
    return SamplerConfig(steps=length, gen_length=length, block_length=block_length)


@torch.no_grad()
def answer(model, tokenizer, question: str, max_answer_tokens: int = 16) -> str:
    """The greedy answer of either kind of model, cut at end-of-text."""
    prompt = question_ids(tokenizer, question)
    if getattr(model.config, "causal", False):
        out = generate_autoregressive(model, prompt, max_answer_tokens, eos_token_ids=[tokenizer.eos_token_id])
    else:
        out = denoise(model, prompt, answer_config(max_answer_tokens), observe=False).finish()
    return decode_generation(tokenizer, out[0], prompt.shape[1])


def left_padded(rows: list[list[int]], pad_id: int) -> tuple[torch.LongTensor, torch.LongTensor]:
    """Prompts of different lengths as one batch: ids padded on the left, and the attention mask."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r):] = 1
    return ids, mask


@torch.no_grad()
def generation_accuracy(model, tokenizer, rows: list[dict], causal: bool, extra_tokens: int = 4,
                        block_length: int = 8, seed: int = 0, sentence_start: bool = False,
                        batch_size: int = 32, return_answers: bool = False):
    """Greedy answers to each prompt, scored by :func:`answer_matches` against the completion (the generation
    is cut at the first end-of-text). Every prompt gets the same room, the longest completion plus
    ``extra_tokens``, so that batching (left-padded, ``batch_size`` rows) does not change any answer.
    Returns the accuracy, or (accuracy, answers) with ``return_answers``."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    budget = max(len(_encode(tokenizer, r["completion"])) for r in rows) + extra_tokens
    length = -(-budget // block_length) * block_length
    answers = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        prompt, mask = left_padded([_encode(tokenizer, r["prompt"], sentence_start) for r in chunk], pad)
        if causal:
            out = generate_autoregressive(model, prompt, budget, attention_mask=mask)
        else:
            out = generate(model, prompt, steps=length, gen_length=length, block_length=block_length, seed=seed,
                           attention_mask=mask)
        answers += [decode_generation(tokenizer, generated, prompt.shape[1]) for generated in out]
    accuracy = sum(answer_matches(a, r["completion"]) for a, r in zip(answers, rows)) / len(rows)
    return (accuracy, answers) if return_answers else accuracy


@torch.no_grad()
def completion_score(model, tokenizer, prompt: str, completion: str, causal: bool, mc_samples: int = 32,
                     seed: int = 0, sentence_start: bool = False) -> float:
    """log p(completion | prompt): exact for the causal model, the Monte-Carlo lower bound for the diffusion one."""
    p = torch.tensor(_encode(tokenizer, prompt, sentence_start))
    c = torch.tensor(_encode(tokenizer, completion))
    if causal:
        return autoregressive_log_likelihood(model, p, c)
    g = torch.Generator().manual_seed(seed)
    return mc_log_likelihood(model, p, c, model.config.mask_token_id, mc_samples, min(mc_samples, 16), g)


@torch.no_grad()
def ranking_accuracy(model, tokenizer, rows: list[dict], causal: bool, distractors: int = 4, mc_samples: int = 32,
                     seed: int = 0, pool: list[str] | None = None, sentence_start: bool = False) -> float:
    """How often the true completion outscores ``distractors`` other answers.

    Distractors are drawn (seeded) from ``pool``, by default the completions of the other rows (other people).
    Scores are normalised per token of the candidate so that short and long answers compete fairly.
    """
    rng = random.Random(seed)
    pool = sorted(set(pool) if pool is not None else {r["completion"] for r in rows})
    if len(pool) <= distractors:
        raise ValueError(f"need more than {distractors} distinct completions to draw distractors, got {len(pool)}")
    correct = 0
    for row in rows:
        scores = candidate_scores(model, tokenizer, row["prompt"],
                                  draw_candidates(row["completion"], pool, distractors, rng), causal, mc_samples,
                                  seed, sentence_start)
        correct += max(range(len(scores)), key=scores.__getitem__) == 0
    return correct / len(rows)


def draw_candidates(answer: str, pool: list[str], distractors: int, rng: random.Random) -> list[str]:
    """The true answer first, then ``distractors`` other answers from ``pool`` (other people's)."""
    others = [c for c in pool if c != answer]
    if len(others) < distractors:
        raise ValueError(f"need {distractors} other answers to draw distractors from, got {len(others)}")
    return [answer, *rng.sample(others, distractors)]


@torch.no_grad()
def candidate_scores(model, tokenizer, prompt: str, candidates: list[str], causal: bool, mc_samples: int = 32,
                     seed: int = 0, sentence_start: bool = False) -> list[float]:
    """log p(candidate | prompt) per token of the candidate, for each candidate: the ranking's scores."""
    return [completion_score(model, tokenizer, prompt, c, causal, mc_samples, seed, sentence_start)
            / max(1, len(_encode(tokenizer, c))) for c in candidates]


@torch.no_grad()
def infilling_accuracy(model, tokenizer, facts, block_length: int = 8, seed: int = 0,
                       sentence_start: bool = False) -> float:
    """Mask the name in "<name> is <description>." and let the diffusion model fill it in with the description
    pinned after it (the training order of p2d facts). A causal model cannot do this directly; rank instead."""
    if getattr(model.config, "causal", False):
        raise ValueError("infilling needs a bidirectional (masked diffusion) model; rank candidates for a causal one")
    correct = 0
    for fact in facts:
        name_len = len(_encode(tokenizer, fact.name))
        suffix = _encode(tokenizer, f" is {fact.description}.")
        length = -(-(name_len + len(suffix)) // block_length) * block_length
        constraints = {name_len + i: t for i, t in enumerate(suffix)}
        eos = tokenizer.eos_token_id
        for pos in range(name_len + len(suffix), length):
            constraints[pos] = eos  # the sentence ends; pad the canvas with end-of-text
        prompt = torch.tensor([_encode(tokenizer, "", sentence_start)], dtype=torch.long)
        out = generate(model, prompt, steps=name_len, gen_length=length, block_length=length,
                       constraints=constraints, seed=seed)
        start = prompt.shape[1]
        correct += answer_matches(tokenizer.decode(out[0, start:start + name_len].tolist()), fact.name)
    return correct / len(facts)


@torch.no_grad()
def infilling_ranking_accuracy(model, tokenizer, facts, causal: bool, distractors: int = 4, mc_samples: int = 32,
                               seed: int = 0, names: list[str] | None = None) -> float:
    """Infilling by ranking, the way a causal model can do it: score the whole sentence
    "<candidate> is <description>." for the true name and ``distractors`` other names of the same facts, and
    count how often the true one wins. Scores are joint log-probabilities (exact for a causal model, the
    Monte-Carlo bound for a diffusion model), so candidates should come from equally frequent facts: by default
    the names of ``facts``, or ``names``."""
    rng = random.Random(seed)
    names = sorted(set(names) if names is not None else {f.name for f in facts})
    if len(names) <= distractors:
        raise ValueError(f"need more than {distractors} distinct names to draw distractors, got {len(names)}")
    correct = 0
    for fact in facts:
        candidates = [fact.name, *rng.sample([n for n in names if n != fact.name], distractors)]
        scores = [completion_score(model, tokenizer, "", f"{name} is {fact.description}.", causal, mc_samples, seed,
                                   sentence_start=True) for name in candidates]
        correct += max(range(len(scores)), key=scores.__getitem__) == 0
    return correct / len(facts)
