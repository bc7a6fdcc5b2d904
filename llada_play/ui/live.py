"""Consuming a run as it happens, for user interfaces: stream its steps, or drive it one step at a time.

Both only iterate :func:`denoise`: no thread, no event. A run is paused simply by not asking for the next
step, and abandoned by dropping it.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch

from ..diffusion.hooks import StepRecord
from ..diffusion.sampler_config import SamplerConfig
from ..diffusion.sampling import denoise
from ..diffusion.shared_sampler import SharedSampler
from ..diffusion.trace import Trace, TraceRecorder

FRAME_INTERVAL = 0.1  # seconds between two redraws of a live canvas: a browser's pace, not the model's
FRAMES_PER_SECOND = 20  # redraws a server sends in all, whatever the number of live canvases


def frame_interval(live_runs: int) -> float:
    """Seconds between two redraws of one canvas when ``live_runs`` canvases stream from the same server: every
    redraw costs the server (HTML, transfer) as much as several model steps, so a class shares a budget of
    redraws. Measured with 16 students on the 2-core CPU: 0.1 s each took 19.5 s for the class, 1 s 10.1 s."""
    return max(FRAME_INTERVAL, live_runs / FRAMES_PER_SECOND)


@dataclass
class GenerationDone:
    output: torch.LongTensor
    trace: Trace | None


def stream(model, prompt, config: SamplerConfig, tokenizer=None, *, record_trace: bool = True,
           constraints: Mapping[int, int] | None = None, forbid=None, logits_hooks=None,
           sampler: SharedSampler | None = None) -> Iterator[StepRecord | GenerationDone]:
    """Yield every :class:`StepRecord` as the sampler makes it, then a :class:`GenerationDone` (with the
    run's :class:`Trace` when ``record_trace``). The sampler's errors are raised before the first step.
    ``constraints``, ``forbid``, ``logits_hooks``: as in ``denoise``. With ``sampler`` the run shares its forward
    passes with other callers' runs (the same tokens); closing this iterator early (a consumer gone) abandons
    the run."""
    options = dict(constraints=constraints, forbid=forbid, logits_hooks=logits_hooks)
    run = sampler.start(prompt, config, **options) if sampler is not None else denoise(model, prompt, config, **options)
    recorder = TraceRecorder(tokenizer, config=config) if record_trace else None
    try:
        for record in run:
            if recorder is not None:
                recorder(record)
            yield record
    finally:
        run.close()
    yield GenerationDone(run.output, recorder.trace() if recorder is not None and recorder.records else None)


def paced(items: Iterator, interval: float | Callable[[], float] = FRAME_INTERVAL) -> Iterator[list]:
    """A stream's items grouped into frames for a viewer: the first step alone and at once, then every step
    made within ``interval`` seconds (or ``interval()``, asked at each frame) of the last frame together, and the
    end with what precedes it. A viewer that draws the last item of each frame keeps up with any model, and
    every item still passes through."""
    frame: list = []
    last = None
    wait = interval if callable(interval) else lambda: interval
    for item in items:
        frame.append(item)
        now = time.monotonic()
        if isinstance(item, GenerationDone) or last is None or now - last >= wait():
            yield frame
            frame, last = [], now
    if frame:
        yield frame


class Stepper:
    """Drive a run one step at a time from the outside (the app's step mode, notebooks).

    Each :meth:`step` does one denoising step and returns its :class:`StepRecord` (or a :class:`GenerationDone`
    at the end). Between steps the run is paused: :meth:`candidates` shows the model's top-k at a masked
    position for the last step, :meth:`force` commits a token there by hand (through the record, so the trace
    records it), :meth:`finish` runs to the end, :meth:`stop` ends early.
    """

    def __init__(self, model, prompt, config: SamplerConfig, tokenizer=None,
                 constraints: Mapping[int, int] | None = None, forbid=None, logits_hooks=None):
        config = config if config.topk else config.replace(topk=5)  # candidates need the top-k
        self.config = config
        self.tokenizer = tokenizer
        self.confidences: dict[int, float] = {}  # position -> confidence of its commit (row 0), for viewers
        self.pinned = {prompt.shape[-1] + pos for pos in (constraints or {})}  # canvas positions, for viewers
        self._run = denoise(model, prompt, config, constraints=constraints, forbid=forbid, logits_hooks=logits_hooks)
        self._recorder = TraceRecorder(tokenizer, config=config)
        self.last: StepRecord | None = None
        self.done: GenerationDone | None = None

    def step(self) -> StepRecord | GenerationDone:
        if self.done is not None:
            return self.done
        record = next(self._run, None)
        if record is None:
            return self._finished()
        self._recorder(record)
        self.last = record
        for pos in record.committed[0].nonzero().flatten().tolist():
            self.confidences[pos] = float(record.confidence[0, pos])
        return record

    def candidates(self, position: int, row: int = 0) -> list[tuple[int, float]]:
        """The last step's top-k (token, probability) at a still-masked position."""
        record = self.last
        if record is None:
            raise ValueError("no step has run yet")
        if record.x_after[row, position] != record.mask_id:
            raise ValueError(f"position {position} is already committed")
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

    def remask(self, position: int, row: int = 0) -> None:
        """Send the committed token at ``position`` back to the mask before the next step (the sampler fills
        it again); ValueError for the prompt, a pinned token, a masked cell or a finished block, at the next
        step."""
        record = self.last
        if record is None or self.done is not None:
            raise ValueError("nothing to steer: the run has not started or has finished")
        if not record.prompt_length <= position < record.x_after.shape[1]:
            raise ValueError(f"position {position} is outside the generation")
        if record.x_after[row, position] == record.mask_id:
            raise ValueError(f"position {position} is masked already")
        record.remask(position, row)

    def fork(self) -> Stepper:
        """A second stepper that goes on from here on its own (same canvas, step and randomness so far)."""
        other = copy.copy(self)
        other._run = self._run.fork()
        other._recorder = copy.copy(self._recorder)
        # the same records so far, the last one the fork's own copy (its steering is the fork's)
        other._recorder.records = [*self._recorder.records[:-1], other._run.last][:len(self._recorder.records)]
        other.confidences = dict(self.confidences)
        other.last = other._run.last
        return other

    def finish(self) -> GenerationDone:
        while self.done is None:
            self.step()
        return self.done

    def stop(self) -> GenerationDone:
        """End the run now: masked positions stay masked."""
        if self.done is None:
            self._run.close()
            self._finished()
        return self.done

    def _finished(self) -> GenerationDone:
        trace = self._recorder.trace() if self._recorder.records else None
        self.done = GenerationDone(self._run.output, trace)
        return self.done
