"""Answering few-shot prompts (:mod:`.icl_data`) with either kind of model, by generation and by ranking.

- **Generation**: the diffusion model fills the answer's slot with the library's sampler (greedy; in the ``after``
  layout the examples that follow are pinned in place, so it fills the slot between them); the causal twin writes
  after the question (in ``after`` it has only the question: what follows cannot be conditioned on).
- **Ranking** among the prompt's labels: the diffusion model by its Monte-Carlo bound on log p(label | the rest),
  which for a one-token label is exact in every sample (one token, one mask, weight 1), so one pass with the slot
  masked gives it; the twin by its exact log p(label | what precedes). ``joint`` ranking scores the whole text
  with each label, log p(question, label, examples after): the one way a left-to-right model can use examples
  that come after the slot.

Every function takes a list of prompts and answers them in batches; the scores are plain accuracies with their
binomial standard error (:func:`accuracy`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..diffusion.autoregressive import generate_autoregressive, model_device
from ..diffusion.sampling import generate
from ..model.adapters import logits_of
from .icl_data import FewShotPrompt
from .reversal import left_padded

BATCH = 64


def encode(tokenizer, prompt: FewShotPrompt) -> tuple[list[int], list[int]]:
    """(ids before the answer's slot, starting with end-of-text as every training document does; ids after it)."""
    before = tokenizer(prompt.before_answer(), add_special_tokens=False).input_ids
    after = tokenizer(prompt.after_answer(), add_special_tokens=False).input_ids if prompt.after_answer() else []
    return [tokenizer.eos_token_id, *before], after


def label_id(tokenizer, label: str) -> int:
    ids = tokenizer(f" {label}", add_special_tokens=False).input_ids
    if len(ids) != 1:
        raise ValueError(f"the label {label!r} is {len(ids)} tokens for this tokenizer; ranking here takes one")
    return ids[0]


def _is_causal(model) -> bool:
    return bool(getattr(model.config, "causal", False))


def _right_padded(rows: list[list[int]], pad: int) -> tuple[torch.LongTensor, torch.LongTensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids, mask


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


@torch.no_grad()
def slot_log_probs(model, tokenizer, prompts: Sequence[FewShotPrompt], batch_size: int = BATCH) -> torch.Tensor:
    """(prompts, vocabulary) log-probabilities of the answer's slot given the rest: for the diffusion model the
    slot masked between what precedes and what follows; for the causal one the next token after what precedes."""
    causal, device = _is_causal(model), model_device(model)
    rows = [encode(tokenizer, p) for p in prompts]
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        if causal:
            ids, mask = _right_padded([b for b, _ in chunk], _pad_id(tokenizer))
            slot = torch.tensor([len(b) - 1 for b, _ in chunk])
        else:
            ids, mask = _right_padded([[*b, model.config.mask_token_id, *a] for b, a in chunk], _pad_id(tokenizer))
            slot = torch.tensor([len(b) for b, _ in chunk])
        logits = logits_of(model(ids.to(device), attention_mask=mask.to(device)))
        out.append(F.log_softmax(logits[torch.arange(len(chunk)), slot.to(device)].float(), -1).cpu())
    return torch.cat(out)


@torch.no_grad()
def joint_log_probs(model, tokenizer, prompts: Sequence[FewShotPrompt], batch_size: int = BATCH) -> torch.Tensor:
    """(prompts, labels of each prompt) log p(whole text with that label) under a causal model, from the label on:
    log p(label | before) + log p(after | before, label)."""
    if not _is_causal(model):
        raise ValueError("joint scoring is for the causal twin; the diffusion model ranks by its slot")
    device = model_device(model)
    texts, starts = [], []
    for p in prompts:
        before, after = encode(tokenizer, p)
        for label in p.labels:
            texts.append([*before, label_id(tokenizer, label), *after])
            starts.append(len(before))
    scores = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start:start + batch_size]
        ids, mask = _right_padded(chunk, _pad_id(tokenizer))
        ids, mask = ids.to(device), mask.to(device)
        logp = F.log_softmax(logits_of(model(ids[:, :-1], attention_mask=mask[:, :-1])).float(), -1)
        token = logp.gather(-1, ids[:, 1:, None])[..., 0]  # log p of token i+1 given up to i
        keep = mask[:, 1:].bool().clone()
        for i, s in enumerate(starts[start:start + batch_size]):
            keep[i, :s - 1] = False  # from the label on
        scores.append((token * keep).sum(-1).cpu())
    return torch.cat(scores).view(len(prompts), -1)


def ranked_answers(model, tokenizer, prompts: Sequence[FewShotPrompt], joint: bool = False,
                   batch_size: int = BATCH) -> list[str]:
    """The best-scoring of each prompt's labels (see the module's docstring for the scores)."""
    if joint:
        scores = joint_log_probs(model, tokenizer, prompts, batch_size)
        return [p.labels[int(i)] for p, i in zip(prompts, scores.argmax(-1))]
    log_probs = slot_log_probs(model, tokenizer, prompts, batch_size)
    answers = []
    for p, row in zip(prompts, log_probs):
        ids = [label_id(tokenizer, label) for label in p.labels]
        answers.append(p.labels[int(row[ids].argmax())])
    return answers


def first_word(text: str) -> str:
    """What an answer says: its first word (the rest of the line, the next lines are not the answer)."""
    words = text.strip().split()
    return words[0] if words else ""


def answer_of(tokenizer, ids: list[int]) -> str:
    """The first word of generated tokens, special tokens left out: after the last question of a 16-example
    prompt (the most a training document holds) a model rightly ends the document, and "white<|endoftext|>" is
    the answer white."""
    return first_word(tokenizer.decode(ids, skip_special_tokens=True))


@torch.no_grad()
def generated_answers(model, tokenizer, prompts: Sequence[FewShotPrompt], batch_size: int = BATCH,
                      tokens: int = 2) -> list[str]:
    """Greedy answers, ``tokens`` long (the label and the end of its line), each cut to its first word.

    The diffusion model: the library's sampler, one token per step; in the ``after`` layout the tokens that follow
    the slot are pinned and the sampler fills the slot alone. The
    causal twin: left to right after what precedes the slot."""
    causal, device = _is_causal(model), model_device(model)
    encoded = [encode(tokenizer, p) for p in prompts]
    answers: list[str] = [""] * len(prompts)
    # Rows are batched with others of the same number of tokens after the slot: the canvas then ends where each
    # row's text ends, and a row's answer does not depend on the rows beside it.
    groups: dict[int, list[int]] = {}
    for i, (_, after) in enumerate(encoded):
        groups.setdefault(len(after), []).append(i)
    for following, members in sorted(groups.items()):
        for start in range(0, len(members), batch_size):
            rows = members[start:start + batch_size]
            ids, mask = left_padded([encoded[i][0] for i in rows], _pad_id(tokenizer))
            ids, mask = ids.to(device), mask.to(device)
            if causal:
                new = generate_autoregressive(model, ids, tokens, attention_mask=mask)[:, ids.shape[1]:]
            elif following == 0:
                new = generate(model, ids, mask, steps=tokens, gen_length=tokens, block_length=tokens)[:, ids.shape[1]:]
            else:  # the slot, then what follows it pinned
                pins = torch.tensor([[-1, *encoded[i][1]] for i in rows], dtype=torch.long)
                out = generate(model, ids, mask, steps=1, gen_length=1 + following, block_length=1 + following,
                               constraints=pins)
                new = out[:, ids.shape[1]:ids.shape[1] + 1]
            for i, row in zip(rows, new):
                answers[i] = answer_of(tokenizer, row.tolist())
    return answers


def accuracy(answers: Sequence[str], prompts: Sequence[FewShotPrompt]) -> dict:
    """{"accuracy", "se" (binomial standard error), "n"} of answers against the prompts' answers."""
    n = len(prompts)
    if n == 0 or len(answers) != n:
        raise ValueError(f"need one answer per prompt, got {len(answers)} for {n}")
    p = sum(a == q.answer for a, q in zip(answers, prompts)) / n
    return {"accuracy": p, "se": math.sqrt(p * (1 - p) / n), "n": n}


def copy_any_label(prompts: Sequence[FewShotPrompt]) -> float:
    """The expected score of answering with the label of a random example, key ignored: what reading the labels
    but not the keys gets (chance where a prompt has no examples)."""
    scores = []
    for p in prompts:
        if p.examples:
            scores.append(sum(v == p.answer for _, v in p.examples) / len(p.examples))
        else:
            scores.append(1 / len(p.labels))
    return sum(scores) / len(scores)
