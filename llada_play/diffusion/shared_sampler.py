"""Many callers, one model: denoising runs started from many threads (the app's browser sessions) share their
forward passes.

One worker thread does the model's work. Runs are grouped by what a batch must share: the sampler settings
other than the seed, and the canvas length (prompt + generation, so that no row is padded). Each group is a
:class:`~.batching.ContinuousBatch`: every busy row takes one step per forward pass, each in its own block, and a
finished (or cancelled) row's slot goes to the next waiting run at the next step. A run keeps its own seed
(its own generator), pins, step records and output, so its caller sees the tokens ``denoise`` gives it alone;
the only difference is the rounding of a larger matrix product, which could flip a near tie.

Runs that cannot share a batch run as plain ``denoise`` runs in the caller's thread: the block KV cache (its
windowed passes recompute one window for the whole batch), a batch of prompts.
"""
from __future__ import annotations

import json
import queue
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ..model.adapters import as_denoiser
from .batching import BatchRow, ContinuousBatch
from .hooks import StepRecord
from .sampler_config import SamplerConfig
from .sampling import Denoising, as_prompt_batch, denoise, pinned_tokens
from .update import check_against_model, check_token_ids, resolve_rules

_END = object()


@dataclass(eq=False)
class _Ticket:
    """What the worker keeps of a run: never the caller's handle, so that a handle dropped without ``close``
    (a browser gone) is collected and its ``__del__`` frees the slot."""

    row: BatchRow
    key: tuple
    items: queue.Queue = field(default_factory=queue.Queue)
    closed: bool = False
    finished: bool = False


class SharedRun:
    """One caller's run in a shared batch, used like :class:`~.sampling.Denoising`: iterate it for its
    :class:`StepRecord` s (a batch of one each); :attr:`output` once it is over; :meth:`close` to abandon it,
    which frees its slot (so does dropping it). Records are observations: a shared run is not steered through
    them."""

    def __init__(self, sampler: SharedSampler, ticket: _Ticket):
        self._sampler, self._ticket = sampler, ticket
        self._last: torch.LongTensor | None = None

    def __iter__(self) -> SharedRun:
        return self

    def __next__(self) -> StepRecord:
        items = self._ticket.items
        item = items.get()
        if item is _END:
            items.put(_END)  # iterating again stays over
            raise StopIteration
        if isinstance(item, BaseException):
            items.put(_END)
            raise item
        self._last = item.x_after
        return item

    def ready(self) -> int:
        """How many steps are waiting to be read (a slow reader can skip drawing all but the last)."""
        return self._ticket.items.qsize()

    @property
    def output(self) -> torch.LongTensor:
        """Prompt + generation, shape (1, P + G): final once the run is over; before that (or when closed
        early), the canvas as far as read, masked positions still masked."""
        row = self._ticket.row
        if row.output is not None:
            return row.output[None]
        if self._last is not None:
            return self._last
        gen_length = self._sampler.config_of(self._ticket.key).gen_length
        canvas = torch.full((1, len(row.prompt) + gen_length), self._sampler.model.mask_id, dtype=torch.long)
        canvas[0, :len(row.prompt)] = row.prompt.cpu()
        return canvas

    def finish(self) -> torch.LongTensor:
        for _ in self:
            pass
        return self.output

    def close(self) -> None:
        """Abandon the run: it leaves its batch before the next step (nothing more is computed for it)."""
        if not self._ticket.finished and not self._ticket.closed:
            self._sampler._cancel(self._ticket)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


class SharedSampler:
    """Denoising runs from many threads batched together on one model (see the module's docstring).

    ``slots``: rows per forward pass in one group (more runs wait for a free slot). ``threads``: torch's
    intra-op threads for the forward passes (torch's setting is per thread; None keeps the process's), e.g. one
    core fewer than the machine has, so that the callers streaming the runs are not starved. ``passes`` counts
    the forward passes made, ``rows_stepped`` the row-steps they served (their ratio is the mean batch size).
    """

    def __init__(self, model, slots: int = 32, mask_id: int | None = None, threads: int | None = None):
        for name, value in (("slots", slots), ("threads", 1 if threads is None else threads)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.model = as_denoiser(model, mask_id)
        self.slots, self.threads = slots, threads
        self.passes = self.rows_stepped = 0
        self._cond = threading.Condition()
        self._waiting: deque[_Ticket] = deque()
        self._groups: dict[tuple, ContinuousBatch] = {}
        self._runs: dict[int, _Ticket] = {}  # id of a BatchRow in a group -> its run
        self._configs: dict[tuple, SamplerConfig] = {}
        self._worker: threading.Thread | None = None
        self._stopping = False

    def denoise(self, prompt, config: SamplerConfig,
                constraints: Mapping[int, int] | None = None) -> SharedRun | Denoising:
        """Start a run (validated now, in the caller's thread, as ``denoise`` does); iterate it for its steps."""
        model = self.model
        prompt = as_prompt_batch(prompt, model.device)
        if prompt.shape[0] != 1 or config.cache:
            return denoise(model, prompt, config, constraints=constraints)
        check_token_ids(prompt, model.vocab_size)
        check_against_model(config, model, prompt.shape[1], prompt.shape[1])
        resolve_rules(config, model)
        pins = pinned_tokens(constraints, config.gen_length, model.vocab_size, model.device) if constraints else None
        generator = None if config.seed is None else \
            torch.Generator(device=model.device).manual_seed(config.seed)
        shared = config.replace(seed=None)
        key = (json.dumps(shared.to_dict(), sort_keys=True), prompt.shape[1])
        row = BatchRow(prompt[0], generator, pins)
        ticket = _Ticket(row, key)
        row.on_step = ticket.items.put
        with self._cond:
            if self._stopping:
                raise RuntimeError("this SharedSampler is closed")
            self._configs.setdefault(key, shared)
            self._waiting.append(ticket)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="llada-play-shared-sampler", daemon=True)
                self._worker.start()
            self._cond.notify()
        return SharedRun(self, ticket)

    def config_of(self, key: tuple) -> SamplerConfig:
        return self._configs[key]

    @property
    def active(self) -> int:
        """Runs waiting or being denoised now."""
        with self._cond:
            return len(self._waiting) + len(self._runs)

    def close(self) -> None:
        """Stop the worker; runs still going end with an error."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._worker is not None:
            self._worker.join(timeout=30)

    def _cancel(self, ticket: _Ticket) -> None:
        with self._cond:
            ticket.closed = True
            if ticket in self._waiting:
                self._waiting.remove(ticket)
            self._cond.notify()  # the worker drops it from its group before the next step

    def _admit(self) -> None:
        """Closed runs out; waiting runs into a free slot of their group (in arrival order)."""
        for group in self._groups.values():
            for row in [r for r in group.rows if r is not None and self._runs[id(r)].closed]:
                group.remove(row)
                del self._runs[id(row)]
        still_waiting: deque[_Ticket] = deque()
        for ticket in self._waiting:
            group = self._groups.get(ticket.key)
            if group is None:
                group = ContinuousBatch(self.model, self._configs[ticket.key], self.slots,
                                        longest=len(ticket.row.prompt))
                self._groups[ticket.key] = group
            if not group.free:
                still_waiting.append(ticket)
                continue
            self._runs[id(ticket.row)] = ticket
            if group.add(ticket.row) is not None:  # pins filled every block: nothing to denoise
                self._end(ticket)
        self._waiting = still_waiting

    def _end(self, ticket: _Ticket, error: BaseException | None = None) -> None:
        self._runs.pop(id(ticket.row), None)
        ticket.finished = True
        ticket.items.put(error if error is not None else _END)

    def _work(self) -> None:
        torch.set_grad_enabled(False)  # a thread's own setting
        if self.threads is not None:
            torch.set_num_threads(self.threads)  # this thread's own too
        while True:
            with self._cond:
                while not self._stopping and not self._waiting and not self._runs:
                    self._cond.wait()
                if self._stopping:
                    for ticket in [*self._waiting, *self._runs.values()]:
                        self._end(ticket, RuntimeError("the shared sampler was closed"))
                    return
                self._admit()
                groups = [g for g in self._groups.values() if g.busy]
            for group in groups:
                self._step(group)
            with self._cond:
                self._groups = {k: g for k, g in self._groups.items() if g.busy}

    def _step(self, group: ContinuousBatch) -> None:
        rows = [r for r in group.rows if r is not None]
        try:
            finished = group.step()
        except Exception as err:  # e.g. out of memory: every run of the group hears of it
            with self._cond:
                for row in rows:
                    group.remove(row)
                    self._end(self._runs[id(row)], err)
            return
        self.passes += 1
        self.rows_stepped += len(rows)
        with self._cond:
            for row in finished:
                self._end(self._runs[id(row)])
