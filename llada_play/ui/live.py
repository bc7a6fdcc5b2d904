"""Running the sampler in a background thread and consuming its steps as they happen (for UIs)."""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..diffusion.hooks import StepRecord
from ..diffusion.sampling import generate
from ..diffusion.trace import Trace, TraceRecorder


@dataclass
class GenerationDone:
    output: torch.LongTensor
    trace: Trace | None


class StepGate:
    """A step hook that pauses the run after each step until :meth:`release` is called (step mode).

    While paused, the UI can inspect the last record and call ``record.force``/``forbid`` on it; those
    take effect when the run resumes. ``auto`` lets steps pass without waiting.
    """

    def __init__(self, auto: bool = True, idle_timeout: float | None = 1800.0):
        self.auto = auto
        self.idle_timeout = idle_timeout  # a paused run nobody resumes ends by itself (abandoned UI sessions)
        self._go = threading.Event()
        self._cancelled = False
        self.last: StepRecord | None = None

    def __call__(self, record: StepRecord) -> None:
        self.last = record
        if self._cancelled:
            record.stop()
            return
        if not self.auto:
            self._go.clear()
            resumed = self._go.wait(self.idle_timeout)
            if self._cancelled or not resumed:
                record.stop()

    def release(self) -> None:
        self._go.set()

    def cancel(self) -> None:
        self._cancelled = True
        self._go.set()


def iterate_generation(model, prompt, tokenizer=None, gate: StepGate | None = None, record_trace: bool = True,
                       **kwargs) -> Iterator[StepRecord | GenerationDone]:
    """Yield every :class:`StepRecord` as the sampler produces it, then a :class:`GenerationDone`.

    The sampler runs in a thread; errors are raised here. ``kwargs`` go to :func:`generate`.
    """
    events: queue.Queue = queue.Queue()
    recorder = TraceRecorder(tokenizer, params={k: v for k, v in kwargs.items() if isinstance(v, (int, float, str))}) \
        if record_trace else None
    hooks = list(kwargs.pop("hooks", None) or [])
    # the recorder goes after user hooks, but it reads forced tokens lazily, so order does not matter
    hooks += [h for h in (recorder, events.put, gate) if h is not None]

    def work():
        try:
            out = generate(model, prompt, hooks=hooks, **kwargs)
            events.put(GenerationDone(out, recorder.trace() if recorder and recorder.records else None))
        except BaseException as err:  # handed to the consumer
            events.put(err)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    while True:
        item = events.get()
        if isinstance(item, BaseException):
            raise item
        yield item
        if isinstance(item, GenerationDone):
            break
    thread.join()


class Stepper:
    """Drive a run one step at a time from the outside (the app's step mode, notebooks).

    Each :meth:`step` lets the sampler do one denoising step and returns its :class:`StepRecord` (or a
    :class:`GenerationDone` at the end). Between steps the run is paused: :meth:`candidates` shows the model's
    top-k at a masked position for the last step, :meth:`force` commits a token there by hand (through the
    record's steering hook, so the trace records it), :meth:`finish` runs to the end, :meth:`stop` ends early.
    """

    def __init__(self, model, prompt, tokenizer=None, topk: int = 5, **kwargs):
        self.model, self.tokenizer = model, tokenizer
        self.confidences: dict[int, float] = {}  # position -> confidence of its commit (row 0), for viewers
        self.gate = StepGate(auto=False)
        self._events = iterate_generation(model, prompt, tokenizer, gate=self.gate, topk=topk, **kwargs)
        self.last: StepRecord | None = None
        self.done: GenerationDone | None = None
        self._started = False

    def step(self) -> StepRecord | GenerationDone:
        if self.done is not None:
            return self.done
        if self._started:
            self.gate.release()
        self._started = True
        item = next(self._events)
        if isinstance(item, GenerationDone):
            self.done = item
        else:
            self.last = item
            for pos in item.committed[0].nonzero().flatten().tolist():
                self.confidences[pos] = float(item.confidence[0, pos])
        return item

    def candidates(self, position: int, row: int = 0) -> list[tuple[int, float]]:
        """The last step's top-k (token, probability) at a still-masked position."""
        record = self.last
        if record is None:
            raise ValueError("no step has run yet")
        if record.x_after[row, position] != record.mask_id:
            raise ValueError(f"position {position} is already committed")
        if record.topk_ids is None:
            raise ValueError("the run was started without top-k recording")
        ids = record.topk_ids[row, position].tolist()
        probs = record.topk_probs[row, position].tolist()
        return [(t, p) for t, p in zip(ids, probs) if t >= 0]

    def force(self, position: int, token: int, row: int = 0) -> None:
        """Commit ``token`` at ``position`` before the next step."""
        record = self.last
        if record is None or self.done is not None:
            raise ValueError("nothing to steer: the run has not started or has finished")
        if not record.prompt_length <= position < record.x_after.shape[1]:
            raise ValueError(f"position {position} is outside the generation")
        if record.x_after[row, position] != record.mask_id or any(
                f[0] == row and f[1] == position for f in record.forced):
            raise ValueError(f"position {position} is already committed")
        record.force(position, token, row)

    def finish(self) -> GenerationDone:
        self.gate.auto = True
        while not isinstance(self.step(), GenerationDone):
            pass
        return self.done

    def stop(self) -> GenerationDone:
        self.gate.cancel()
        while self.done is None:
            self.step()
        return self.done
