"""Time estimates for the page's long runs (Quick SFT, the reversal experiment): the speed measured on this
machine while the run goes, the time left from it, and that time in words ("about 2 min 40 s").

A run is a list of :class:`Phase` s: timed steps (training steps), then work that is not in steps (answering the
held-out prompts, scoring, saving), guessed in steps' time until a phase of its kind has done it once. The clock
(:class:`RunClock`) is told when each step ends; it knows nothing of wall clocks itself (every time is passed
in), so the same inputs always give the same estimate.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# The first steps pay for allocations and warm caches (the first step of the shipped model's SFT took 3x a later
# one here): the speed is timed from the end of the SKIPPED_STEPS-th step on.
SKIPPED_STEPS = 2
# The speed follows the last WINDOW steps: a machine that gets busier (another run starts) slows every step after.
WINDOW = 50
# Steps timed (after the skipped ones) before an estimate is shown: fewer give a noisy first figure.
TIMED_BEFORE_ESTIMATE = 3


def _rounded(value: float, quantum: float) -> int:
    """``value`` to the nearest multiple of ``quantum``, halves up (``round`` would round halves to even)."""
    return int(value / quantum + 0.5) * int(quantum)


def format_duration(seconds: float) -> str:
    """A time as an estimate is worth saying it: "about 40 s" (to 5 s), "about 2 min 40 s" (to 10 s, under
    10 minutes), "about 12 min" (to the minute), "about 1 h 5 min" (to 5 minutes); "a few seconds" under 3 s."""
    seconds = max(0.0, float(seconds))
    if seconds < 2.5:
        return "a few seconds"
    if seconds < 57.5:
        return f"about {max(5, _rounded(seconds, 5))} s"
    if seconds < 595:
        minutes, rest = divmod(_rounded(seconds, 10), 60)
        return f"about {minutes} min" + (f" {rest} s" if rest else "")
    if seconds < 3570:
        return f"about {_rounded(seconds, 60) // 60} min"
    hours, minutes = divmod(_rounded(seconds, 300) // 60, 60)
    return f"about {hours} h" + (f" {minutes} min" if minutes else "")


def seconds_per_step(ends: Sequence[float], skip: int = SKIPPED_STEPS, window: int = WINDOW) -> float | None:
    """Seconds a step takes, from the times at which steps 1, 2, ... of one phase ended: the mean over the last
    ``window`` steps after the first ``skip``; None until two such ends are known."""
    timed = list(ends[skip:])[-(window + 1):]
    if len(timed) < 2:
        return None
    return (timed[-1] - timed[0]) / (len(timed) - 1)


def time_left(steps_left: float, per_step: float, after_s: float = 0.0) -> float:
    """Seconds left: the steps left at ``per_step`` each, then ``after_s`` of work that is not in steps."""
    return max(0.0, steps_left) * per_step + max(0.0, after_s)


@dataclass(frozen=True)
class Phase:
    """Part of a run: ``steps`` timed steps, then untimed work worth ``after`` steps (a first guess, replaced by the
    time it took once a phase of the same ``kind`` has done it). Phases of one kind share their measured speed."""

    steps: int
    after: float = 0.0
    kind: str = ""


class RunClock:
    """The time left in a run of phases, from the speed measured so far. ``step(phase, step, at)`` as each step
    ends (``at``: seconds on any one clock); ``left(at)``: seconds left then, or None until the speed is known
    (``TIMED_BEFORE_ESTIMATE`` steps timed after the skipped ones)."""

    def __init__(self, phases: Sequence[Phase], started_at: float):
        if not phases:
            raise ValueError("a run has at least one phase")
        self.phases = list(phases)
        self.started_at = started_at
        self._ends: list[list[float]] = [[] for _ in self.phases]  # each phase's step ends, in order
        self._done = [0] * len(self.phases)  # each phase's latest step
        self._after_s: dict[str, float] = {}  # kind -> seconds its untimed work took (or is expected to take)
        self.current = 0  # the phase of the latest step

    def expect_after(self, kind: str, seconds: float) -> None:
        """Say how long the untimed work of ``kind`` will take (measured elsewhere: the held-out answers after
        training take what those before it took), until a phase of that kind measures it."""
        self._after_s.setdefault(kind, max(0.0, seconds))

    def step(self, phase: int, step: int, at: float) -> None:
        """Step ``step`` (1 for the first) of phase ``phase`` ended at ``at``. A later phase's first step closes
        the phase before it: its untimed work is measured (up to the start of this step)."""
        if phase != self.current and self._ends[self.current]:
            took = at - self._ends[self.current][-1] - (self.per_step(phase) or 0.0)
            self._after_s[self.phases[self.current].kind] = max(0.0, took)
        self.current = phase
        self._ends[phase].append(at)
        self._done[phase] = step

    def finished(self, at: float) -> None:
        """The run ended at ``at``: the last phase's untimed work is measured."""
        if self._ends[self.current]:
            self._after_s[self.phases[self.current].kind] = max(0.0, at - self._ends[self.current][-1])

    def steps_done(self, phase: int | None = None) -> int:
        return self._done[self.current if phase is None else phase]

    def _speed_of(self, phase: int) -> float | None:
        """The phase's own measured speed: after the skipped steps once TIMED_BEFORE_ESTIMATE are timed; a phase
        too short for that, over all its steps once it is over."""
        ends = self._ends[phase]
        if len(ends) >= SKIPPED_STEPS + TIMED_BEFORE_ESTIMATE + 1:
            return seconds_per_step(ends)
        if self._done[phase] >= self.phases[phase].steps:
            return seconds_per_step(ends, skip=0)
        return None

    def per_step(self, phase: int | None = None) -> float | None:
        """Seconds a step of ``phase`` (default: the current one) takes: measured in the latest phase of the same
        kind that has a speed, else in the latest phase of any kind; None before that."""
        phase = self.current if phase is None else phase
        kind = self.phases[phase].kind
        speeds = [(i, self._speed_of(i)) for i in range(len(self.phases))]
        speeds = [(i, speed) for i, speed in speeds if speed is not None]
        mine = [speed for i, speed in speeds if self.phases[i].kind == kind]
        if mine or speeds:
            return (mine or [speed for _, speed in speeds])[-1]
        return None

    def after_s(self, phase: int) -> float | None:
        """Seconds the untimed work of ``phase`` takes: measured (or expected) for its kind, else its guess in
        steps at the phase's speed."""
        kind = self.phases[phase].kind
        if kind in self._after_s:
            return self._after_s[kind]
        speed = self.per_step(phase)
        return None if speed is None else self.phases[phase].after * speed

    def left(self, at: float) -> float | None:
        """Seconds left at ``at``, or None while the speed is not known."""
        total = 0.0
        for i in range(self.current, len(self.phases)):
            speed, after = self.per_step(i), self.after_s(i)
            if speed is None or after is None:
                return None
            steps_left = self.phases[i].steps - self._done[i]
            if self._ends[i] and steps_left <= 0:  # in its untimed work now: what is left of it
                total += max(0.0, after - (at - self._ends[i][-1]))
            else:
                total += time_left(steps_left, speed, after)
        return total

    def total(self, at: float) -> float | None:
        """The whole run's estimated length: so far, plus what is left."""
        left = self.left(at)
        return None if left is None else at - self.started_at + left


def left_words(clock: RunClock, at: float, unit: str = "step") -> str:
    """The time left as a sentence, with the speed it comes from: "About 2 min 20 s left (0.16 s a step on this
    machine)"; while the first steps are timed, says so."""
    left, speed = clock.left(at), clock.per_step()
    if left is None or speed is None:
        return f"Timing the first {unit}s on this machine..."
    words = format_duration(left)
    return f"{words[0].upper()}{words[1:]} left ({speed:.2f} s a {unit} on this machine)"


def estimate_words(clock: RunClock, at: float, unit: str = "step", so_far: bool = False) -> str:
    """:func:`left_words`, then the whole run's estimate once it is known (with ``so_far``: the time taken so
    far), the line both long-running tabs show under their progress."""
    line = left_words(clock, at, unit)
    total = clock.total(at)
    if total is None:
        return line
    taken = f" ({format_duration(at - clock.started_at).removeprefix('about ')} so far)" if so_far else ""
    return f"{line}; the whole run: {format_duration(total)}{taken}."
