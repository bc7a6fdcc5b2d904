"""What a denoising run asks for, checked once: :func:`prepare` turns prompts and options into :class:`Run`
requests for the step engine (:mod:`engine`), raising a ValueError before any model runs.

Every driver (``denoise``/``generate``, ``generate_many``, the shared sampler) starts its runs here, so the
checks, the seeded generator, pinned and forbidden tokens and the logits hooks are read the same way
everywhere, and what a driver cannot do is refused by name (``unsupported``), never ignored.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch

from ..model.adapters import Denoiser, _config_value, as_denoiser
from .hooks import StepRecord
from .sampler_config import SamplerConfig
from .update import SamplingRules, resolve_rules

Pins = Mapping[int, int] | torch.Tensor  # {generation position: token} for every row, or (rows, G) ids, -1 = none
Forbid = Iterable[int] | Mapping[int, Iterable[int]]  # tokens never written anywhere, or {position: tokens}


@dataclass(eq=False)
class Run:
    """One request to the engine: rows (prompts of one length) that start together and go through their blocks
    together, one :class:`StepRecord` a step. Positions (pins, forbids, records) count on the run's own canvas,
    prompt followed by generation, whatever padding the engine adds around it."""

    prompt: torch.LongTensor  # (rows, P)
    attention: torch.LongTensor | None = None  # (rows, P), 0 on the caller's left padding
    pins: torch.LongTensor | None = None  # (rows, G), -1 where nothing is pinned
    generator: torch.Generator | None = None  # None: the engine's shared generator
    logits_hooks: list[Callable] = field(default_factory=list)
    forbidden: list[tuple[int, int, int]] = field(default_factory=list)  # (row, position, token)
    forbid_anywhere: torch.LongTensor | None = None  # token ids never committed at any position
    observe: bool = False  # records carry predictions (someone reads them)
    steering: str | None = None  # why this run's records cannot steer it (None: they can)
    on_step: Callable[[StepRecord], None] | None = None  # called by the engine with every record
    # kept by the engine
    first_slot: int = -1
    block: int = 0
    block_step: int = 0
    edit_steps: int = 0  # steps taken in the block after its last mask was filled (token editing)
    steps: int = 0
    record: StepRecord | None = None  # the last step's
    held: bool = False  # skipped by the engine's steps until released (a consumer not yet asking)
    stopped: bool = False
    finished: bool = False
    error: BaseException | None = None
    output: torch.LongTensor | None = None  # (rows, P + G) once finished

    @property
    def rows(self) -> int:
        return self.prompt.shape[0]

    @property
    def prompt_length(self) -> int:
        return self.prompt.shape[1]

    @property
    def slots(self) -> slice:
        """Its rows of the engine's canvas (set when the engine takes it)."""
        return slice(self.first_slot, self.first_slot + self.rows)


@dataclass
class Prepared:
    """A model ready to denoise and the runs asked of it."""

    model: Denoiser
    config: SamplerConfig
    rules: SamplingRules
    runs: list[Run]
    generator: torch.Generator | None  # the seeded generator (runs with generator=None share it)


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


def as_prompt_list(prompts, device) -> list[torch.LongTensor]:
    """Prompts of any lengths as 1-D LongTensors (a (1, length) prompt counts as one)."""
    rows = []
    for i, p in enumerate(prompts):
        p = torch.as_tensor(p, dtype=torch.long, device=device)
        if p.dim() == 2 and p.shape[0] == 1:
            p = p[0]
        if p.dim() != 1:
            raise ValueError(f"prompt {i} must be a sequence of token ids (shape (length,)), got shape "
                             f"{tuple(p.shape)}")
        rows.append(p)
    return rows


def check_against_model(config: SamplerConfig, model: Denoiser, longest_prompt: int, shortest_prompt: int) -> None:
    """What a config cannot do with this model and these prompt lengths, as a ValueError."""
    context = model.context_length
    if context is not None and longest_prompt + config.gen_length > context:
        raise ValueError(f"prompt ({longest_prompt} tokens) plus generation ({config.gen_length} tokens) is longer "
                         f"than the model's context of {context} tokens")
    if shortest_prompt == 0 and config.cfg_scale > 0:
        raise ValueError("classifier-free guidance (cfg_scale > 0) needs a non-empty prompt")
    if config.cache and not model.supports_block_cache:
        model.new_block_cache()  # raises, naming the model and its family


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


def pins_of(constraints: Pins | None, rows: int, gen_length: int, vocab_size: int | None,
            device) -> torch.LongTensor | None:
    """Pinned tokens as (rows, gen_length) ids, -1 where nothing is pinned (None: no pins)."""
    if constraints is None or (not isinstance(constraints, torch.Tensor) and not constraints):
        return None
    if isinstance(constraints, torch.Tensor):
        pins = constraints.to(device, torch.long)
        if pins.shape != (rows, gen_length):
            raise ValueError(f"constraints tensor shape {tuple(pins.shape)} differs from the generation's "
                             f"{(rows, gen_length)} (batch, gen_length)")
        if vocab_size is not None and bool((pins >= vocab_size).any()):
            raise ValueError(f"constraint token {int(pins.max())} is outside the vocabulary")
        return pins
    return pinned_tokens(constraints, gen_length, vocab_size, device).expand(rows, -1).clone()


def check_forbidden(token: int, position: int, prompt_length: int, gen_length: int, vocab_size: int | None) -> None:
    if not prompt_length <= position < prompt_length + gen_length:
        raise ValueError(f"cannot forbid a token at position {position}: outside the generation "
                         f"[{prompt_length}, {prompt_length + gen_length})")
    if vocab_size is not None and not 0 <= token < vocab_size:
        raise ValueError(f"forbidden token {token} is outside the vocabulary of {vocab_size}")


def forbidden_of(forbid: Forbid | None, rows: int, prompt_length: int, gen_length: int, vocab_size: int | None,
                 device) -> tuple[list[tuple[int, int, int]], torch.LongTensor | None]:
    """``forbid`` as (row, canvas position, token) triples and a tensor of tokens forbidden everywhere.
    Positions in a mapping count from the start of the generation, as pins do."""
    if not forbid:
        return [], None
    if isinstance(forbid, Mapping):
        triples = []
        for pos, tokens in forbid.items():
            for token in ([tokens] if isinstance(tokens, int) else tokens):
                check_forbidden(int(token), prompt_length + pos, prompt_length, gen_length, vocab_size)
                triples.extend((row, prompt_length + pos, int(token)) for row in range(rows))
        return triples, None
    tokens = sorted({int(t) for t in forbid})
    for token in tokens:
        check_forbidden(token, prompt_length, prompt_length, gen_length, vocab_size)
    return [], torch.tensor(tokens, dtype=torch.long, device=device)


def prepare(model, prompts, config: SamplerConfig, *, each_prompt_a_run: bool = False, attention_mask=None,
            constraints: Pins | None = None, forbid: Forbid | None = None, generator: torch.Generator | None = None,
            logits_hooks=None, observe: bool = False, mask_id: int | None = None,
            unsupported: Mapping[str, str] | None = None) -> Prepared:
    """Check a request and make its runs: one run of all rows of a (batch, P) ``prompts`` (``denoise``), or,
    with ``each_prompt_a_run``, one run per prompt of a list of any lengths (``generate_many``, the shared
    sampler). ``unsupported``: {option: why} that this driver refuses when asked for (``cache``, ...).
    ``generator``: the runs' shared randomness (else one seeded by ``config.seed``)."""
    model = as_denoiser(model, mask_id)  # ids -> aligned logits, whatever the family
    for option, why in (unsupported or {}).items():
        if _asked(option, config, attention_mask, constraints, forbid, logits_hooks):
            raise ValueError(why)
    device, vocab = model.device, model.vocab_size
    batches = [p[None] for p in as_prompt_list(prompts, device)] if each_prompt_a_run else \
        [as_prompt_batch(prompts, device)]
    for i, batch in enumerate(batches):
        check_token_ids(batch[0] if each_prompt_a_run else batch, vocab, f"prompt {i}" if each_prompt_a_run else "prompt")
    if config.eos_token_ids is not None and vocab is not None:
        outside = [t for t in config.eos_token_ids if not 0 <= t < vocab]
        if outside:
            raise ValueError(f"eos_token_ids {outside} are outside the model's vocabulary [0, {vocab})")
    if batches:
        lengths = [b.shape[1] for b in batches]
        check_against_model(config, model, max(lengths), min(lengths))
    rules = resolve_rules(config, model)
    if config.edit_threshold is not None and not _config_value(model.model, "token_editing"):
        warnings.warn(f"{type(model.model).__name__} was not trained to edit (its config has no token_editing): "
                      "an absorbing-state model never learnt to predict visible tokens, so its edits follow no "
                      "objective; a model trained with edit_ratio > 0 edits on purpose", stacklevel=3)
    if generator is None and config.seed is not None:
        generator = torch.Generator(device=device).manual_seed(config.seed)
    hooks = as_hook_list(logits_hooks)
    runs = []
    for batch in batches:
        rows, length = batch.shape
        triples, anywhere = forbidden_of(forbid, rows, length, config.gen_length, vocab, device)
        runs.append(Run(batch, _attention_of(attention_mask, batch), pins_of(constraints, rows, config.gen_length,
                                                                             vocab, device),
                        logits_hooks=list(hooks), forbidden=triples, forbid_anywhere=anywhere, observe=observe))
    return Prepared(model, config, rules, runs, generator)


def _asked(option: str, config: SamplerConfig, attention_mask, constraints, forbid, logits_hooks) -> bool:
    given = {"attention_mask": attention_mask, "constraints": constraints, "forbid": forbid,
             "logits_hooks": logits_hooks}
    return bool(given[option] if option in given else getattr(config, option))


def _attention_of(attention_mask, prompt: torch.LongTensor) -> torch.LongTensor | None:
    if attention_mask is None:
        return None
    attention_mask = torch.as_tensor(attention_mask, device=prompt.device)
    if attention_mask.shape != prompt.shape:
        raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} differs from the prompt's "
                         f"{tuple(prompt.shape)}")
    return attention_mask.long()
