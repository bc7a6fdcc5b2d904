"""The reverse process: semi-autoregressive, block-by-block denoising of a masked continuation.

``denoise(model, prompt, config)`` is the run as an iterator: it yields a :class:`StepRecord` after every step
and waits. Between two ``next()`` calls the run is paused; the consumer may steer it through the record
(``record.force``/``forbid``/``stop``), which takes effect when it asks for the next step, or simply stop
iterating (abandon it). ``generate()`` runs it to the end, calling step hooks on every record. Both drive the
step engine (:mod:`engine`) with one run of all the prompt's rows: the lockstep case.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator

import torch

from .engine import DenoisingEngine, fork_run
from .hooks import StepRecord
from .requests import Forbid, Pins, as_hook_list, prepare
from .sampler_config import SamplerConfig


class Denoising:
    """One run of the reverse process, as an iterator of :class:`StepRecord` (see :func:`denoise`)."""

    def __init__(self, model, prompt, config: SamplerConfig, *, attention_mask=None, constraints: Pins | None = None,
                 forbid: Forbid | None = None, generator: torch.Generator | None = None, logits_hooks=None,
                 mask_id: int | None = None, observe: bool = True):
        prepared = prepare(model, prompt, config, attention_mask=attention_mask, constraints=constraints,
                           forbid=forbid, generator=generator, logits_hooks=logits_hooks, observe=observe,
                           mask_id=mask_id)
        self.model, self.config, self.observe = prepared.model, config, observe
        (self._run,) = prepared.runs
        self._run.generator = prepared.generator
        self.prompt_length = self._run.prompt_length
        self._engine = DenoisingEngine(prepared.model, config, prepared.rules, self._run.rows, self.prompt_length)
        self._engine.add(self._run)
        self._closed = False

    def __iter__(self) -> Iterator[StepRecord]:
        return self

    def __next__(self) -> StepRecord:
        run = self._run
        if self._closed:
            raise StopIteration
        if run.record is not None:  # what the consumer asked through the last record, before the next step
            try:
                self._engine.steer(run, run.record)
            except ValueError:
                self._closed = True
                raise
        if run.finished:
            self._closed = True
            if run.error is not None:
                raise run.error
            raise StopIteration
        with torch.no_grad():
            self._engine.step()
        if run.error is not None:
            self._closed = True
            raise run.error
        return run.record

    @property
    def output(self) -> torch.LongTensor:
        """The canvas, prompt + generation (batch, P + G): final once the iterator is exhausted."""
        return self._engine.x

    @property
    def last(self) -> StepRecord | None:
        """The last step's record (what steers the next step), None before the first."""
        return self._run.record

    def finish(self) -> torch.LongTensor:
        """Run the remaining steps; returns :attr:`output`."""
        for _ in self:
            pass
        return self.output

    def close(self) -> None:
        """Abandon the run: masked positions stay masked in :attr:`output`."""
        self._closed = True

    def fork(self) -> Denoising:
        """A second run that goes on from here on its own: the same canvas, step, generator state and what was
        asked through the last record so far; steering one leaves the other as it is."""
        other = copy.copy(self)
        other._engine = self._engine.fork()
        (other._run,) = other._engine.runs if other._engine.runs else (fork_run(self._run),)
        return other


def denoise(model, prompt, config: SamplerConfig | None = None, *, attention_mask: torch.Tensor | None = None,
            constraints: Pins | None = None, forbid: Forbid | None = None, generator: torch.Generator | None = None,
            logits_hooks: Callable | Iterable[Callable] | None = None, mask_id: int | None = None,
            observe: bool = True) -> Denoising:
    """Start denoising ``config.gen_length`` masked tokens after ``prompt`` ((batch, P) or (P,) token ids).

    Iterate the result to run it: each ``next()`` does one step and yields its :class:`StepRecord`; the canvas
    is ``run.output``. ``attention_mask``: (batch, P), 0 on left padding. ``constraints``: {position in the
    generation: token id} pinned before the first step (infilling), or a (batch, gen_length) tensor of per-row pins
    with -1 where nothing is pinned. ``forbid``: token ids never committed anywhere, or {position in the
    generation: token ids} never committed there. ``generator``: randomness (else
    ``config.seed``). ``logits_hooks``: called with a :class:`LogitsContext` and the logits before tokens are
    chosen. ``observe=False`` leaves the records without predictions (``x_after`` is then the live canvas), the
    fast path when nobody reads them. Parameters are validated here, before the first step.
    """
    return Denoising(model, prompt, config or SamplerConfig(), attention_mask=attention_mask, constraints=constraints,
                     forbid=forbid, generator=generator, logits_hooks=logits_hooks, mask_id=mask_id, observe=observe)


@torch.no_grad()
def generate(model, prompt, attention_mask: torch.Tensor | None = None, steps: int = 128, gen_length: int = 128,
             block_length: int = 128, temperature: float = 0.0, cfg_scale: float = 0.0,
             remasking: str = "low_confidence", mask_id: int | None = None, logits_eos_inf: bool = False,
             confidence_eos_eot_inf: bool = False, *, constraints: Pins | None = None, forbid: Forbid | None = None,
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
    run = denoise(model, prompt, config, attention_mask=attention_mask, constraints=constraints, forbid=forbid,
                  generator=generator, logits_hooks=logits_hooks, mask_id=mask_id, observe=bool(hooks))
    for record in run:
        for hook in hooks:
            hook(record)
    return run.output


