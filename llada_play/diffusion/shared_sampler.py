"""Many callers, one model: denoising runs started from many threads (the app's browser sessions) share their
forward passes.

One worker thread drives the step engine (:mod:`engine`). Runs are grouped by what a batch must share: the
sampler settings other than the seed, and the canvas length (prompt + generation, so that no row is padded).
Each group is one :class:`~.engine.DenoisingEngine`: every run takes one step per forward pass, each in its own
block, and a finished (or cancelled) run's slot goes to the next waiting run at the next step. A run keeps its
own seed (its own generator), pins, forbidden tokens, logits hooks, step records and output, so its caller sees
the tokens ``denoise`` gives it alone; the only difference is the rounding of a larger matrix product, which
could flip a near tie.

Steering: a run started with ``steer=True`` waits after each step until its caller asks for the next one, and
what the caller asked through the record (force / forbid / stop) is handed back to the worker, which applies
it before the run's next step, exactly as ``denoise`` does. Other runs stream ahead of their caller, and their
records refuse to steer (``close()`` still ends them).

Runs that cannot share a batch run as plain ``denoise`` runs in the caller's thread (the same engine, alone):
the block KV cache (its windowed passes recompute one window for the whole batch), a batch of prompts.
"""
from __future__ import annotations

import json
import queue
import threading
from collections import deque
from dataclasses import dataclass, field

import torch

from ..model.adapters import as_denoiser
from .engine import DenoisingEngine
from .hooks import StepRecord
from .requests import Forbid, Pins, Run, as_prompt_batch, prepare
from .sampler_config import SamplerConfig
from .sampling import Denoising, denoise
from .update import SamplingRules

_END = object()
STREAMING = ("this shared run streams its records ahead of its caller, so they cannot steer it: start it with "
             "steer=True to force, forbid or stop through its records (close() ends it either way)")


@dataclass(eq=False)
class _Ticket:
    """What the worker keeps of a run: never the caller's handle, so that a handle dropped without ``close``
    (a browser gone) is collected and its ``__del__`` frees the slot."""

    run: Run
    key: tuple
    items: queue.Queue = field(default_factory=queue.Queue)
    answered: StepRecord | None = None  # a steerable run's record, handed back when its caller asks again
    closed: bool = False
    finished: bool = False


class SharedRun:
    """One caller's run in a shared batch, used like :class:`~.sampling.Denoising`: iterate it for its
    :class:`StepRecord` s (a batch of one each); :attr:`output` once it is over; :meth:`close` to abandon it,
    which frees its slot (so does dropping it). Its records steer it only if it was started with ``steer=True``
    (see the module's docstring)."""

    def __init__(self, sampler: SharedSampler, ticket: _Ticket, gen_length: int):
        self._sampler, self._ticket, self._gen_length = sampler, ticket, gen_length
        self._last: StepRecord | None = None

    def __iter__(self) -> SharedRun:
        return self

    def __next__(self) -> StepRecord:
        ticket, last = self._ticket, self._last
        if last is not None and ticket.run.steering is None:  # asking again: the worker may go on
            if ticket.finished and last.forced:
                row, pos, _ = last.forced[0]
                raise ValueError(f"cannot force a token at row {row}, position {pos}: the run has ended")
            self._sampler._answer(ticket, last)
        item = ticket.items.get()
        if item is _END:
            ticket.items.put(_END)  # iterating again stays over
            raise StopIteration
        if isinstance(item, BaseException):
            ticket.items.put(_END)
            raise item
        self._last = item
        return item

    def ready(self) -> int:
        """How many steps are waiting to be read (a slow reader can skip drawing all but the last)."""
        return self._ticket.items.qsize()

    @property
    def output(self) -> torch.LongTensor:
        """Prompt + generation, shape (1, P + G): final once the run is over; before that (or when closed
        early), the canvas as far as read, masked positions still masked."""
        run = self._ticket.run
        if run.output is not None:
            return run.output
        if self._last is not None:
            return self._last.x_after
        canvas = torch.full((1, run.prompt_length + self._gen_length), self._sampler.model.mask_id,
                            dtype=torch.long)
        canvas[:, :run.prompt_length] = run.prompt.cpu()
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
        self._answers: deque[_Ticket] = deque()  # steerable runs whose caller asked for the next step
        self._groups: dict[tuple, DenoisingEngine] = {}
        self._tickets: dict[int, _Ticket] = {}  # id of a Run in a group -> its ticket
        self._configs: dict[tuple, tuple[SamplerConfig, SamplingRules]] = {}
        self._worker: threading.Thread | None = None
        self._stopping = False

    def start(self, prompt, config: SamplerConfig, constraints: Pins | None = None, *,
                forbid: Forbid | None = None, logits_hooks=None, steer: bool = False) -> SharedRun | Denoising:
        """Start a run (validated now, in the caller's thread, as ``denoise`` does); iterate it for its steps.
        ``constraints``, ``forbid`` and ``logits_hooks`` mean what they mean in ``denoise`` (hooks run in the
        worker thread, on this run's canvas alone); ``steer``: see the module's docstring."""
        model = self.model
        prompt = as_prompt_batch(prompt, model.device)
        if prompt.shape[0] != 1 or config.cache:
            return denoise(model, prompt, config, constraints=constraints, forbid=forbid, logits_hooks=logits_hooks)
        prepared = prepare(model, prompt, config, constraints=constraints, forbid=forbid, logits_hooks=logits_hooks,
                           observe=True)
        (run,) = prepared.runs
        run.generator = prepared.generator
        run.steering = None if steer else STREAMING
        shared = config.replace(seed=None)
        key = (json.dumps(shared.to_dict(), sort_keys=True), run.prompt_length)
        ticket = _Ticket(run, key)
        run.on_step = self._deliver(ticket, steer)
        with self._cond:
            if self._stopping:
                raise RuntimeError("this SharedSampler is closed")
            self._configs.setdefault(key, (shared, prepared.rules))  # the rules do not depend on the seed
            self._waiting.append(ticket)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="llada-play-shared-sampler", daemon=True)
                self._worker.start()
            self._cond.notify()
        return SharedRun(self, ticket, config.gen_length)

    @property
    def active(self) -> int:
        """Runs waiting or being denoised now."""
        with self._cond:
            return len(self._waiting) + len(self._tickets)

    def close(self) -> None:
        """Stop the worker; runs still going end with an error."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._worker is not None:
            self._worker.join(timeout=30)

    @staticmethod
    def _deliver(ticket: _Ticket, steer: bool):
        def on_step(record: StepRecord) -> None:
            ticket.run.held = steer and not ticket.run.finished  # until its caller asks for the next step
            ticket.items.put(record)
        return on_step

    def _answer(self, ticket: _Ticket, record: StepRecord) -> None:
        with self._cond:
            ticket.answered = record
            self._answers.append(ticket)
            self._cond.notify()

    def _cancel(self, ticket: _Ticket) -> None:
        with self._cond:
            ticket.closed = True
            if ticket in self._waiting:
                self._waiting.remove(ticket)
            self._cond.notify()  # the worker drops it from its group before the next step

    def _admit(self) -> None:
        """Closed runs out; answered runs steered and released; waiting runs into a free slot of their group (in
        arrival order)."""
        for ticket in [t for t in self._tickets.values() if t.closed]:
            self._groups[ticket.key].remove(ticket.run)
            del self._tickets[id(ticket.run)]
        while self._answers:
            ticket = self._answers.popleft()
            if ticket.closed or ticket.finished:
                continue
            try:
                self._groups[ticket.key].steer(ticket.run, ticket.answered)
            except ValueError as err:
                self._groups[ticket.key].remove(ticket.run)
                self._end(ticket, err)
                continue
            ticket.run.held = False
            if ticket.run.finished:  # stopped, or forced tokens filled its last block
                self._end(ticket)
        still_waiting: deque[_Ticket] = deque()
        for ticket in self._waiting:
            group = self._groups.get(ticket.key)
            if group is None:
                config, rules = self._configs[ticket.key]
                group = DenoisingEngine(self.model, config, rules, self.slots, longest=ticket.run.prompt_length)
                self._groups[ticket.key] = group
            if not group.add(ticket.run):
                still_waiting.append(ticket)
                continue
            self._tickets[id(ticket.run)] = ticket
            if ticket.run.finished:  # pins filled every block: nothing to denoise
                self._end(ticket)
        self._waiting = still_waiting

    def _end(self, ticket: _Ticket, error: BaseException | None = None) -> None:
        self._tickets.pop(id(ticket.run), None)
        ticket.finished = True
        ticket.items.put(error if error is not None else _END)

    def _idle(self) -> bool:
        """Nothing to do: every run waits for its caller, and no waiting run has room in its group."""
        admissible = any(t.key not in self._groups or self._groups[t.key].fits(t.run) for t in self._waiting)
        return not admissible and not self._answers and \
            all(t.run.held and not t.closed for t in self._tickets.values())

    def _work(self) -> None:
        torch.set_grad_enabled(False)  # a thread's own setting
        if self.threads is not None:
            torch.set_num_threads(self.threads)  # this thread's own too
        while True:
            with self._cond:
                while not self._stopping and self._idle():
                    self._cond.wait()
                if self._stopping:
                    for ticket in [*self._waiting, *self._tickets.values()]:
                        self._end(ticket, RuntimeError("the shared sampler was closed"))
                    return
                self._admit()
                groups = [g for g in self._groups.values() if any(not run.held for run in g.runs)]
            for group in groups:
                self._step(group)
            with self._cond:
                self._groups = {k: g for k, g in self._groups.items() if g.runs}

    def _step(self, group: DenoisingEngine) -> None:
        runs = [run for run in group.runs if not run.held]
        try:
            finished = group.step()
        except Exception as err:  # e.g. out of memory: every run of the group hears of it
            with self._cond:
                for run in runs:
                    group.remove(run)
                    self._end(self._tickets[id(run)], err)
            return
        self.passes += 1
        self.rows_stepped += len(runs)
        with self._cond:
            for run in finished:
                self._end(self._tickets[id(run)], run.error)
