"""Running the sampler in a background thread and consuming its steps as they happen (for UIs)."""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .hooks import StepRecord
from .sampling import generate
from .trace import Trace, TraceRecorder


@dataclass
class GenerationDone:
    output: torch.LongTensor
    trace: Trace | None


class StepGate:
    """A step hook that pauses the run after each step until :meth:`release` is called (step mode).

    While paused, the UI can inspect the last record and call ``record.force``/``forbid`` on it; those
    take effect when the run resumes. ``auto`` lets steps pass without waiting.
    """

    def __init__(self, auto: bool = True):
        self.auto = auto
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
            self._go.wait()
            if self._cancelled:
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
